import RseqTraceTestPayloads
import Testing
#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer
import Synchronization
import RseqTraceSupport

// Process-level stress tests: the producer fast path under signal storms, migrations, forced
// preemption and single-stepping, in all three producer modes, across processes, and under
// valgrind. The workloads run in `rseqtrace-testhelper` (built next to this test bundle), each in
// its own process because the producer mode is chosen once per process.
//
// Every test asserts exact figures parsed from the helper's `key=value` line: recorded + lost ==
// emitted (no record ever unaccounted for), and no damaged, duplicated or out-of-order record.

/// How a helper process is started, i.e. which producer mode it must end up in.
enum ProcessModeSetting: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// Inherited environment (without the mode variables): glibc registers rseq.
    case inherited
    /// RSEQTRACE_FORCE_FALLBACK=1: the lock-free protocol.
    case forcedFallback
    /// GLIBC_TUNABLES=glibc.pthread.rseq=0: glibc does not register, RseqTrace registers itself.
    case glibcRseqDisabled

    var environment: [String: String] {
        switch self {
        case .inherited: return [:]
        case .forcedFallback: return ["RSEQTRACE_FORCE_FALLBACK": "1"]
        case .glibcRseqDisabled: return ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"]
        }
    }

    /// The mode the helper must report.
    var expectedMode: String {
        switch self {
        // glibc 2.35+ registers rseq unless told not to. Children get our environment without
        // GLIBC_TUNABLES, so glibc registers there when it did here, or when only our own
        // tunable stopped it; otherwise (`__rseq_size` == 0 for another reason) RseqTrace
        // registers itself.
        case .inherited:
            return rtts_glibc_rseq_size() > 0 || parentTunablesDisableRseq ? "rseq" : "rseq-self"
        case .forcedFallback: return "fallback"
        case .glibcRseqDisabled: return "rseq-self"
        }
    }

    var testDescription: String {
        switch self {
        case .inherited: return "default environment"
        case .forcedFallback: return "RSEQTRACE_FORCE_FALLBACK=1"
        case .glibcRseqDisabled: return "GLIBC_TUNABLES=glibc.pthread.rseq=0"
        }
    }
}

/// Whether this test process runs with glibc's rseq registration turned off by GLIBC_TUNABLES.
let parentTunablesDisableRseq: Bool = {
    SystemInfo.environmentValue("GLIBC_TUNABLES")?.contains("glibc.pthread.rseq=0") ?? false
}()

extension BufferMode: CustomTestStringConvertible {
    public var testDescription: String { description }
}

/// Measurements, printed so that a run's log carries them.
func report(_ line: String) {
    print("ProcessStress: \(line)")
}

/// CPUs this process may run on.
let allowedCPUs: Int = max(1, Int(rtts_affinity_snapshot()))

/// Producer threads for the stress runs: at least three per CPU, so that threads sharing a CPU
/// preempt each other inside their sequences.
let stressThreads = max(6, 3 * allowedCPUs)

/// A unique name for a buffer created by this test process.
func uniqueBufferName(_ purpose: String) -> String {
    struct Counter { static let next = Atomic<Int>(0) }
    return "rseqtrace-test-\(purpose)-\(getpid())-\(Counter.next.wrappingAdd(1, ordering: .relaxed).oldValue)"
}

@Suite(.serialized)
struct ProcessStressTests {
    // MARK: - Stress matrix

    /// Events per producer thread in each stress run (debug build, 2 CPUs: about 1–4 s per run
    /// with signals, yields and migrations).
    static let stressEvents = 60_000

