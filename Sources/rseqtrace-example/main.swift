// rseqtrace-example: a small instrumented program.
//
//   swift run rseqtrace-example                      runs untraced (tracepoints stay disabled)
//   swift run rseqtrace record -- .build/debug/rseqtrace-example 4 100000
//                                                    traced: `record` creates the trace object and
//                                                    passes its name in RSEQTRACE_BUFFER; the
//                                                    tracepoints attach to it on first use
//
// Arguments: [threads] [events per thread]. Each worker emits `example:work` events (Events.swift).
import RseqTrace
import RseqTraceSupport

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let threads = max(1, min(arguments.first ?? 2, 256))
let events = max(0, arguments.dropFirst().first ?? 10_000)

WorkerThreads.run(count: threads) { worker in
    var value: UInt64 = 0x9E37_79B9
    for iteration in 0..<UInt64(events) {
        value = value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407   // "work"
        workDone.emit(UInt32(worker), iteration, value)
    }
}
print("rseqtrace-example: \(threads) threads x \(events) events, traced: \(TraceRuntime.attachedBuffer != nil)")
