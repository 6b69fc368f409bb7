import RseqTraceTestPayloads
import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import Synchronization

// The lock-free protocol of fallback rings and the slow lane (docs/BufferProtocol.md §5), in
// `rseqtrace-testhelper` processes started with RSEQTRACE_FORCE_FALLBACK=1 (the producer mode is
// chosen once per process). Every figure is exact; each run is bounded by the helper's own time
// limit and by the test's.

@Suite("Lock-free fallback protocol", .serialized)
struct LockFreeFallbackTests {
    static let fallback = ProcessModeSetting.forcedFallback.environment

    @Test("signal storm: writers and SIGUSR1 handlers writing into the same rings balance exactly, intact and in order",
          .timeLimit(.minutes(2)), arguments: [BufferMode.discard, .overwrite])
    func signalStorm(mode: BufferMode) throws {
        var arguments = ["storm", "--mode", mode.description, "--threads", "4", "--events", "200000", "--time-limit", "60"]
        if mode == .overwrite {
            arguments += ["--ring-size", "16384", "--subbuffer-size", "1024"]
        }
        let outcome = try HelperProcess.runHelper(arguments, setting: Self.fallback, timeout: .seconds(100))
        let fields = try #require(outcome.fields(of: "storm:"), "no storm line:\n\(outcome)")
        report("storm \(mode): \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")
        #expect(outcome.exitedCleanly, "\(outcome)")
        #expect(fields["mode"] == "fallback")
        #expect(fields["path"] == "lockFree")
        let emitted = try #require(fields["emitted"].flatMap { UInt64($0) })
        let recorded = try #require(fields["recorded"].flatMap { UInt64($0) })
        let lost = try #require(fields["lost"].flatMap { UInt64($0) })
        let handlerEmitted = try #require(fields["handler_emitted"].flatMap { UInt64($0) })
        #expect(emitted == 4 * 200_000 + handlerEmitted)
        #expect(handlerEmitted > 0, "no handler ran: \(outcome)")
        #expect(recorded + lost == emitted, "\(outcome)")
        #expect(fields["damaged"] == "0", "\(outcome)")
        #expect(fields["duplicates"] == "0", "\(outcome)")
        #expect(fields["regressions"] == "0", "\(outcome)")
        // Every record of a writer thread names that thread (pid, tid) through its thread record.
        #expect(fields["misattributed"] == "0", "\(outcome)")
        #expect(fields["timed_out"] == "false", "\(outcome)")
        if mode == .overwrite {
            #expect((UInt64(fields["overwritten"] ?? "") ?? 0) > 0, "a 16 KiB ring must have been overwritten: \(outcome)")
        }
    }

    @Test("overwrite exactness with 256-byte sub-buffers under concurrent draining: nothing overwritten while read is delivered",
          .timeLimit(.minutes(2)))
    func overwriteSmallBuffers() throws {
        let arguments = ["storm", "--mode", "overwrite", "--threads", "4", "--events", "40000",
                         "--ring-size", "8192", "--subbuffer-size", "256", "--time-limit", "60"]
        let outcome = try HelperProcess.runHelper(arguments, setting: Self.fallback, timeout: .seconds(100))
        let fields = try #require(outcome.fields(of: "storm:"), "no storm line:\n\(outcome)")
        report("overwrite small: \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")
        #expect(outcome.exitedCleanly, "\(outcome)")
        let emitted = try #require(fields["emitted"].flatMap { UInt64($0) })
        let recorded = try #require(fields["recorded"].flatMap { UInt64($0) })
        let lost = try #require(fields["lost"].flatMap { UInt64($0) })
        #expect(recorded + lost == emitted, "\(outcome)")
        #expect(recorded > 0 && lost > 0, "\(outcome)")
        #expect(fields["damaged"] == "0", "\(outcome)")
        #expect(fields["duplicates"] == "0", "\(outcome)")
        #expect(fields["regressions"] == "0", "\(outcome)")
        // Every record of a writer thread names that thread (pid, tid) through its thread record.
        #expect(fields["misattributed"] == "0", "\(outcome)")
    }

