import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `@TraceEvent("provider:event")` on a struct: a `static let tracepoint` (a `TracepointSite`), `fieldTypes()`
/// from the declared types of the stored properties, `isEnabled`, `static func emit(field: @autoclosure ...)`,
/// `func emit()`, and the `TraceEvent` conformance (see docs/Instrumentation.md for the shape).
///
/// Both roles analyse the declaration; only the member role reports diagnostics (the compiler runs both, and
/// each problem must be reported once). With any error, neither role generates anything.
public struct TraceEventMacro: MemberMacro, ExtensionMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingMembersOf declaration: some DeclGroupSyntax,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        let analysis = EventAnalysis(attribute: node, declaration: declaration, context: context)
        for diagnostic in analysis.diagnostics { context.diagnose(diagnostic) }
        guard analysis.diagnostics.isEmpty else { return [] }
        return members(analysis)
    }

    public static func expansion(
        of node: AttributeSyntax,
        attachedTo declaration: some DeclGroupSyntax,
        providingExtensionsOf type: some TypeSyntaxProtocol,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [ExtensionDeclSyntax] {
        // `protocols` is empty when the type already declares the conformance itself.
        guard !protocols.isEmpty,
              EventAnalysis(attribute: node, declaration: declaration, context: context).diagnostics.isEmpty
        else { return [] }
        return [try ExtensionDeclSyntax("extension \(type.trimmed): RseqTrace.TraceEvent {}")]
    }

    static func members(_ event: EventAnalysis) -> [DeclSyntax] {
        let access = event.accessPrefix
        let fields = event.fields
        let names = fields.map(\.name).joined(separator: " ")
        // Through TraceEventFieldCheck.fieldType, whose unconstrained overload is unavailable: a type that is not a
        // TraceFieldValue (a struct, or an enum that does not conform to TraceEnum) gets its message, which says
        // which types a field may have (syntax alone cannot tell a struct from an enum).
        let fieldTypes = fields.isEmpty ? ["[]"] : [
            "[" + fields.map { "RseqTrace.TraceEventFieldCheck.fieldType(\($0.type.trimmedDescription).self)" }
                .joined(separator: ", ") + "]",
        ]
        let parameters = fields.map { "\($0.spelling): @autoclosure () -> \($0.type.trimmedDescription)" }
            .joined(separator: ", ")
        var staticBody = [
            "guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {",
            "    return",
            "}",
        ]
        if !fields.isEmpty {
            staticBody.append("let " + fields.map { "\($0.spelling) = \($0.spelling)()" }.joined(separator: ", "))
        }
        staticBody += emitCall(fields, prefix: "")
        let decls: [String] = [
            "\(access)static let tracepoint = RseqTrace.TracepointSite(\"\(event.eventName)\", fields: \"\(names)\")",
            block("\(access)static func fieldTypes() -> [RseqTrace.FieldType]", fieldTypes),
            block("\(access)static var isEnabled: Bool", ["Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)"]),
            block("@inline(__always) \(access)static func emit(\(parameters))", staticBody),
            block("@inline(__always) \(access)func emit()", emitCall(fields, prefix: "self.")),
        ]
        return decls.map { DeclSyntax(stringLiteral: $0) }
    }

    private static func block(_ head: String, _ lines: [String]) -> String {
        "\(head) {\n" + lines.map { "    \($0)\n" }.joined() + "}"
    }

    /// `Self.tracepoint.emit(...)` writing `fields`, each read as `prefix + name`: the payload size (called only
    /// when enabled), then the encoder, which uses `$0` so that no field name can shadow the writer.
    private static func emitCall(_ fields: [EventField], prefix: String) -> [String] {
        let size = fields.isEmpty ? "0" : fields.map { "\(prefix)\($0.spelling).traceEncodedSize" }.joined(separator: " &+ ")
        let encode = fields.isEmpty ? ["} encode: { _ in"] : ["} encode: {"]
            + fields.map { "    \(prefix)\($0.spelling).traceEncode(into: &$0)" }
        return ["Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {", "    \(size)"] + encode + ["}"]
    }
}
