import RseqTrace
import RseqTraceMacros
import Testing

// README's macro snippets, compiled as written from ReadmeSnippets.generated.swift (written by
// Tools/readme-snippets). Nothing in this process attaches the runtime, so the event is disabled.

@Suite("README macro snippets")
struct ReadmeMacroSnippetTests {
    @Test("the @TraceEvent and #trace snippets compile; disabled, #trace does not evaluate its arguments")
    func macroSnippets() {
        var calls = 0
        macroSnippet(elapsed: {
            calls += 1
            return 5123
        })
        #expect(calls == 0)
        #expect(HTTPRequest.fieldTypes() == [Method.traceFieldType, .string(maxBytes: 64), .uint16, .uint64])
        // The same event as the Tracepoint4 snippet's: @TraceField names the last field latency_ns.
        #expect(HTTPRequest.tracepoint.fieldNames.description == "method path status latency_ns")
        #expect(httpRequest.site.fieldNames.description == HTTPRequest.tracepoint.fieldNames.description)
    }
}