    @Test("a producer stuck inside its reservation blocks nobody: others drop and count, live drains return, the end balances",
          .timeLimit(.minutes(2)), arguments: [BufferMode.discard, .overwrite])
    func stuckReservation(mode: BufferMode) throws {
        let arguments = ["stuck", "--mode", mode.description, "--threads", "3", "--events", "20000",
                         "--ring-size", "16384", "--subbuffer-size", "1024"]
        let outcome = try HelperProcess.runHelper(arguments, setting: Self.fallback, timeout: .seconds(100))
        let fields = try #require(outcome.fields(of: "stuck:"), "no stuck line:\n\(outcome)")
        report("stuck \(mode): \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")
        #expect(outcome.exitedCleanly, "\(outcome)")
        #expect(fields["path"] == "lockFree")
        // The other producers finished while the reservation was still pending...
        #expect(fields["still_stuck"] == "true", "\(outcome)")
        // ...dropping (and counting) once the ring wrapped onto the stuck sub-buffer...
        #expect((UInt64(fields["dropped_while_stuck"] ?? "") ?? 0) > 0, "\(outcome)")
        // ...while live drains returned every time, having read everything before the stuck
        // sub-buffer (or counted it as overwritten) and stopped there, to retry later.
        #expect(fields["next_read_subbuffer"] == fields["stuck_subbuffer"], "\(outcome)")
        #expect((UInt64(fields["live_rounds"] ?? "") ?? 0) > 0, "\(outcome)")
        let emitted = try #require(fields["emitted"].flatMap { UInt64($0) })
        let recorded = try #require(fields["recorded"].flatMap { UInt64($0) })
        let lost = try #require(fields["lost"].flatMap { UInt64($0) })
        #expect(recorded + lost == emitted, "\(outcome)")
        #expect(fields["damaged"] == "0", "\(outcome)")
        #expect(fields["duplicates"] == "0", "\(outcome)")
        #expect(fields["regressions"] == "0", "\(outcome)")
        // Every record of a writer thread names that thread (pid, tid) through its thread record.
        #expect(fields["misattributed"] == "0", "\(outcome)")
        #expect(fields["abandoned"] == "0", "\(outcome)")
    }

    @Test("in rseq mode, the slow lane (lock-free) and the rseq rings balance exactly under a signal storm",
          .timeLimit(.minutes(2)))
    func rseqModeStorm() throws {
        // Handlers and writers in rseq mode: rseq rings, plus the lock-free slow lane for records
        // that exhaust their attempts; counters and the slow lane must still balance.
        let arguments = ["storm", "--mode", "discard", "--threads", "4", "--events", "40000", "--time-limit", "60"]
        let outcome = try HelperProcess.runHelper(arguments, setting: ProcessModeSetting.inherited.environment,
                                                  timeout: .seconds(100))
        let fields = try #require(outcome.fields(of: "storm:"), "no storm line:\n\(outcome)")
        report("storm rseq: \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")
        #expect(outcome.exitedCleanly, "\(outcome)")
        #expect(fields["path"] == "rseqCPU")
        let emitted = try #require(fields["emitted"].flatMap { UInt64($0) })
        let recorded = try #require(fields["recorded"].flatMap { UInt64($0) })
        let lost = try #require(fields["lost"].flatMap { UInt64($0) })
        #expect(recorded + lost == emitted, "\(outcome)")
        #expect(fields["damaged"] == "0" && fields["duplicates"] == "0" && fields["regressions"] == "0", "\(outcome)")
        #expect(fields["misattributed"] == "0", "\(outcome)")
    }