    @Test("stress: buffer mode x producer mode, with signals, yields, migrations and injected delays",
          .timeLimit(.minutes(2)),
          arguments: [BufferMode.discard, .overwrite], ProcessModeSetting.allCases)
    func stress(buffer: BufferMode, process: ProcessModeSetting) throws {
        var arguments = ["stress", "--mode", buffer.description, "--threads", "\(stressThreads)",
                         "--events", "\(Self.stressEvents)", "--signals", "--yield", "--migrate",
                         "--time-limit", "60"]
        if buffer == .overwrite {
            // A tiny ring (16 sub-buffers of 1 KiB): producers lap the consumer all the time.
            arguments += ["--ring-size", "16384", "--subbuffer-size", "1024"]
        } else {
            // Small enough that a ring sometimes fills (drops must be counted exactly too).
            arguments += ["--ring-size", "262144", "--subbuffer-size", "8192"]
        }
        if process != .forcedFallback {
            // ~50–150 ns of `pause` inside every sequence: many more aborts and lost races.
            arguments += ["--inject", "64"]
        }
        let outcome = try HelperProcess.runHelper(arguments, setting: process.environment, timeout: .seconds(100))
        let fields = try #require(outcome.fields(of: "stress:"), "no stress line:\n\(outcome)")
        report("stress \(buffer) \(process.testDescription): \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")

        let emitted = try #require(fields["emitted"].flatMap { UInt64($0) })
        let recorded = try #require(fields["recorded"].flatMap { UInt64($0) })
        let lost = try #require(fields["lost"].flatMap { UInt64($0) })
        let stored = try #require(fields["stored"].flatMap { UInt64($0) })
        let dropped = try #require(fields["dropped"].flatMap { UInt64($0) })
        let overwritten = try #require(fields["overwritten"].flatMap { UInt64($0) })
        #expect(fields["mode"] == process.expectedMode, "\(outcome)")
        #expect(fields["buffer"] == buffer.description)
        #expect(emitted == UInt64(stressThreads * Self.stressEvents), "\(outcome)")
        #expect(recorded + lost == emitted, "\(outcome)")
        #expect(fields["damaged"] == "0", "\(outcome)")
        #expect(fields["duplicates"] == "0", "\(outcome)")
        #expect(fields["regressions"] == "0", "\(outcome)")
        #expect(fields["misattributed"] == "0", "\(outcome)")
        #expect(recorded > 0)
        // Every refused write is counted by the library, and nothing else is.
        #expect(stored + dropped + (UInt64(fields["toolarge"] ?? "") ?? 0) == emitted, "\(outcome)")
        #expect(fields["toolarge"] == "0")
        if buffer == .discard {
            #expect(overwritten == 0)
            #expect(recorded == stored, "discard mode loses only refused records: \(outcome)")
        } else {
            #expect(lost > 0, "a 16 KiB ring must have been overwritten: \(outcome)")
            #expect(recorded + overwritten == stored, "\(outcome)")
        }
        #expect(UInt64(fields["signals"] ?? "") ?? 0 > 0, "the per-thread timers never fired")
        #expect(UInt64(fields["migrations"] ?? "") ?? 0 > 0, "the migrator never moved a thread")
        #expect(fields["path"] == (process == .forcedFallback ? "lockFree" : "rseqCPU"))
        #expect(outcome.exitCode == 0, "\(outcome)")
    }

    // MARK: - Cross-process

    @Test("cross-process: two attached helper processes and this process write one buffer",
          .timeLimit(.minutes(2)))
    func crossProcess() throws {
        let name = uniqueBufferName("xproc")
        // 8 MiB per ring holds every record written here (~105,000 records of ~72 bytes spread
        // over 2 CPU rings and the slow lane) even if the drainer never ran before the end.
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(
            name: name, ringSize: 8 << 20, subbufferSize: 64 << 10, mode: .discard))
        defer { buffer.removeName() }
        let localThreads = 3
        let helperThreads = 2
        let events = 15_000
        // Thread-id bases: this process 0, helper A 1000, helper B 2000.
        let helpers: [(base: Int, setting: ProcessModeSetting, extra: [String])] = [
            (1000, .inherited, ["--signals", "--yield"]),
            // Cannot use rseq on an rseq buffer: every record through the shared slow lane.
            (2000, .forcedFallback, ["--yield"]),
        ]
        var children: [HelperProcess.Running] = []
        for helper in helpers {
            children.append(try HelperProcess.start(
                HelperProcess.helperPath,
                ["attach-write", "--name", name, "--threads", "\(helperThreads)", "--events", "\(events)",
                 "--id", "\(helper.base)", "--time-limit", "60"] + helper.extra,
                environment: HelperProcess.childEnvironment(helper.setting.environment)))
        }

        let producer = buffer.makeProducer()
        let finished = Atomic<Int>(0)
        let localEmitted = Atomic<UInt64>(0)
        let workers = WorkerThreads(count: localThreads) { index in
            var writer = PayloadWriter()
            for sequence in 0..<UInt64(events) {
                _ = writer.emit(producer, thread: UInt32(index), sequence: sequence)
                if sequence % 500 == 499 { sched_yield() }
            }
            localEmitted.wrappingAdd(UInt64(events), ordering: .relaxed)
            finished.wrappingAdd(1, ordering: .releasing)
        }

