// rseqtrace-ecosystem-bench: the per-call cost of the ecosystem backends next to their alternatives,
// in one process and one run (release build; one thread pinned to one CPU):
//
//   swift build -c release --product rseqtrace-ecosystem-bench
//   .build/release/rseqtrace-ecosystem-bench [iterations per repetition] [repetitions]
//
// Rows: a typed emit of the fields of a log message; Logger.info through RseqTraceLogHandler
// (logger metadata only, and with metadata of its own), a filtered-out debug, the event disabled;
// Logger.info through swift-log's StreamLogHandler writing to /dev/null and through
// SwiftLogNoOpLogHandler; withSpan through RseqTraceTracer and through NoOpTracer; swift-metrics'
// Counter.increment() through RseqTraceMetricsFactory (a per-CPU counter) on 1 thread and on 2 threads
// pinned on 2 CPUs, next to an Atomic<Int> shared by the same threads (the throughput ratio 2 threads
// / 1 thread of each). Each row prints the median over the repetitions of nanoseconds per call. The buffer holds every event of the run
// (discard mode, preallocated), so nothing is dropped; the recorded and lost counts are printed.
#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import CRseqTraceBench
import Logging
import RseqTrace
import RseqTraceConsumer
import RseqTraceLogging
import RseqTraceMetrics
import RseqTraceSupport
import RseqTraceTracing
import Synchronization
import Tracing

/// What a `Logger.info` through RseqTraceLogHandler records, written directly by a typed tracepoint.
let benchLog = Tracepoint8<LogLevelField, String, TraceString<1024>, TraceString<1024>, String, String, String, UInt32>(
    "bench:log", fields: "level label message metadata source file function line")

/// A stream that writes to /dev/null with write(2), as StreamLogHandler would to a file.
struct DevNullStream: TextOutputStream, Sendable {
    let descriptor: Int32
    mutating func write(_ string: String) {
        var text = string
        // SAFETY: the string's contiguous UTF-8 bytes stay valid during the call.
        text.withUTF8 { bytes in _ = unsafe Glibc.write(descriptor, bytes.baseAddress, bytes.count) }
    }
}

/// Median nanoseconds per call of `body` run `iterations` times, over `repetitions` timed runs
/// (after one untimed run).
func measure(_ iterations: Int, _ repetitions: Int, _ body: (Int) -> Void) -> Double {
    for i in 0..<min(iterations, 1000) { body(i) }
    var samples: [Double] = []
    for _ in 0..<repetitions {
        let start = SystemClock.monotonic()
        for i in 0..<iterations { body(i) }
        samples.append(Double(SystemClock.monotonic() - start) / Double(iterations))
    }
    samples.sort()
    return samples[samples.count / 2]
}

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let iterations = max(1000, arguments.first ?? 20_000)
let repetitions = max(1, arguments.dropFirst().first ?? 5)

// Pinned, so every event goes to one ring, and its ring holds them all.
let cpu = sched_getcpu()
if cpu >= 0 { _ = bench_pin_to_cpu(cpu) }

var configuration = TraceConfiguration(name: "rseqtrace-ecosystem-bench-\(getpid())", ringSize: 1 << 28, subbufferSize: 1 << 20)
configuration.preallocates = true
let buffer: SharedTraceBuffer
do {
    buffer = try SharedTraceBuffer.create(configuration)
    buffer.removeName()
    try TraceRuntime.attach(buffer)
} catch {
    printError("rseqtrace-ecosystem-bench: cannot create the trace buffer: \(error)")
    exit(1)
}

/// Prints the row `name`: the median ns per call of `body`, which it returns.
@discardableResult
func row(_ name: String, _ body: (Int) -> Void) -> Double {
    let nanoseconds = measure(iterations, repetitions, body)
    print("\(name.padding(52)) \(String(format1: nanoseconds)) ns")
    return nanoseconds
}

/// The goal verdicts printed at the end: (met, text).
var goals: [(met: Bool, text: String)] = []

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: Swift.max(0, width - count)) }
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        self = "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }
}

print("rseqtrace-ecosystem-bench: \(iterations) calls x \(repetitions) repetitions, median ns per call, mode \(RseqRuntime.mode.rawValue), cpu \(cpu)")

let typedEmit = row("typed emit of a log message's fields (bench:log)") { i in
    benchLog.emit(.info, "bench", "request handled", "service=items", "bench", "bench/main.swift", "row()", UInt32(truncatingIfNeeded: i))
}

