import RseqTrace
import RseqTraceMacros
import SwiftSyntaxMacrosGenericTestSupport
import Testing

@Suite("#span")
struct SpanMacroTests {
    @Test func trailingClosureBecomesWithTraceSpan() {
        expectExpansion(
            #"#span("db:query") { try run(query) }"#,
            expandedSource: #"""
                RseqTrace.withTraceSpan("db:query", {
                        try run(query)
                    })
                """#
        )
    }

    @Test func closureArgumentBecomesWithTraceSpan() {
        expectExpansion(
            #"#span("db:query", body)"#,
            expandedSource: #"RseqTrace.withTraceSpan("db:query", body)"#
        )
    }

    @Test func interpolatedNameIsRefused() {
        expectExpansion(
            #"#span("db:\(table)") { run() }"#,
            expandedSource: #"#span("db:\(table)") { run() }"#,
            diagnostics: [DiagnosticSpec(
                message: "a span name is a string literal without interpolation (it is recorded as a StaticString); "
                    + "put variable parts in an event inside the span",
                line: 1, column: 7)]
        )
    }

    @Test func missingBodyIsExplained() {
        expectExpansion(
            #"#span("db:query")"#,
            expandedSource: #"#span("db:query")"#,
            diagnostics: [DiagnosticSpec(
                message: "#span needs a block to time, e.g. #span(\"db:query\") { try database.run(query) }",
                line: 1, column: 1)]
        )
    }

    /// In real code without a runtime: the block runs once, its value and its error pass through.
    @Test func spanRunsTheBlockAndPassesResultsThrough() async throws {
        struct Failure: Error {}
        var runs = 0
        let value = #span("macrotest:sync") { runs += 1; return 42 }
        #expect(value == 42)
        #expect(runs == 1)
        #expect(throws: Failure.self) { try #span("macrotest:throws") { () throws -> Int in throw Failure() } }
        let awaited = await #span("macrotest:async") { () async -> String in await Task.yield(); return "done" }
        #expect(awaited == "done")
        let span = TraceSpan.begin("macrotest:manual")
        #expect(span.id == 0)   // no runtime attached: nothing recorded
        span.end()
    }
}
