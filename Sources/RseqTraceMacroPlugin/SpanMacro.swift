import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `#span("name") { body }` → `RseqTrace.withTraceSpan("name") { body }`.
///
/// The name must be a string literal without interpolation (a span name is a `StaticString`);
/// the block is the trailing closure or the second argument.
public struct SpanMacro: ExpressionMacro {
    public static func expansion(
        of node: some FreestandingMacroExpansionSyntax,
        in context: some MacroExpansionContext
    ) throws -> ExprSyntax {
        let arguments = Array(node.arguments)
        guard let name = arguments.first?.expression else {
            throw DiagnosticsError(diagnostics: [Diagnostic(node: node, message: TraceMacroDiagnostic.spanMissingName)])
        }
        guard let literal = name.as(StringLiteralExprSyntax.self),
              literal.segments.allSatisfy({ $0.is(StringSegmentSyntax.self) }) else {
            throw DiagnosticsError(diagnostics: [Diagnostic(node: name, message: TraceMacroDiagnostic.spanNameNotLiteral)])
        }
        let body: ExprSyntax
        if let closure = node.trailingClosure {
            body = ExprSyntax(closure.trimmed)
        } else if arguments.count == 2 {
            body = arguments[1].expression.trimmed
        } else {
            throw DiagnosticsError(diagnostics: [Diagnostic(node: node, message: TraceMacroDiagnostic.spanMissingBody)])
        }
        return "RseqTrace.withTraceSpan(\(literal.trimmed), \(body))"
    }
}
