// rseqtrace-example: a small instrumented program.
//
//   swift run rseqtrace-example                      runs untraced (tracepoints stay disabled)
//   swift run rseqtrace record -- .build/debug/rseqtrace-example 4 100000
//                                                    traced: `record` creates the trace object and
//                                                    passes its name in RSEQTRACE_BUFFER; the
//                                                    tracepoints attach to it on first use
//   .build/debug/rseqtrace-example 2 --duration 60 &
//   rseqtrace attach $! --duration 5                 traced while it runs (see `rseqtrace list`)
//
// Arguments: [threads] [events per thread] [--duration SECONDS] [--rate EVENTS_PER_SECOND] [--spans].
// Each worker emits `example:work` events (Events.swift): the given number as fast as it can, or
// with --duration, continuously at --rate events per second per worker (default 1000) until
// that many seconds have passed. With --spans, each worker first records `example:worker` (its
// index and thread id), and its work is in nested spans: `example:batch` around each 100 events,
// `example:step` around each 10 events of a batch (rseqtrace:span_begin / rseqtrace:span_end).
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

var numbers: [Int] = []
var duration: Double?
var rate = 1000
var spans = false
var words = CommandLine.arguments.dropFirst()
while let word = words.popFirst() {
    switch word {
    case "--spans":
        spans = true
    case "--duration", "--rate":
        guard let value = words.popFirst().flatMap(Double.init), value > 0, value < 1e9 else {
            printError("rseqtrace-example: \(word) needs a positive number")
            exit(64)
        }
        if word == "--duration" { duration = value } else { rate = Int(value) }
    default:
        guard let number = Int(word), number >= 0 else {
            printError("rseqtrace-example: unknown argument '\(word)'; usage: rseqtrace-example [threads] [events per thread] [--duration SECONDS] [--rate N] [--spans]")
            exit(64)
        }
        numbers.append(number)
    }
}
let threads = max(1, min(numbers.first ?? 2, 256))
let events = max(0, numbers.dropFirst().first ?? 10_000)
let withSpans = spans

if let duration {
    let end = SystemClock.monotonic() + UInt64(duration * 1e9)
    let pause = UInt64(max(1, 1_000_000_000 / rate))
    WorkerThreads.run(count: threads) { worker in
        var value: UInt64 = 0x9E37_79B9
        var iteration: UInt64 = 0
        var next = SystemClock.monotonic()
        while next < end {
            value = value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            workDone.emit(UInt32(worker), iteration, value)
            iteration += 1
            next += pause
            let now = SystemClock.monotonic()
            if next > now { SystemClock.sleep(nanoseconds: next - now) }
        }
    }
    print("rseqtrace-example: \(threads) threads for \(duration) s at \(rate) events/s each")
} else {
    WorkerThreads.run(count: threads) { worker in
        var value: UInt64 = 0x9E37_79B9
        if withSpans {
            workerStarted.emit(UInt32(worker), Int64(WorkerThreads.currentThreadID))
            var iteration: UInt64 = 0
            while iteration < UInt64(events) {
                let batchEnd = min(iteration + 100, UInt64(events))
                withTraceSpan("example:batch") {
                    while iteration < batchEnd {
                        let stepEnd = min(iteration + 10, batchEnd)
                        withTraceSpan("example:step") {
                            while iteration < stepEnd {
                                value = value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                                workDone.emit(UInt32(worker), iteration, value)
                                iteration += 1
                            }
                        }
                    }
                }
            }
            return
        }
        for iteration in 0..<UInt64(events) {
            value = value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407   // "work"
            workDone.emit(UInt32(worker), iteration, value)
        }
    }
    print("rseqtrace-example: \(threads) threads x \(events) events, traced: \(TraceRuntime.attachedBuffer != nil)")
}