    @Test("rseq mode: the lock-free slow lane's counters reset exactly while producers on a ringless CPU keep dropping",
          .enabled(if: CPUPinner.isAllowed(cpu: 1)), .timeLimit(.minutes(1)))
    func slowLaneCounterReset() throws {
        // cpuRingCount 1: threads pinned to CPU 1 have no ring and write through the slow lane.
        let fixture = try UnitTraceFixture("lfreset", cpuRingCount: 1)
        let threads = 3
        let events = 20_000
        let finished = Atomic<Int>(0)
        let pinFailures = Atomic<Int>(0)
        let producer = fixture.producer
        let workers = WorkerThreads(count: threads) { thread in
            do {
                try UnitTrace.onCPU(1) { () throws(TraceError) in
                    for sequence in 0..<events {
                        _ = producer.write(eventID: 6, value: UInt64(thread << 32 | sequence))
                    }
                }
            } catch {
                pinFailures.wrappingAdd(1, ordering: .relaxed)
            }
            finished.wrappingAdd(1, ordering: .releasing)
        }
        var resets = 0
        while finished.load(ordering: .acquiring) < threads {
            if resets % 4 == 0 { try fixture.drainer.drainOnce { _ in } }
            try fixture.drainer.resetCounters()
            resets += 1
        }
        workers.join()
        try fixture.drainer.drainOnce(quiescent: true) { _ in }
        try fixture.drainer.resetCounters()
        #expect(pinFailures.load(ordering: .relaxed) == 0)
        let slowLane = fixture.drainer.statistics[fixture.layout.slowLaneRing]
        #expect(slowLane.dropped > 0, "an 8 KiB slow lane must refuse records")
        #expect(slowLane.recorded + slowLane.lost == UInt64(threads * events))
        #expect(fixture.drainer.statistics[0].recorded == 0)
        let buffer = fixture.buffer   // ring views borrow a local reference
        let remaining = buffer.ring(fixture.layout.slowLaneRing).load(ControlField.dropped, ordering: .relaxed)
        #expect(remaining == 0)
    }

    @Test("a consumer in another process drains the lock-free rings of a fallback process's buffer exactly",
          .timeLimit(.minutes(1)), arguments: [BufferMode.discard, .overwrite])
    func crossProcess(mode: BufferMode) throws {
        let name = uniqueBufferName("lockfree-\(mode)")
        let arguments = ["fallback-write", "--name", name, "--mode", mode.description, "--threads", "3",
                         "--events", "5000", "--ring-size", "16384", "--subbuffer-size", "1024"]
        let outcome = try HelperProcess.runHelper(arguments, setting: Self.fallback, timeout: .seconds(50))
        let fields = try #require(outcome.fields(of: "fallback-write:"), "no fallback-write line:\n\(outcome)")
        #expect(outcome.exitedCleanly, "\(outcome)")
        #expect(fields["path"] == "lockFree")
        let buffer = try SharedTraceBuffer.open(name: name)
        defer { buffer.removeName() }
        #expect(buffer.ringProtocol == .lockFree)
        #expect(buffer.isFinished)
        let drainer = TraceDrainer(buffer: buffer)
        var intact: UInt64 = 0
        var damaged: UInt64 = 0
        var regressions: UInt64 = 0
        var misattributed: UInt64 = 0
        var writers = Set<Int32>()
        let helperPID = try #require(fields["pid"].flatMap { Int32($0) }, "\(outcome)")
        var last = Array(repeating: UInt64(0), count: buffer.layout.ringCount)
        try drainer.drainOnce(quiescent: true) { record in
            if record.timestamp < last[record.ring] { regressions += 1 }
            last[record.ring] = record.timestamp
            let intactPayload = record.payloadSize == MemoryLayout<CheckedPayload>.size
                && record.load(fromByteOffset: 0, as: CheckedPayload.self).isIntact
            if intactPayload { intact += 1 } else { damaged += 1 }
            // The payload's source is the writing thread's tid.
            let source = record.load(fromByteOffset: 0, as: CheckedPayload.self).source
            if record.processID != helperPID || UInt64(record.threadID) != source { misattributed += 1 }
            writers.insert(record.threadID)
        }
        let totals = drainer.totals
        #expect(damaged == 0 && regressions == 0)
        #expect(misattributed == 0, "records attributed to another thread than the one that wrote them")
        // At most the three writer threads (not the main thread); a full ring may have refused a late one.
        #expect(!writers.isEmpty && writers.count <= 3 && !writers.contains(helperPID), "\(writers)")
        #expect(totals.recorded == intact && intact > 0)
        #expect(String(totals.recorded + totals.dropped) == fields["emitted"] || mode == .overwrite, "\(totals)")
        #expect(String(totals.recorded + totals.lost) == fields["emitted"], "\(totals) \(outcome)")
        if mode == .discard { #expect(String(totals.recorded) == fields["stored"]) }
    }
}
