import RseqTrace
import RseqTraceConsumer
import Testing

// README's Swift snippets are compiled as written from ReadmeSnippets.generated.swift (written by
// Tools/readme-snippets; Tools/test checks it is current). Nothing in this process attaches the
// runtime (runtime behaviour is tested in rseqtrace-testhelper), so the tracepoint stays disabled.

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
