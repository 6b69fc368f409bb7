import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `#trace(event)`.
///
/// - `#trace(HTTPRequest(bytes: n))`, where the callee names a type (`HTTPRequest`, `Module.HTTPRequest`,
///   `HTTPRequest.init`, `Self`): `(HTTPRequest.isEnabled ? HTTPRequest(bytes: n).emit() : ())`, so the
///   arguments are evaluated only when the event is enabled.
/// - Any other expression (a variable, a member access, a call of a function): `(expr).emit()`; the
///   expression is evaluated, and `emit()` checks whether the event is enabled.
public struct TraceMacro: ExpressionMacro {
    public static func expansion(
        of node: some FreestandingMacroExpansionSyntax,
        in context: some MacroExpansionContext
    ) throws -> ExprSyntax {
        guard let argument = node.arguments.first?.expression else {
            throw DiagnosticsError(diagnostics: [
                Diagnostic(node: node, message: TraceMacroDiagnostic.traceMissingArgument),
            ])
        }
        if argument.is(StringLiteralExprSyntax.self) {
            throw DiagnosticsError(diagnostics: [
                Diagnostic(node: argument, message: TraceMacroDiagnostic.traceStringLiteral),
            ])
        }
        let event = argument.trimmed
        if let call = event.as(FunctionCallExprSyntax.self), let type = eventType(ofCallee: call.calledExpression) {
            return "(\(type).isEnabled ? \(event).emit() : ())"
        }
        return "(\(event)).emit()"
    }

    /// The event type when `callee` syntactically names a type: an upper-case name, optionally qualified
    /// (`RseqTraceExamples.HTTPRequest`), a generic specialisation, or `X.init`.
    static func eventType(ofCallee callee: ExprSyntax) -> ExprSyntax? {
        if let reference = callee.as(DeclReferenceExprSyntax.self) {
            return isTypeName(reference.baseName) ? callee.trimmed : nil
        }
        if let member = callee.as(MemberAccessExprSyntax.self), let base = member.base {
            if member.declName.baseName.tokenKind == .keyword(.`init`) {
                return isTypeReference(base) ? base.trimmed : nil
            }
            return isTypeName(member.declName.baseName) && isQualifier(base) ? callee.trimmed : nil
        }
        if let specialization = callee.as(GenericSpecializationExprSyntax.self),
           isTypeReference(specialization.expression) {
            return callee.trimmed
        }
        return nil
    }

    private static func isTypeName(_ token: TokenSyntax) -> Bool {
        if token.tokenKind == .keyword(.Self) { return true }
        let text = token.text.hasPrefix("`") ? String(token.text.dropFirst()) : token.text
        return text.first?.isUppercase == true
    }

    private static func isTypeReference(_ expr: ExprSyntax) -> Bool {
        eventType(ofCallee: expr) != nil
    }

    /// A module or enclosing-type prefix: plain names joined by dots.
    private static func isQualifier(_ expr: ExprSyntax) -> Bool {
        if expr.is(DeclReferenceExprSyntax.self) { return true }
        if let member = expr.as(MemberAccessExprSyntax.self), let base = member.base {
            return isQualifier(base)
        }
        return false
    }
}