var rseqLogger = Logger(label: "bench") { RseqTraceLogHandler(label: $0, logLevel: .info, metadataProvider: nil) }
rseqLogger[metadataKey: "service"] = "items"
let loggerInfo = row("Logger.info, RseqTraceLogHandler") { _ in rseqLogger.info("request handled") }
goals.append((loggerInfo <= 5 * typedEmit,
              "Logger.info ≤ 5 × a typed emit of the same fields: \(String(format2: loggerInfo / typedEmit))× "
                  + "(\(String(format1: loggerInfo)) vs \(String(format1: typedEmit)) ns)"))
row("Logger.info + message metadata, RseqTraceLogHandler") { i in
    rseqLogger.info("request handled", metadata: ["request": "\(i)"])
}
row("Logger.debug filtered out, RseqTraceLogHandler") { _ in rseqLogger.debug("request handled") }

// SAFETY: open takes the path by value (a temporary C string).
let devNull = unsafe open("/dev/null", O_WRONLY | O_CLOEXEC)
var streamLogger = Logger(label: "bench") { StreamLogHandler(label: $0, stream: DevNullStream(descriptor: devNull), metadataProvider: nil) }
streamLogger[metadataKey: "service"] = "items"
row("Logger.info, StreamLogHandler to /dev/null") { _ in streamLogger.info("request handled") }

var noOpLogger = Logger(label: "bench") { SwiftLogNoOpLogHandler($0) }
noOpLogger[metadataKey: "service"] = "items"
row("Logger.info, SwiftLogNoOpLogHandler") { _ in noOpLogger.info("request handled") }

let tracer = RseqTraceTracer()
row("withSpan, RseqTraceTracer") { _ in tracer.withSpan("op") { _ in } }
row("withSpan + 1 attribute, RseqTraceTracer") { i in tracer.withSpan("op") { $0.attributes["i"] = i } }
let noOpTracer = NoOpTracer()
row("withSpan, NoOpTracer") { _ in noOpTracer.withSpan("op") { _ in } }

// Counters: the per-CPU counter against one Atomic<Int> that every thread adds to.
final class SharedAtomic: Sendable {
    let value = Atomic<Int>(0)
}

/// What the threads of one parallel run share: the start barrier and each thread's times.
final class ParallelRun: Sendable {
    let ready = Atomic<Int>(0)
    let go = Atomic<Bool>(false)
    let wall = Atomic<UInt64>(0)
    let cpu = Atomic<UInt64>(0)
}

/// What the threads of a parallel run do: increment the swift-metrics Counter, or the shared atomic.
enum ParallelWork: Sendable {
    case counter(Counter)
    case atomic(SharedAtomic)
}

/// Nanoseconds per increment per thread, with `cpus.count` threads each pinned on its CPU, started
/// together, each making `iterations` increments: the median over `repetitions` runs (after one
/// untimed run) of the slowest thread's wall time and of the mean thread CPU time. On a machine
/// shared with other work, the CPU time is what the increments cost (cache-line transfers stall
/// the thread and count as its CPU time); the wall time includes time other processes took.
func measureParallel(_ cpus: [Int32], _ iterations: Int, _ repetitions: Int, _ work: ParallelWork)
    -> (wall: Double, cpu: Double) {
    var walls: [Double] = []
    var cpuTimes: [Double] = []
    for _ in 0...repetitions {
        let run = ParallelRun()
        let workers = WorkerThreads(count: cpus.count) { index in
            _ = bench_pin_to_cpu(cpus[index])
            run.ready.wrappingAdd(1, ordering: .releasing)
            while !run.go.load(ordering: .acquiring) {}
            let start = SystemClock.monotonic()
            let cpuStart = SystemClock.threadCPUTime()
            switch work {
            case .counter(let counter): for _ in 0..<iterations { counter.increment() }
            case .atomic(let atomic): for _ in 0..<iterations { atomic.value.wrappingAdd(1, ordering: .relaxed) }
            }
            run.cpu.wrappingAdd(SystemClock.threadCPUTime() - cpuStart, ordering: .relaxed)
            _ = run.wall.max(SystemClock.monotonic() - start, ordering: .relaxed)
        }
        while run.ready.load(ordering: .acquiring) < cpus.count {}
        run.go.store(true, ordering: .releasing)
        workers.join()
        walls.append(Double(run.wall.load(ordering: .relaxed)) / Double(iterations))
        cpuTimes.append(Double(run.cpu.load(ordering: .relaxed)) / Double(cpus.count * iterations))
    }
    walls.removeFirst()   // the untimed warm-up
    cpuTimes.removeFirst()
    walls.sort()
    cpuTimes.sort()
    return (walls[walls.count / 2], cpuTimes[cpuTimes.count / 2])
}

