@testable import RseqTraceMacroPlugin
import SwiftSyntaxMacrosGenericTestSupport
import Testing

@Suite("@TraceField: a field's name in the trace")
struct TraceFieldTests {
    @Test("@TraceField renames a field in the tracepoint's field names only; labels and members keep the Swift name")
    func renamesInTheTrace() {
        expectExpansion(
            """
            @TraceEvent("http:request")
            struct Request {
                @TraceField("request_id") var requestID: UInt64
                var status: UInt16
            }
            """,
            expandedSource: """
            struct Request {
                var requestID: UInt64
                var status: UInt16

                static let tracepoint = RseqTrace.TracepointSite("http:request", fields: "request_id status")

                static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(UInt64.self), RseqTrace.TraceEventFieldCheck.fieldType(UInt16.self)]
                }

                static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) static func emit(requestID: @autoclosure () -> UInt64, status: @autoclosure () -> UInt16) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let requestID = requestID(), status = status()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        requestID.traceEncodedSize &+ status.traceEncodedSize
                    } encode: {
                        requestID.traceEncode(into: &$0)
                        status.traceEncode(into: &$0)
                    }
                }

                @inline(__always) func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.requestID.traceEncodedSize &+ self.status.traceEncodedSize
                    } encode: {
                        self.requestID.traceEncode(into: &$0)
                        self.status.traceEncode(into: &$0)
                    }
                }
            }

            extension Request: RseqTrace.TraceEvent {
            }
            """
        )
    }

    @Test("a trace name that is not an identifier is an error on the literal")
    func invalidName() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                @TraceField("request-id") var requestID: UInt64
            }
            """,
            expandedSource: """
            struct E {
                var requestID: UInt64
            }
            """,
            message: "@TraceField(\"request-id\") on field 'requestID': a field's trace name must be an identifier "
                + "(ASCII letters, digits and '_', not starting with a digit), e.g. \"request_id\"",
            line: 3, column: 17)
    }

    @Test("a trace name that is not a plain string literal is an error")
    func notLiteral() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                @TraceField(name) var requestID: UInt64
            }
            """,
            expandedSource: """
            struct E {
                var requestID: UInt64
            }
            """,
            message: "@TraceField on field 'requestID' needs the trace name as a string literal, e.g. @TraceField(\"request_id\")",
            line: 3, column: 5)
    }

    @Test("@TraceField on a declaration of several fields: the compiler's error, and @TraceEvent's saying what to write")
    func severalFields() {
        expectExpansion(
            """
            @TraceEvent("a:b")
            struct E {
                @TraceField("x") var a, b: UInt64
            }
            """,
            expandedSource: """
            struct E {
                var a, b: UInt64
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "peer macro can only be applied to a single variable", line: 3, column: 5),
                DiagnosticSpec(message: "@TraceField names one field: declare this field in its own 'var' (e.g. 'var requestID: UInt64')",
                               line: 3, column: 5),
            ])
    }

    @Test("a trace name that collides with another field's is reported like any duplicate")
    func collision() {
        expectExpansion(
            """
            @TraceEvent("a:b")
            struct E {
                var status: UInt16
                @TraceField("status") var code: UInt16
            }
            """,
            expandedSource: """
            struct E {
                var status: UInt16
                var code: UInt16
            }
            """,
            diagnostics: [DiagnosticSpec(
                message: "fields 'status' and 'status' both appear as 'status' in the trace: CTF readers strip one "
                    + "leading underscore from field names; rename one of them",
                line: 4, column: 31,
                notes: [NoteSpec(message: "'status' declared here", line: 3, column: 9)])])
    }

    @Test("@TraceField outside a @TraceEvent struct is an error")
    func outsideEvent() {
        expectExpansion(
            """
            struct Plain {
                @TraceField("x") var a: UInt64
            }
            """,
            expandedSource: """
            struct Plain {
                var a: UInt64
            }
            """,
            diagnostics: [DiagnosticSpec(
                message: "@TraceField names a field of an event: attach it to a stored property of a struct declared with @TraceEvent",
                line: 2, column: 5)])
    }
}
