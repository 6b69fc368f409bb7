import SwiftSyntaxMacrosGenericTestSupport
import Testing

@Suite("#trace expansion")
struct TraceMacroExpansionTests {
    @Test func initializerFormChecksTheTypeFirst() {
        expectExpansion(
            "#trace(HTTPRequest(bytes: n, status: s, path: TraceString(p)))",
            expandedSource:
                "(HTTPRequest.isEnabled ? HTTPRequest(bytes: n, status: s, path: TraceString(p)).emit() : ())"
        )
    }

    @Test(arguments: [
        ("Events.Start(pid: 1)", "Events.Start"),
        ("HTTPRequest.init(bytes: 1)", "HTTPRequest"),
        ("MyModule.Events.Start.init(pid: 1)", "MyModule.Events.Start"),
        ("Self(level: 3)", "Self"),
        ("Tick()", "Tick"),
    ])
    func qualifiedAndInitForms(call: String, type: String) {
        expectExpansion("#trace(\(call))", expandedSource: "(\(type).isEnabled ? \(call).emit() : ())")
    }

    /// Only initializer calls skip evaluation; anything else is evaluated and emitted.
    @Test(arguments: ["event", "self.lastRequest", "makeRequest(size: 3)", "events[0]", "try decode()"])
    func otherExpressionsAreEmittedDirectly(expression: String) {
        expectExpansion("#trace(\(expression))", expandedSource: "(\(expression)).emit()")
    }

    @Test func argumentsContainingTryKeepIt() {
        expectExpansion(
            "#trace(Load(bytes: try size()))",
            expandedSource: "(Load.isEnabled ? Load(bytes: try size()).emit() : ())"
        )
    }

    @Test func missingArgument() {
        expectExpansion(
            "#trace()",
            expandedSource: "#trace()",
            diagnostics: [DiagnosticSpec(
                message: "#trace needs an event value, e.g. #trace(HTTPRequest(bytes: n, status: s)), where "
                    + "HTTPRequest is a struct declared with @TraceEvent(\"http:request\")",
                line: 1, column: 1)]
        )
    }

    @Test func eventNameStringIsExplained() {
        expectExpansion(
            #"#trace("http:request", bytes: n, status: s)"#,
            expandedSource: #"#trace("http:request", bytes: n, status: s)"#,
            diagnostics: [DiagnosticSpec(
                message: "#trace takes an event value, not an event name: macro arguments are type-checked against "
                    + "the macro's declaration before it expands, so a declaration cannot accept arbitrary field "
                    + "labels. Declare '@TraceEvent(\"http:request\") struct HTTPRequest { var bytes: UInt64 }' and "
                    + "write '#trace(HTTPRequest(bytes: n))'",
                line: 1, column: 8)]
        )
    }
}
