import RseqTraceMacroPlugin
import SwiftSyntax
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacrosGenericTestSupport
import Testing

let testMacros: [String: MacroSpec] = [
    "TraceEvent": MacroSpec(type: TraceEventMacro.self, conformances: ["TraceEvent"]),
    "trace": MacroSpec(type: TraceMacro.self),
    "TraceField": MacroSpec(type: TraceFieldMacro.self),
    "span": MacroSpec(type: SpanMacro.self),
]

/// `assertMacroExpansion` reporting through Swift Testing.
func expectExpansion(
    _ source: String,
    expandedSource: String,
    diagnostics: [DiagnosticSpec] = [],
    applyFixIts: [String]? = nil,
    fixedSource: String? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    assertMacroExpansion(
        source,
        expandedSource: expandedSource,
        diagnostics: diagnostics,
        macroSpecs: testMacros,
        applyFixIts: applyFixIts,
        fixedSource: fixedSource,
        indentationWidth: .spaces(4),
        failureHandler: { failure in
            Issue.record(Comment(rawValue: failure.message), sourceLocation: sourceLocation)
        }
    )
}

/// As the compiler expands a type that already conforms to `TraceEvent`: the extension role gets no protocols.
func expectExpansionWithoutConformance(
    _ source: String,
    expandedSource: String,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    assertMacroExpansion(
        source,
        expandedSource: expandedSource,
        macroSpecs: ["TraceEvent": MacroSpec(type: TraceEventMacro.self, conformances: [])],
        indentationWidth: .spaces(4),
        failureHandler: { failure in
            Issue.record(Comment(rawValue: failure.message), sourceLocation: sourceLocation)
        }
    )
}

/// Expands `source` expecting exactly one error with `message` at `line`:`column` and no generated code:
/// `expandedSource` is the source without the macro attribute.
func expectDiagnostic(
    _ source: String,
    expandedSource: String,
    message: String,
    line: Int,
    column: Int,
    notes: [NoteSpec] = [],
    fixIts: [FixItSpec] = [],
    fixedSource: String? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    expectExpansion(
        source,
        expandedSource: expandedSource,
        diagnostics: [DiagnosticSpec(message: message, line: line, column: column, notes: notes, fixIts: fixIts)],
        applyFixIts: fixedSource == nil ? nil : fixIts.map(\.message),
        fixedSource: fixedSource,
        sourceLocation: sourceLocation
    )
}

/// The members `@TraceEvent` generates for `fields` (name, type), indented for a struct at file scope: the
/// shape the explicit expansion tests spell out, built here for events too wide to write by hand.
func expectedMembers(event: String, fields: [(name: String, type: String)], access: String = "") -> String {
    func emitCall(_ prefix: String) -> [String] {
        let size = fields.isEmpty ? "0" : fields.map { "\(prefix)\($0.name).traceEncodedSize" }.joined(separator: " &+ ")
        let encode = fields.isEmpty ? ["} encode: { _ in"]
            : ["} encode: {"] + fields.map { "    \(prefix)\($0.name).traceEncode(into: &$0)" }
        return ["Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {", "    \(size)"] + encode + ["}"]
    }
    func block(_ head: String, _ lines: [String]) -> [String] { ["\(head) {"] + lines.map { "    \($0)" } + ["}"] }
    let names = fields.map(\.name).joined(separator: " ")
    let fieldTypes = fields.isEmpty ? ["[]"] : [
        "[" + fields.map { "RseqTrace.TraceEventFieldCheck.fieldType(\($0.type).self)" }.joined(separator: ", ") + "]",
    ]
    let parameters = fields.map { "\($0.name): @autoclosure () -> \($0.type)" }.joined(separator: ", ")
    var staticBody = ["guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {", "    return", "}"]
    if !fields.isEmpty { staticBody.append("let " + fields.map { "\($0.name) = \($0.name)()" }.joined(separator: ", ")) }
    staticBody += emitCall("")
    var lines = ["\(access)static let tracepoint = RseqTrace.TracepointSite(\"\(event)\", fields: \"\(names)\")", ""]
    lines += block("\(access)static func fieldTypes() -> [RseqTrace.FieldType]", fieldTypes) + [""]
    lines += block("\(access)static var isEnabled: Bool", ["Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)"]) + [""]
    lines += block("@inline(__always) \(access)static func emit(\(parameters))", staticBody) + [""]
    lines += block("@inline(__always) \(access)func emit()", emitCall("self."))
    return lines.map { $0.isEmpty ? "" : "    \($0)" }.joined(separator: "\n")
}
