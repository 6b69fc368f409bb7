// rseqtrace-example: a small instrumented program.
//
//   swift run rseqtrace-example                      runs untraced
//   swift run rseqtrace record -- .build/debug/rseqtrace-example 4 100000
//                                                    traced: `record` creates the trace object and
//                                                    passes its name in RSEQTRACE_BUFFER
//
// Arguments: [threads] [events per thread]. Each worker emits `example:work` events.
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let threads = max(1, min(arguments.first ?? 2, 256))
let events = max(0, arguments.dropFirst().first ?? 10_000)

let schema = EventSchema(name: "example:work", fields: [
    EventField("worker", .uint32), EventField("iteration", .uint64), EventField("value", .uint64),
])

let buffer: SharedTraceBuffer?
do {
    buffer = try SharedTraceBuffer.openFromEnvironment()
} catch {
    print("rseqtrace-example: tracing disabled: \(error)")
    buffer = nil
}
let eventID: UInt16
do {
    eventID = try buffer?.registerEvent(schema) ?? 0
} catch {
    print("rseqtrace-example: cannot register example:work: \(error)")
    exit(1)
}
let producer = buffer?.makeProducer()

WorkerThreads.run(count: threads) { worker in
    var value: UInt64 = 0x9E37_79B9
    for iteration in 0..<UInt64(events) {
        value = value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407   // "work"
        if let producer, let reservation = producer.reserve(eventID: eventID, payloadSize: schema.payloadSize) {
            reservation.store(UInt32(worker), at: 0)
            reservation.store(iteration, at: 4)
            reservation.store(value, at: 12)
            producer.commit(reservation)
        }
    }
}
print("rseqtrace-example: \(threads) threads x \(events) events, traced: \(buffer != nil)")
