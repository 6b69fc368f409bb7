import RseqTrace
import RseqTraceConsumer
import Testing

// README's "Instrumenting a program" snippet, compiled as written. Nothing in this process attaches
// the runtime (runtime behaviour is tested in rseqtrace-testhelper), so the tracepoint stays disabled.

enum Method: UInt8, TraceEnum { case get, post, put }   // written with its case names

let httpRequest = Tracepoint4<Method, TraceString<64>, UInt16, UInt64>(
    "http:request", fields: "method path status latency_ns")

func handled(_ method: Method, _ path: String, _ status: UInt16, _ latency: UInt64) {
    httpRequest.emit(method, TraceString(path), status, latency)
}

// README's "The producer and consumer API (low level)" snippet, compiled as written inside a function
// that supplies the values it names (`latencyNanos`, `status`, `payload`).
func lowLevelSnippet(name: String, latencyNanos: UInt64, status: UInt16, payload: [UInt8]) throws
    -> (recorded: UInt64, lost: UInt64) {
    let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, mode: .discard))
    let request = try buffer.registerEvent(EventSchema(name: "http:request", fields: [
        EventField("latency_ns", .uint64), EventField("status", .uint16),
    ]))
    let producer = buffer.makeProducer()          // keeps the buffer alive; copy it to every thread

    if let r = producer.reserve(eventID: request, payloadSize: 10) {
        r.store(latencyNanos, at: 0)
        r.store(status, at: 8)
        producer.commit(r)
    }

    _ = producer.write(eventID: request, bytes: payload.span)

    let drainer = TraceDrainer(buffer: buffer)
    try drainer.drainOnce { record in print(record.eventID, record.timestamp) }
    print(drainer.totals.recorded, drainer.totals.lost)
    return (drainer.totals.recorded, drainer.totals.lost)
}

@Suite("README snippets")
struct ReadmeSnippetTests {
    @Test("the typed tracepoint snippet compiles; unattached, it records nothing and stays disabled")
    func typedSnippet() {
        handled(.post, "/index", 200, 5123)
        let enabled = httpRequest.isEnabled
        #expect(!enabled)
        #expect(Tracepoint4<Method, TraceString<64>, UInt16, UInt64>.fieldTypes() == [
            .enumeration(EnumerationType(bits: 8, isSigned: false, cases: [
                EnumerationCase("get", 0), EnumerationCase("post", 1), EnumerationCase("put", 2)])),
            .string(maxBytes: 64), .uint16, .uint64,
        ])
    }

    @Test("the low-level producer and consumer snippet compiles and records both of its events")
    func lowLevelSnippetRecords() throws {
        let totals = try lowLevelSnippet(name: UnitTrace.name("readme"), latencyNanos: 5123, status: 200,
                                         payload: [0x03, 0x14, 0, 0, 0, 0, 0, 0, 0xC8, 0])
        #expect(totals.recorded == 2)
        #expect(totals.lost == 0)
    }
}
