import RseqTrace
import Testing

// README's "Instrumenting a program" snippet, compiled as written. Nothing in this process attaches
// the runtime (runtime behaviour is tested in rseqtrace-testhelper), so the tracepoint stays disabled.

enum Method: UInt8, TraceEnum { case get, post, put }   // written with its case names

let httpRequest = Tracepoint4<Method, TraceString<64>, UInt16, UInt64>(
    "http:request", fields: "method path status latency_ns")

func handled(_ method: Method, _ path: String, _ status: UInt16, _ latency: UInt64) {
    httpRequest.emit(method, TraceString(path), status, latency)
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
}
