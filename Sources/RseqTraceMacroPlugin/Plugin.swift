import SwiftCompilerPlugin
import SwiftSyntaxMacros

/// The compiler plugin behind `RseqTraceMacros`: `@TraceEvent`, `@TraceField`, `#trace` and `#span`.
@main
struct RseqTraceMacroPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [
        TraceEventMacro.self,
        TraceMacro.self,
        TraceFieldMacro.self,
        SpanMacro.self,
    ]
}
