import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// `@TraceField("name")` on a stored property of a `@TraceEvent` struct: a marker that `@TraceEvent` reads (see
/// `EventAnalysis`, which also checks the name). It generates nothing; it reports being used anywhere else.
public struct TraceFieldMacro: PeerMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        let inEvent = context.lexicalContext.first.flatMap { $0.as(StructDeclSyntax.self) }.map { structDecl in
            structDecl.attributes.contains { element in
                guard case .attribute(let attribute) = element else { return false }
                let name = attribute.attributeName.trimmedDescription
                return name == "TraceEvent" || name == "RseqTraceMacros.TraceEvent"
            }
        } ?? false
        if !declaration.is(VariableDeclSyntax.self) || !inEvent {
            context.diagnose(Diagnostic(node: node, message: TraceMacroDiagnostic.traceFieldOutsideEvent))
        }
        return []
    }
}
