import CRseqTraceBench
import RseqTraceConsumer
import Synchronization
import RseqTraceSupport

/// The loop body of one configuration: emits events `start..<end` on the calling thread.
///
/// Each configuration is its own type so that `measure` specializes and the emit path inlines
/// into the loop, the way it does in an instrumented program.
protocol MeasuredLoop: Sendable {
    func run(from start: UInt64, to end: UInt64)
}

/// What one thread of a run measured.
struct ThreadMeasurement: Sendable {
    var cpu: Int32 = -1
    var pinError: Int32 = 0
    /// CLOCK_MONOTONIC around the timed loop.
    var start: UInt64 = 0
    var end: UInt64 = 0
    /// malloc & co. calls made by this thread during the timed loop.
    var allocations: UInt64 = 0

    var nanoseconds: UInt64 { end &- start }
}

/// Threads wait here after their warm-up so that the timed loops start together.
private final class StartLine: Sendable {
    let arrived = Atomic<Int>(0)
    let results: Mutex<[ThreadMeasurement]>

    init(threads: Int) {
        results = Mutex([ThreadMeasurement](repeating: ThreadMeasurement(), count: threads))
    }
}

/// The CPU thread `index` is pinned to: the allowed CPUs in order, wrapping around.
func benchCPU(forThread index: Int) -> Int32 {
    let allowed = Int(bench_allowed_cpus())
    return bench_allowed_cpu(Int32(index % allowed))
}

/// Runs `loop` on `threads` pinned threads: `warmup` untimed events each, a start line, then
/// `events` events each timed with CLOCK_MONOTONIC (the same protocol as the LTTng C program).
func measure<Loop: MeasuredLoop>(_ loop: Loop, threads: Int, events: UInt64, warmup: UInt64) -> [ThreadMeasurement] {
    let line = StartLine(threads: threads)
    WorkerThreads.run(count: threads) { index in
        var measurement = ThreadMeasurement()
        measurement.cpu = benchCPU(forThread: index)
        if measurement.cpu >= 0 { measurement.pinError = bench_pin_to_cpu(measurement.cpu) }
        loop.run(from: 0, to: warmup)
        line.arrived.wrappingAdd(1, ordering: .acquiringAndReleasing)
        while line.arrived.load(ordering: .acquiring) < threads {}
        let allocations = bench_thread_allocations()
        measurement.start = bench_monotonic_ns()
        loop.run(from: warmup, to: warmup &+ events)
        measurement.end = bench_monotonic_ns()
        measurement.allocations = bench_thread_allocations() &- allocations
        line.results.withLock { $0[index] = measurement }
    }
    return line.results.withLock { $0 }
}
