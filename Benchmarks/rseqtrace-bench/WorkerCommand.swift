#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CRseqTraceBench
import RseqTrace
import RseqTraceLTTng
import RseqTraceConsumer
import RseqTraceFormats
import RseqTraceSupport

extension Workload: ExpressibleByArgument {}
extension Configuration: ExpressibleByArgument {}

/// `rseqtrace-bench worker`: one measured run of one configuration, in its own process (the
/// harness spawns it; `TraceRuntime` is process-wide, so each run attaches exactly one buffer).
///
/// Prints one line: `result key=value ...` (the keys of `RunResult`).
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one configuration once and print its measurements (spawned by `run`).")

    @Option(help: "The configuration to run.")
    var config: Configuration

    @Option(help: "event (2 x u64 + u32) or string (64 bytes).")
    var workload: Workload = .event

    @Option(help: "Measured threads, pinned to the allowed CPUs in order.")
    var threads: Int = 1

    @Option(help: "Timed events per thread.")
    var events: UInt64 = 1_000_000

    @Option(help: "Untimed warm-up events per thread (before the start line).")
    var warmup: UInt64 = 10_000

    @Option(help: "Write the drained trace here as CTF (RseqTrace configurations; the directory must not exist).")
    var traceOutput: String?

    func validate() throws {
        guard (1...1024).contains(threads) else { throw ValidationError("--threads must be 1...1024") }
        guard events > 0 else { throw ValidationError("--events must be positive") }
        guard !config.isLTTng || config == .rseqtraceLTTng else { throw ValidationError("LTTng runs use the rseqtrace-bench-lttng program") }
    }

    func run() throws {
        guard bench_allocation_counting_works() != 0 else {
            printError("rseqtrace-bench worker: the malloc interposer is not in effect; allocation counts would be wrong")
            throw ExitCode.failure
        }
        guard benchStringText.text.utf8.elementsEqual(cString(bench_string_text)) else {
            printError("rseqtrace-bench worker: the Swift and C string payloads differ")
            throw ExitCode.failure
        }
        var result: RunResult
        do {
            switch config {
            case .rseqtraceDiscard, .rseqtraceOverwrite, .rseqtraceFallback, .rseqtraceDisabled, .rseqtraceProducer:
                result = try runRseqTrace()
            case .mutexRing, .perCPURing:
                result = try runBaselineRing()
            case .rdtsc: result = RunResult(measure(RdtscLoop(), threads: threads, events: events, warmup: warmup))
            case .clockGettime: result = RunResult(measure(ClockGettimeLoop(), threads: threads, events: events, warmup: warmup))
            case .empty: result = RunResult(measure(EmptyLoop(), threads: threads, events: events, warmup: warmup))
            case .alu: result = RunResult(measure(ALULoop(), threads: threads, events: events, warmup: warmup))
            case .rseqtraceLTTng: result = try runBridge()
            case .lttngEnabled, .lttngDisabled: throw ValidationError("not a worker configuration")
            }
        } catch let error as TraceError {
            printError("rseqtrace-bench worker: \(config.rawValue): \(error)")
            throw ExitCode.failure
        }
        if let pinned = result.threadResults.first(where: { $0.pinError != 0 }) {
            printError("rseqtrace-bench worker: cannot pin a thread to CPU \(pinned.cpu): errno \(pinned.pinError)")
            throw ExitCode.failure
        }
        result.fields["config"] = config.rawValue
        result.fields["workload"] = workload.rawValue
        result.fields["warmup"] = String(warmup)
        result.fields["events"] = String(events)
        print(result.line)
    }

    /// Bytes of ring per CPU that hold every record of the run (`recordSize` bytes each) with
    /// room for sub-buffer begin records and padding: a power of two, at most 1 GiB.
    func ringSize(recordSize: Int) -> Int {
        let allowed = Int(bench_allowed_cpus())
        let threadsPerCPU = (threads + allowed - 1) / allowed
        let bytes = Int(events + warmup) * threadsPerCPU * recordSize
        var size = 1 << 20
        while size < bytes + bytes / 16 + (256 << 10) && size < 1 << 30 { size <<= 1 }
        return size
    }

    /// Typed tracepoints forwarded to LTTng-UST only (no RseqTrace buffer); run inside an LTTng
    /// session by the LTTng runner, which counts what LTTng recorded.
    func runBridge() throws(TraceError) -> RunResult {
        _ = try LTTngBridge.install(backend: .forwarder)
        let measurements = workload == .event
            ? measure(TracepointEventLoop(), threads: threads, events: events, warmup: warmup)
            : measure(TracepointStringLoop(), threads: threads, events: events, warmup: warmup)
        if let problem = TraceRuntime.problems.first {
            throw TraceError(.invalidConfiguration, "tracepoint problem: \(problem)")
        }
        var result = RunResult(measurements)
        result.fields["mode"] = RseqRuntime.mode.rawValue
        return result
    }

    func runRseqTrace() throws(TraceError) -> RunResult {
        // The fallback row measures the protocol of processes without rseq: refuse to report rseq
        // figures under its name.
        if config == .rseqtraceFallback && RseqRuntime.mode != .fallback {
            throw TraceError(.invalidConfiguration,
                             "the fallback row runs in mode \(RseqRuntime.mode.rawValue), not fallback: start the worker with RSEQTRACE_FORCE_FALLBACK=1")
        }
        let payloadSize = workload == .event ? 20 : 2 + 64
        let recordSize = TraceLayout.recordSize(payloadSize: payloadSize)
        var configuration = TraceConfiguration(name: "rseqtrace-bench-\(getpid())")
        // The rows measure the steady-state fast path: rings populated up front, as a buffer is
        // after its first lap (the first lap's page population is not the producer's per-event cost).
        configuration.preallocates = true
        if config == .rseqtraceOverwrite {
            configuration.mode = .overwrite
            configuration.ringSize = 1 << 20
            configuration.subbufferSize = 64 << 10
        } else {
            // Disabled: nothing is written, a small ring will do.
            configuration.ringSize = config == .rseqtraceDisabled ? 1 << 20 : ringSize(recordSize: recordSize)
            configuration.subbufferSize = max(64 << 10, configuration.ringSize / 64)
        }
        let buffer = try SharedTraceBuffer.create(configuration)
        // Nothing else opens it, and the process exits without releasing it (TraceRuntime keeps
        // attached buffers for the process's lifetime), so the name goes now, not at release.
        buffer.removeName()
        let measurements: [ThreadMeasurement]
        switch config {
        case .rseqtraceProducer:
            let eventID = try buffer.registerEvent(BenchPayload.schema)
            measurements = measure(ProducerWriteLoop(producer: buffer.makeProducer(), eventID: eventID),
                                   threads: threads, events: events, warmup: warmup)
        default:
            try TraceRuntime.attach(buffer)
            if config == .rseqtraceDisabled { try TraceRuntime.disable("bench:*") }
            measurements = workload == .event
                ? measure(TracepointEventLoop(), threads: threads, events: events, warmup: warmup)
                : measure(TracepointStringLoop(), threads: threads, events: events, warmup: warmup)
            if let problem = TraceRuntime.problems.first {
                throw TraceError(.invalidConfiguration, "tracepoint problem: \(problem)")
            }
        }
        var result = RunResult(measurements)
        buffer.markFinished()
        let drainStart = bench_thread_cpu_ns()
        let recorder = try TraceRecorder(buffer: buffer, output: traceOutput, traceName: "rseqtrace-bench",
                                         procname: "rseqtrace-bench", pid: getpid(), hostname: "localhost")
        try recorder.round(quiescent: true)
        let summary = try recorder.finish()
        let drainCPU = bench_thread_cpu_ns() &- drainStart
        let totals = recorder.drainer.totals
        let emitted = UInt64(threads) * (events + warmup)
        result.fields["mode"] = RseqRuntime.mode.rawValue
        result.fields["ring_bytes"] = String(configuration.ringSize)
        result.fields["emitted"] = String(config == .rseqtraceDisabled ? 0 : emitted)
        result.fields["recorded"] = String(totals.recorded)
        result.fields["lost"] = String(totals.lost)
        if let summary {
            result.fields["drain_cpu_ns"] = String(drainCPU)
            result.fields["trace_events"] = String(summary.events)
            result.fields["stream_bytes"] = String(summary.streamBytes)
            result.fields["metadata_bytes"] = String(summary.metadataBytes)
            if let traceOutput, let floor = writeFloor(bytes: summary.streamBytes, beside: traceOutput) {
                result.fields["write_floor_ns"] = String(floor)
            }
        }
        return result
    }

    /// Thread CPU nanoseconds that writing `bytes` bytes costs by themselves: a file next to the
    /// trace written with 256 KiB `write`s (the CTF writer's packet size) from a buffer already in
    /// cache, its blocks reserved ahead in the steps the trace's stream files use, then removed.
    /// What any consumer storing those bytes through the page cache pays.
    func writeFloor(bytes: UInt64, beside trace: String) -> UInt64? {
        let path = trace + "-write-floor"
        // SAFETY: open takes the path by value (a temporary C string).
        let fd = unsafe open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        defer {
            close(fd)
            // SAFETY: as above.
            _ = unsafe unlink(path)
        }
        let chunk = [UInt8](repeating: 0x5A, count: 256 << 10)
        // The trace's own dirty pages go to disk first (not timed: the floor is the CPU these writes
        // cost, not the wait of a write throttled behind the trace's write-back).
        sync()
        let start = bench_thread_cpu_ns()
        var left = bytes
        var reserve = BlockReserve()
        while left > 0 {
            let count = Int(min(left, UInt64(chunk.count)))
            _ = reserve.extend(fd, through: bytes - left + UInt64(count))
            // SAFETY: the array's own bytes, `count` <= its count.
            let written = unsafe chunk.withUnsafeBytes { unsafe write(fd, $0.baseAddress, count) }
            guard written > 0 else { return nil }
            left -= UInt64(written)
        }
        return bench_thread_cpu_ns() &- start
    }

    func runBaselineRing() throws(TraceError) -> RunResult {
        let recordSize = workload == .event ? Int(BENCH_EVENT_RECORD) : Int(BENCH_STRING_RECORD)
        let perCPU = config == .perCPURing
        let count = perCPU ? Int(bench_possible_cpus()) : 1
        // The mutex ring holds every thread's events; a per-CPU ring, those of the threads pinned to its CPU.
        let size = perCPU ? ringSize(recordSize: recordSize) : ringSize(recordSize: recordSize * threads)
        guard let rings = BaselineRings(count: count, size: UInt64(size)) else {
            throw TraceError(.systemCallFailed, "cannot allocate \(count) baseline ring(s) of \(size) bytes")
        }
        defer { rings.destroy() }
        let measurements = switch (perCPU, workload) {
        case (true, .event): measure(PerCPURingEventLoop(rings: rings), threads: threads, events: events, warmup: warmup)
        case (true, .string): measure(PerCPURingStringLoop(rings: rings), threads: threads, events: events, warmup: warmup)
        case (false, .event): measure(MutexRingEventLoop(ring: rings), threads: threads, events: events, warmup: warmup)
        case (false, .string): measure(MutexRingStringLoop(ring: rings), threads: threads, events: events, warmup: warmup)
        }
        var result = RunResult(measurements)
        let emitted = UInt64(threads) * (events + warmup)
        let recorded = rings.reserved / UInt64(recordSize)
        result.fields["emitted"] = String(emitted)
        result.fields["recorded"] = String(recorded)
        result.fields["lost"] = String(emitted &- recorded)
        return result
    }
}