let metricsFactory = RseqTraceMetricsFactory(buffer: buffer)
let counter = Counter(label: "bench.requests", factory: metricsFactory)
let traceCounter = (metricsFactory.makeCounter(label: "bench.raw", dimensions: []) as? RseqTraceCounterHandler)?.counter
let increment = row("Counter.increment(), RseqTraceMetricsFactory") { _ in counter.increment() }
goals.append((increment <= 3, "Counter.increment() ≤ 3 ns: \(String(format1: increment)) ns"))
if let traceCounter { row("TraceCounter.increment() (the per-CPU add alone)") { _ in traceCounter.increment() } }
let atomic = SharedAtomic()
row("Atomic<Int>.wrappingAdd, one thread") { _ in atomic.value.wrappingAdd(1, ordering: .relaxed) }
let online = Int32(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
if online >= 2 {
    let counterIterations = iterations * 50
    func report(_ name: String, _ result: (wall: Double, cpu: Double)) {
        print("\(name.padding(52)) \(String(format1: result.cpu)) ns CPU, \(String(format1: result.wall)) ns wall per thread")
    }
    let one = measureParallel([0], counterIterations, repetitions, .counter(counter))
    let two = measureParallel([0, 1], counterIterations, repetitions, .counter(counter))
    let atomicOne = measureParallel([0], counterIterations, repetitions, .atomic(atomic))
    let atomicTwo = measureParallel([0, 1], counterIterations, repetitions, .atomic(atomic))
    report("Counter.increment(), 1 thread on cpu 0", one)
    report("Counter.increment(), 2 threads on cpus 0, 1", two)
    report("Atomic<Int> shared, 1 thread on cpu 0", atomicOne)
    report("Atomic<Int> shared, 2 threads on cpus 0, 1", atomicTwo)
    // Throughput ratio: increments per second with 2 threads over increments per second with 1.
    print("throughput 2 threads / 1 thread (CPU time): per-CPU counter \(String(format2: 2 * one.cpu / two.cpu))x, "
          + "Atomic<Int> \(String(format2: 2 * atomicOne.cpu / atomicTwo.cpu))x; (wall time): per-CPU counter "
          + "\(String(format2: 2 * one.wall / two.wall))x, Atomic<Int> \(String(format2: 2 * atomicOne.wall / atomicTwo.wall))x")
    let scaling = 2 * one.cpu / two.cpu
    goals.append((scaling >= 1.8, "Counter.increment() on 2 threads ≥ 1.8 × 1 thread's throughput (CPU time): \(String(format2: scaling))×"))
    let expected = Int64(min(iterations, 1000) + iterations * repetitions)
        + Int64(counterIterations) * Int64(repetitions + 1) * 3
    print("counter bench.requests=\(counter.value(in: buffer)) expected=\(expected)")
}

do {
    try TraceRuntime.disable("log:*")
    try TraceRuntime.disable("rseqtrace:*")
    try TraceRuntime.disable("tracing:*")
} catch {
    printError("rseqtrace-ecosystem-bench: \(error)")
    exit(1)
}
row("Logger.info, RseqTraceLogHandler, log:message disabled") { _ in rseqLogger.info("request handled") }
row("withSpan, RseqTraceTracer, every span event disabled") { _ in tracer.withSpan("op") { _ in } }

let drainer = TraceDrainer(buffer: buffer)
buffer.markFinished()
_ = try? drainer.drainOnce(quiescent: true) { _ in }
print("recorded=\(drainer.totals.recorded) lost=\(drainer.totals.lost) problems=\(TraceRuntime.problems.count)")
print("goals:")
for goal in goals { print("  \(goal.met ? "PASS" : "FAIL") \(goal.text)") }

extension Counter {
    /// The value of the per-CPU counter this Counter's label names in `buffer`.
    func value(in buffer: SharedTraceBuffer) -> Int64 {
        buffer.counterValues().first { $0.name == label }?.value ?? -1
    }
}