        let drainer = TraceDrainer(buffer: buffer)
        var verifier = RecordVerifier(layout: buffer.layout)
        // Records of this process's payload threads (below 1000) name this process, the others a helper.
        var wrongProcess = 0
        let me = getpid()
        let check = { (record: borrowing DrainedRecord) in
            verifier.check(record)
            if let id = Payloads.verifiedID(record), (rtts_payload_thread(id) < 1000) != (record.processID == me) {
                wrongProcess += 1
            }
        }
        let deadline = ContinuousClock.now.advanced(by: .seconds(90))
        while finished.load(ordering: .acquiring) < localThreads || !children.allSatisfy({ $0.hasExited }) {
            for child in children { child.pump() }
            let delivered = try drainer.drainOnce { check($0) }
            if delivered == 0 { usleep(200) }
            if ContinuousClock.now > deadline { break }
        }
        workers.join()
        let outcomes = children.map { $0.wait(timeout: .seconds(95)) }
        buffer.markFinished()
        try drainer.drainOnce(quiescent: true) { check($0) }

        var emitted = localEmitted.load(ordering: .relaxed)
        for (helper, outcome) in zip(helpers, outcomes) {
            #expect(outcome.exitCode == 0, "\(outcome)")
            let fields = try #require(outcome.fields(of: "attach-write:"), "\(outcome)")
            #expect(fields["mode"] == helper.setting.expectedMode, "\(outcome)")
            let expectedPath = buffer.ringProtocol == .lockFree ? "lockFree"
                : helper.setting == .forcedFallback ? "slowLaneOnly" : "rseqCPU"
            #expect(fields["path"] == expectedPath, "\(outcome)")
            let childEmitted = try #require(fields["emitted"].flatMap { UInt64($0) })
            #expect(childEmitted == UInt64(helperThreads * events))
            emitted += childEmitted
            report("cross-process helper base \(helper.base): \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")
        }
        let totals = drainer.totals
        report("cross-process: emitted=\(emitted) recorded=\(totals.recorded) lost=\(totals.lost) slowlane=\(verifier.slowLane) attached=\(2)")
        #expect(totals.recorded + totals.lost == emitted)
        #expect(verifier.damaged == 0, "\(verifier.problems)")
        #expect(verifier.duplicates == 0, "\(verifier.problems)")
        #expect(verifier.regressions == 0, "\(verifier.problems)")
        #expect(verifier.misattributed == 0, "\(verifier.problems)")
        #expect(wrongProcess == 0, "records attributed to the wrong process")
        #expect(verifier.intact == totals.recorded)
        // The rings are large enough for everything: nothing may be lost, so every record of
        // every process must be there exactly once.
        #expect(totals.lost == 0)
        #expect(verifier.intactCount(threads: 0..<1000) == UInt64(localThreads * events))
        for helper in helpers {
            #expect(verifier.intactCount(threads: helper.base..<(helper.base + 1000)) == UInt64(helperThreads * events))
        }
        // The forced-fallback helper can only use the slow lane.
        #expect(verifier.slowLane >= UInt64(helperThreads * events))
    }

    // MARK: - Single-stepping

    /// Records written while single-stepped. Each costs ~90,000 steps in a debug build (two
    /// APIs' worth of 64 aborted attempts, then the slow lane), ~2.3 s at the ~40,000 steps/s
    /// ptrace manages on a 2-vCPU VM: about 45 s in all.
    static let steppedEvents = 20

    @Test("single-step: a producer single-stepped by ptrace completes every record",
          .timeLimit(.minutes(2)))
    func singleStep() throws {
        let name = uniqueBufferName("step")
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 1 << 16, subbufferSize: 4096))
        defer { buffer.removeName() }
        let events = Self.steppedEvents
        let base: UInt32 = 77
        let helper = HelperProcess.helperPath
        try #require(HelperProcess.isExecutable(helper), "\(helper) missing: swift build --build-tests")

        let pipe = try HelperProcess.makePipe()
        // One warm-up record (thread base + 1) before stepping starts keeps one-time costs (lazy
        // binding, runtime metadata, the first sub-buffer) out of the stepped stretch.
        let argv = CStringArray([helper, "singlestep-target", "--name", name, "--events", "\(events)",
                                               "--id", "\(base)", "--warmup", "1"])
        let envp = CStringArray(HelperProcess.childEnvironment())
        defer {
            argv.release()
            envp.release()
        }
        var result = rtts_singlestep_result()
        // Tracer and target on one CPU: every step is then a local context switch, not a
        // cross-CPU wake-up (about 1.5x faster on a 2-vCPU VM).
        let stepCPU = rtts_allowed_cpu(Int32(allowedCPUs - 1))
        let maximumSteps: UInt64 = 4_000_000
        // SAFETY: argv/envp are NULL-terminated arrays of C strings alive until the deferred
        // release; `result` is a local the call fills.
        let rc = unsafe argv.pointers.withUnsafeBufferPointer { args in
            // SAFETY: as above.
            unsafe envp.pointers.withUnsafeBufferPointer { env in
                // SAFETY: as above.
                unsafe rtts_run_singlestepped_ex(helper, args.baseAddress, env.baseAddress, maximumSteps,
                                                 pipe.write, -1, 100_000, stepCPU, &result)
            }
        }
        close(pipe.write)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            // SAFETY: read writes at most chunk.count bytes into the live local buffer.
            let count = unsafe chunk.withUnsafeMutableBytes { unsafe read(pipe.read, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            output += chunk[..<count]
        }
        close(pipe.read)
        let text = String(decoding: output, as: UTF8.self)
        report("single-step: steps=\(result.steps) stepping_ms=\(result.stepping_ns / 1_000_000) total_ms=\(result.total_ns / 1_000_000) cap_reached=\(result.reached_step_cap) exit_status=\(result.exit_status) output=\(text.split(separator: "\n").first ?? "")")

        try #require(rc == 0, "rtts_run_singlestepped_ex failed: errno \(rc)")
        #expect(result.timed_out == 0, "the single-stepped target ran out of time")
        #expect(result.reached_step_cap == 0, "more than \(maximumSteps) steps")
        #expect(result.saw_second_stop == 1)
        #expect(result.exit_status == 0, "wait status \(result.exit_status); output: \(text)")
        #expect(result.forwarded_signals == 0)
        #expect(result.steps > UInt64(events) * 1000, "the write loop cannot take fewer steps")
        let fields = try #require(HelperProcess.parseFields(text, prefix: "singlestep-target:"), "output: \(text)")
        #expect(fields["emitted"] == "\(events)")
        #expect(fields["stored"] == "\(events)")
        #expect(fields["warmup"] == "1")

        let drainer = TraceDrainer(buffer: buffer)
        var records: [(ring: Int, id: UInt64?)] = []
        try drainer.drainOnce(quiescent: true) { record in
            records.append((record.ring, Payloads.verifiedID(record)))
        }
        #expect(drainer.totals.lost == 0)
        #expect(records.count == events + 1)
        #expect(records.contains { $0.id == rtts_payload_id(base + 1, 0) }, "the warm-up record")
        let stepped = records.filter { $0.id.map { rtts_payload_thread($0) } != base + 1 }
        #expect(stepped.map { $0.id } == (0..<UInt64(events)).map { Optional(rtts_payload_id(base, $0)) },
                "every stepped record intact, in order")
        let slowLane = buffer.layout.slowLaneRing
        if buffer.ringProtocol == .rseq && fields["path"] == "rseqCPU" {
            // Measured on Linux 6.18: every single-step trap is a ptrace stop, i.e. a context
            // switch, and the kernel aborts a sequence interrupted by one on the way back to user
            // space, so no sequence can ever complete under single-stepping. After
            // Producer.maximumAttempts aborts each record must leave for the slow lane (a lock-free
            // ring) instead of retrying forever, and it does.
            #expect(stepped.allSatisfy { $0.ring == slowLane },
                    "rings: \(stepped.map(\.ring)) (slow lane is \(slowLane))")
        } else {
            // Lock-free protocol (this test process runs in fallback mode): no sequence to abort.
            report("single-step: buffer protocol \(buffer.ringProtocol), path \(fields["path"] ?? "?")")
        }
    }

    // MARK: - valgrind

    static let valgrind = "/usr/bin/valgrind"

    @Test("valgrind: rseq is refused (ENOSYS), the fallback protocol is exact",
          .enabled(if: HelperProcess.isExecutable(valgrind), "valgrind is not installed at /usr/bin/valgrind"),
          .timeLimit(.minutes(2)))
    func underValgrind() throws {
        let stressArguments = ["stress", "--mode", "discard", "--threads", "3", "--events", "2000", "--time-limit", "90"]
        var outcome = try HelperProcess.run(
            Self.valgrind, ["--tool=none", "--quiet", HelperProcess.helperPath] + stressArguments,
            environment: HelperProcess.childEnvironment(), timeout: .seconds(110))
        var binary = "the helper"
        if outcome.stderr.contains("debuginfo reader") {
            // valgrind 3.19 (Debian 12) cannot read the DWARF 5 that Swift 6 emits (DW_FORM_strx1,
            // DW_FORM_addrx) and gives up before running anything. The code is what matters:
            // run a copy without debug sections instead.
            let objcopy = "/usr/bin/objcopy"
            try #require(HelperProcess.isExecutable(objcopy), "valgrind cannot read the helper's debug info and \(objcopy) is missing to strip it:\n\(outcome)")
            let copy = "/tmp/rseqtrace-testhelper-nodebug-\(getpid())"
            // SAFETY: unlink reads the NUL-terminated copy of `copy` Swift passes for the call.
            defer { _ = unsafe unlink(copy) }
            let strip = try HelperProcess.run(objcopy, ["--strip-debug", HelperProcess.helperPath, copy],
                                              environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
            try #require(strip.exitCode == 0, "\(strip)")
            outcome = try HelperProcess.run(
                Self.valgrind, ["--tool=none", "--quiet", copy] + stressArguments,
                environment: HelperProcess.childEnvironment(), timeout: .seconds(110))
            binary = "a copy of the helper without debug info (valgrind cannot read Swift's DWARF 5)"
        }
        report("valgrind (\(binary)): \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")
        let fields = try #require(outcome.fields(of: "stress:"), "\(outcome)")
        #expect(fields["mode"] == "fallback", "\(outcome)")
        #expect(fields["path"] == "lockFree")
        #expect(fields["emitted"] == "6000")
        let recorded = try #require(fields["recorded"].flatMap { UInt64($0) })
        let lost = try #require(fields["lost"].flatMap { UInt64($0) })
        #expect(recorded + lost == 6000)
        #expect(recorded > 0)
        #expect(fields["damaged"] == "0")
        #expect(fields["duplicates"] == "0")
        #expect(fields["regressions"] == "0")
        #expect(fields["misattributed"] == "0")
        #expect(outcome.exitCode == 0, "\(outcome)")
    }

    // MARK: - Race-widening injection

    /// With ~530 µs of `pause` inside every sequence and a timer signal every 20–50 µs, no
    /// sequence can complete: every record must end up in the slow lane.
    @Test("inject: debug builds widen every critical section (rseqtrace_inject_loops)",
          .timeLimit(.minutes(1)))
    func injectionWidensCriticalSections() throws {
        let threads = 2
        let events = 300
        let outcome = try HelperProcess.runHelper(
            ["stress", "--mode", "discard", "--threads", "\(threads)", "--events", "\(events)", "--signals",
             "--inject", "20000", "--time-limit", "40"], timeout: .seconds(50))
        report("inject: \(outcome.stdout.split(separator: "\n").first ?? "") (\(outcome.duration))")
        let fields = try #require(outcome.fields(of: "stress:"), "\(outcome)")
        #expect(outcome.exitCode == 0, "\(outcome)")
        #expect(fields["emitted"] == "\(threads * events)")
        try #require(fields["mode"] == ProcessModeSetting.inherited.expectedMode)
        let slowLane = try #require(fields["slowlane"].flatMap { Int($0) })
        #expect(slowLane >= threads * events * 9 / 10,
                "slowlane=\(slowLane) of \(threads * events): the sequences were not widened")
    }

    // MARK: - Producer mode

    @Test("mode: this process and helpers started in each environment pick the expected mode",
          .timeLimit(.minutes(1)))
    func producerMode() throws {
        var expected = rtts_glibc_rseq_size() > 0 ? ProducerMode.rseq : .rseqSelfRegistered
        if let text = SystemInfo.environmentValue(RseqRuntime.forceFallbackVariable), !text.isEmpty, text != "0" {
            expected = .fallback
        }
        #expect(RseqRuntime.status.mode == expected, "\(RseqRuntime.status)")
        for setting in ProcessModeSetting.allCases {
            let outcome = try HelperProcess.runHelper(["mode"], setting: setting.environment, timeout: .seconds(30))
            #expect(outcome.exitCode == 0, "\(outcome)")
            let line = outcome.stdout.split(separator: "\n").first.map(String.init) ?? ""
            #expect(line == "mode=\(setting.expectedMode)", "\(setting.testDescription): \(outcome)")
        }
    }
}