/// The measurements of one run, as the `result` line both workers print.
struct RunResult {
    var threadResults: [ThreadMeasurement]
    var fields: [String: String] = [:]

    init(_ measurements: [ThreadMeasurement]) {
        threadResults = measurements
    }

    /// `result threads=... ns_per_event=... wall_ns=... allocations=... thread_ns=... cpus=... <fields>`.
    var line: String {
        var parts = ["result", "threads=\(threadResults.count)"]
        let first = threadResults.map(\.start).min() ?? 0
        let last = threadResults.map(\.end).max() ?? 0
        parts.append("wall_ns=\(last &- first)")
        parts.append("allocations=\(threadResults.reduce(0) { $0 + $1.allocations })")
        parts.append("thread_ns=" + threadResults.map { String($0.nanoseconds) }.joined(separator: ","))
        parts.append("cpus=" + threadResults.map { String($0.cpu) }.joined(separator: ","))
        for key in fields.keys.sorted() { parts.append("\(key)=\(fields[key]!)") }
        return parts.joined(separator: " ")
    }
}

/// The bytes of a NUL-terminated C character array, without the NUL.
func cString<T>(_ array: T) -> [UInt8] {
    // SAFETY: `array` is a C array imported as a tuple of CChar; reading its own bytes.
    unsafe withUnsafeBytes(of: array) { bytes in unsafe Array(bytes.prefix(while: { $0 != 0 })) }
}
