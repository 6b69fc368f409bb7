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
// Arguments: [threads] [events per thread] [--duration SECONDS] [--rate EVENTS_PER_SECOND]
//            [--idle | --wait-for-attach] [--spans].
// Each worker emits `example:work` events (Events.swift): the given number as fast as it can, or
// with --duration, continuously at --rate events per second per worker (default 1000) until
// that many seconds have passed.
// --idle: reach the tracepoint once without emitting (it registers, and the program becomes
// traceable), then sleep for --duration seconds (default 10): an instrumented program with
// nothing to do, to see what one costs while nobody is attached.
// --wait-for-attach: wait (at most --duration seconds, default 60; then exit 1) until the
// tracepoint is enabled (`rseqtrace attach`, or a flight recorder), then emit the given number of
// events per worker as fast as it can and exit: every event it emits is recorded or counted as
// lost, so the count it prints is what an attach that lasts until its exit must account for.
// --spans (with a given number of events): each worker names itself example-w<index>
// (rseqtrace:thread_name), records `example:worker` (its index and thread id), and its work is in
// nested spans: `example:batch` around each 100 events,
// `example:step` around each 10 events of a batch (rseqtrace:span_begin / rseqtrace:span_end).
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

var numbers: [Int] = []
var duration: Double?
var rate = 1000.0
var idle = false
var waitForAttach = false
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
        if word == "--duration" { duration = value } else { rate = value }
    case "--idle":
        idle = true
    case "--wait-for-attach":
        waitForAttach = true
    default:
        guard let number = Int(word), number >= 0 else {
            printError("rseqtrace-example: unknown argument '\(word)'; usage: rseqtrace-example [threads] [events per thread] [--duration SECONDS] [--rate N] [--idle | --wait-for-attach] [--spans]")
            exit(64)
        }
        numbers.append(number)
    }
}
guard !(idle && waitForAttach) else {
    printError("rseqtrace-example: --idle and --wait-for-attach exclude each other")
    exit(64)
}
let threads = max(1, min(numbers.first ?? 2, 256))
let events = max(0, numbers.dropFirst().first ?? 10_000)
let withSpans = spans

if idle {
    // Registers the tracepoint (the runtime starts, with its control socket) and emits nothing.
    let enabled = workDone.isEnabled
    let seconds = duration ?? 10
    SystemClock.sleep(nanoseconds: UInt64(seconds * 1e9))
    print("rseqtrace-example: idle for \(seconds) s, example:work \(enabled ? "enabled" : "disabled") at start")
} else if let duration, !waitForAttach {
    let end = SystemClock.monotonic() + UInt64(duration * 1e9)
    // A fractional rate (0.5: one event every 2 s) is a longer pause, never a division by zero
    // (nor, for a tiny one, a pause beyond UInt64).
    let pause = UInt64(min(1e18, max(1, (1e9 / rate).rounded())))
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
            // Never past the end: a slow rate must not outlast --duration.
            let wake = min(next, end)
            if wake > now { SystemClock.sleep(nanoseconds: wake - now) }
        }
    }
    let rateText = rate == rate.rounded() ? "\(Int(rate))" : "\(rate)"
    print("rseqtrace-example: \(threads) threads for \(duration) s at \(rateText) events/s each")
} else {
    if waitForAttach {
        // The first check registers the tracepoint (the program becomes traceable); each later one
        // is a single load.
        let seconds = duration ?? 60
        let end = SystemClock.monotonic() + UInt64(seconds * 1e9)
        while !workDone.isEnabled {
            guard SystemClock.monotonic() < end else {
                printError("rseqtrace-example: example:work was not enabled within \(seconds) s: attach with rseqtrace attach \(getpid())")
                exit(1)
            }
            SystemClock.sleep(milliseconds: 2)
        }
    }
    WorkerThreads.run(count: threads) { worker in
        var value: UInt64 = 0x9E37_79B9
        if withSpans {
            try? TraceRuntime.nameCurrentThread("example-w\(worker)")
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
