import Testing
#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport

/// Producers across the events of a process's life: another program started with `posix_spawn`,
/// the image replaced with `execv`, and the CPU set changed from outside while it writes.
@Suite("Producers across spawn, exec and CPU set changes", .serialized)
struct ProcessLifecycleTests {
    /// One drained record of event 8 (`keep-writing`'s): its tag and sequence, ring and writer.
    struct Written: Equatable {
        var tag: UInt64
        var sequence: UInt64
        var ring: Int
        var processID: Int32
        var threadID: Int32
    }

    static func collect(_ drainer: TraceDrainer, quiescent: Bool, into records: inout [Written]) throws {
        try drainer.drainOnce(quiescent: quiescent) { record in
            guard record.eventID == 8 else { return }
            let value = record.load(fromByteOffset: 0, as: UInt64.self)
            records.append(Written(tag: value >> 32, sequence: value & 0xFFFF_FFFF, ring: record.ring,
                                   processID: record.processID, threadID: record.threadID))
        }
    }

    /// Runs the helper's `spawn-write --how how` on the first allowed CPU (`events` records per
    /// image), then drains every record of event 8 from the buffer it wrote, quiescently: none may
    /// be lost, no ring quarantined.
    static func spawnWrite(how: String, events: Int) throws -> (cpu: Int32, outcome: HelperProcess.Outcome, records: [Written]) {
        #expect(rtts_affinity_snapshot() >= 1)
        let cpu = rtts_allowed_cpu(0)
        let name = "rseqtrace-test-\(how)-\(getpid())"
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name))
        let outcome = try HelperProcess.runHelper(["spawn-write", "--name", name, "--cpu", "\(cpu)", "--events", "\(events)",
                                                   "--how", how], timeout: .seconds(60))
        #expect(outcome.exitedCleanly, "\(outcome)")
        var records: [Written] = []
        let drainer = TraceDrainer(buffer: buffer)
        try collect(drainer, quiescent: true, into: &records)
        #expect(drainer.totals.lost == 0)
        #expect(drainer.quarantinedRings.isEmpty)
        return (cpu, outcome, records)
    }

    @Test("a program started with posix_spawn names itself; the parent's records after it name the parent again",
          .timeLimit(.minutes(1)))
    func spawnedProgramNamesItself() throws {
        let events = 1000
        let (cpu, outcome, records) = try Self.spawnWrite(how: "spawn", events: events)
        let parent = try #require(outcome.fields(of: "spawn-write:"), "\(outcome)")
        let child = try #require(outcome.fields(of: "keep-writing:"), "\(outcome)")
        let parentPID = try #require(parent["pid"].flatMap { Int32($0) })
        let childPID = try #require(child["pid"].flatMap { Int32($0) })
        #expect(parent["child"] == child["pid"])
        #expect(childPID != parentPID)
        // In ring order on one ring: the parent's first records, the child's, the parent's again.
        let expected = (0..<UInt64(events)).map { Written(tag: 1, sequence: $0, ring: Int(cpu), processID: parentPID, threadID: parentPID) }
            + (0..<UInt64(events)).map { Written(tag: 2, sequence: $0, ring: Int(cpu), processID: childPID, threadID: childPID) }
            + (0..<UInt64(events)).map { Written(tag: 1, sequence: UInt64(events) + $0, ring: Int(cpu), processID: parentPID,
                                                 threadID: parentPID) }
        #expect(records.count == expected.count)
        #expect(records == expected)
    }

    @Test("a program that replaces itself with execv: the new image writes with the same pid, every record attributed",
          .timeLimit(.minutes(1)))
    func execedImageKeepsItsPID() throws {
        let events = 1000
        let (cpu, outcome, records) = try Self.spawnWrite(how: "exec", events: events)
        let image = try #require(outcome.fields(of: "keep-writing:"), "\(outcome)")
        #expect(image["pid"] == "\(outcome.pid)")
        #expect(image["stored"] == "\(events)")
        let pid = outcome.pid
        let expected = (0..<UInt64(events)).map { Written(tag: 1, sequence: $0, ring: Int(cpu), processID: pid, threadID: pid) }
            + (0..<UInt64(events)).map { Written(tag: 2, sequence: $0, ring: Int(cpu), processID: pid, threadID: pid) }
        #expect(records == expected)
    }

    @Test("the CPU set of a writing program changed from outside (as taskset -p does): its records move to the new CPU's ring, none lost or reordered",
          .enabled(if: rtts_affinity_snapshot() >= 2),
          .timeLimit(.minutes(1)))
    func cpuSetChangeMovesRecords() throws {
        let from = rtts_allowed_cpu(0)
        let to = rtts_allowed_cpu(1)
        let name = "rseqtrace-test-taskset-\(getpid())"
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name))
        let stopFile = "/tmp/rseqtrace-test-taskset-stop-\(getpid())"
        // SAFETY: unlink reads the NUL-terminated copy of the path Swift passes for the call.
        unsafe unlink(stopFile)
        // SAFETY: as above.
        defer { unsafe unlink(stopFile) }
        let writer = try HelperProcess.start(HelperProcess.helperPath,
                                             ["keep-writing", "--name", name, "--cpu", "\(from)", "--events", "10000000",
                                              "--tag", "1", "--pause-us", "1000", "--stop-file", stopFile],
                                             environment: HelperProcess.childEnvironment())
        let drainer = TraceDrainer(buffer: buffer)
        var records: [Written] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while !records.contains(where: { $0.ring == Int(from) }) && !writer.hasExited && ContinuousClock.now < deadline {
            try Self.collect(drainer, quiescent: false, into: &records)
            usleep(2000)
        }
        // The writer is single-threaded: its pid is its only thread's tid.
        #expect(rtts_set_thread_affinity(Int(writer.pid), to) == 0)
        while !records.contains(where: { $0.ring == Int(to) }) && !writer.hasExited && ContinuousClock.now < deadline {
            try Self.collect(drainer, quiescent: false, into: &records)
            usleep(2000)
        }
        // SAFETY: open reads the NUL-terminated copy of the path Swift passes for the call.
        let stop = unsafe open(stopFile, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        #expect(stop >= 0)
        close(stop)
        let outcome = writer.wait(timeout: .seconds(30))
        #expect(outcome.exitedCleanly, "\(outcome)")
        let fields = try #require(outcome.fields(of: "keep-writing:"), "\(outcome)")
        let emitted = try #require(fields["emitted"].flatMap { Int($0) })
        try Self.collect(drainer, quiescent: true, into: &records)
        #expect(drainer.totals.recorded + drainer.totals.lost == UInt64(emitted), "\(drainer.totals)")
        let before = records.filter { $0.ring == Int(from) }
        let after = records.filter { $0.ring == Int(to) }
        #expect(!before.isEmpty && !after.isEmpty)
        #expect(before.count + after.count == records.count)
        // No record of the old CPU's ring comes after one of the new CPU's.
        #expect((before.map(\.sequence).max() ?? 0) < (after.map(\.sequence).min() ?? 0))
        if drainer.totals.lost == 0 {
            #expect(records.map(\.sequence).sorted() == Array(0..<UInt64(emitted)))
        }
        #expect(records.allSatisfy { $0.processID == writer.pid && $0.threadID == writer.pid })
    }
}
