#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CRseqTraceBench
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats
import Synchronization
import RseqTraceSupport

/// `rseqtrace-bench sustained`: producers emit `bench:event` at a set rate for a set time while
/// this process's main thread drains the buffer concurrently and writes CTF to disk.
///
/// The harness searches for the highest rate with no loss. Prints one line:
/// `result threads=T wall_ns=... emitted=... recorded=... lost=... consumer_cpu_ns=... stream_bytes=... trace_events=...`
struct SustainedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sustained",
        abstract: "Emit at a fixed rate while draining concurrently to a CTF trace (spawned by `run`).")

    @Option(help: "Total events per second to aim for (0: as fast as the producers go).")
    var rate: Double = 0

    @Option(help: "How long the producers emit, in milliseconds.")
    var durationMs: UInt64 = 2000

    @Option(help: "Producer threads, pinned to the first allowed CPUs; the consumer takes the next one.")
    var threads: Int = 1

    @Option(help: "Directory for the CTF trace (must not exist, or be empty).")
    var output: String

    @Option(help: "Ring bytes per CPU (a power of two).")
    var ringSize: Int = 4 << 20

    @Option(help: "Sub-buffer bytes (a power of two).")
    var subbufferSize: Int = 256 << 10

    func validate() throws {
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1...64") }
        guard rate >= 0, durationMs > 0 else { throw ValidationError("--rate must be >= 0 and --duration-ms > 0") }
    }

    /// Emitted events, shared by the producers.
    private final class Counters: Sendable {
        let emitted = Atomic<UInt64>(0)
        let finished = Atomic<Int>(0)
    }

    func run() throws {
        do {
            print(try measure())
        } catch {
            printError("rseqtrace-bench sustained: \(error)")
            throw ExitCode.failure
        }
    }

    func measure() throws(TraceError) -> String {
        var configuration = TraceConfiguration(
            name: "rseqtrace-bench-\(getpid())", ringSize: ringSize, subbufferSize: subbufferSize, mode: .discard)
        configuration.preallocates = true   // the steady state, as in `worker`
        let buffer = try SharedTraceBuffer.create(configuration)
        buffer.removeName()  // as in `worker`: nothing else opens it, and it is never released
        try TraceRuntime.attach(buffer)
        _ = benchEvent.isEnabled  // registers bench:event now, so the trace's metadata has it from the start
        let recorder = try TraceRecorder(buffer: buffer, output: output, traceName: "rseqtrace-bench",
                                         procname: "rseqtrace-bench", pid: getpid(), hostname: "localhost")
        // Sub-buffers as they fill, everything committed every 20 ms (as `rseqtrace record` drains).
        recorder.partialSubbufferInterval = .milliseconds(20)
        let allowed = Int(bench_allowed_cpus())
        // Chosen before this thread pins itself: the producer threads inherit its affinity, and
        // the allowed set read from them would then be the consumer's CPU alone.
        let producerCPUs = (0..<threads).map { benchCPU(forThread: $0) }
        if allowed > threads { _ = bench_pin_to_cpu(bench_allowed_cpu(Int32(threads))) }

        let counters = Counters()
        let threads = self.threads
        let duration = durationMs * 1_000_000
        // Nanoseconds between events of one producer; 0: no pacing.
        let interval = rate > 0 ? Double(threads) * 1e9 / rate : 0
        let start = bench_monotonic_ns()
        let producers = WorkerThreads(count: threads) { index in
            _ = bench_pin_to_cpu(producerCPUs[index])
            let batch: UInt64 = 64
            var i: UInt64 = 0
            while true {
                let now = bench_monotonic_ns()
                if now &- start >= duration { break }
                if interval > 0 {
                    let due = start &+ UInt64(Double(i) * interval)
                    if due > now &+ 200_000 {
                        SystemClock.sleep(nanoseconds: due &- now &- 100_000)
                        continue
                    }
                    if due > now { continue }
                }
                for _ in 0..<batch {
                    benchEvent.emit(i, benchMix(i), UInt32(truncatingIfNeeded: i))
                    i &+= 1
                }
            }
            counters.emitted.wrappingAdd(i, ordering: .relaxed)
            counters.finished.wrappingAdd(1, ordering: .releasing)
        }

        let consumerStart = bench_thread_cpu_ns()
        var failure: TraceError?
        while counters.finished.load(ordering: .acquiring) < threads {
            do throws(TraceError) {
                if try recorder.round() == 0 { SystemClock.sleep(microseconds: 100) }
            } catch {
                failure = error
                break
            }
        }
        producers.join()
        let wall = bench_monotonic_ns() &- start
        if let failure { throw failure }
        buffer.markFinished()
        try recorder.round(quiescent: true)
        let summary = try recorder.finish()
        let consumerCPU = bench_thread_cpu_ns() &- consumerStart
        let totals = recorder.drainer.totals
        var fields = [
            "result", "threads=\(threads)", "wall_ns=\(wall)", "rate=\(Int(rate))",
            "emitted=\(counters.emitted.load(ordering: .relaxed))", "recorded=\(totals.recorded)", "lost=\(totals.lost)",
            "consumer_cpu_ns=\(consumerCPU)", "ring_bytes=\(ringSize)",
        ]
        if let summary { fields += ["stream_bytes=\(summary.streamBytes)", "trace_events=\(summary.events)"] }
        return fields.joined(separator: " ")
    }
}
