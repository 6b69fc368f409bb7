import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// One field of an event: a stored instance property.
struct EventField {
    /// The name as written (with backticks if it has them): used for labels and member access.
    var spelling: String
    /// The name in the trace (the `fields:` string): the property's name without backticks, or the
    /// name given with `@TraceField("...")`.
    var name: String
    var type: TypeSyntax
    var kind: FieldKind
    var nameNode: Syntax

    /// The name CTF readers show: one leading underscore is stripped.
    var traceName: String { name.hasPrefix("_") ? String(name.dropFirst()) : name }
}

/// What `@TraceEvent` reads from the declaration it is attached to, and every problem it found.
struct EventAnalysis {
    var typeName = ""
    var eventName = ""
    var accessPrefix = ""
    var fields: [EventField] = []
    var diagnostics: [Diagnostic] = []

    init(attribute: AttributeSyntax, declaration: some DeclGroupSyntax, context: some MacroExpansionContext) {
        guard let structDecl = declaration.as(StructDeclSyntax.self) else {
            diagnoseNotAStruct(declaration)
            return
        }
        typeName = structDecl.name.text
        accessPrefix = Self.accessPrefix(structDecl.modifiers)
        readEventName(attribute)
        checkContext(structDecl, lexicalContext: context.lexicalContext)
        readFields(structDecl.memberBlock.members)
        checkFieldNames()
        if fields.count > 255 {
            diagnostics.append(Diagnostic(
                node: structDecl.name,
                message: TraceMacroDiagnostic.tooManyFields(type: typeName, count: fields.count)))
        }
    }

    // MARK: Declaration

    private mutating func diagnoseNotAStruct(_ declaration: some DeclGroupSyntax) {
        let keyword: TokenSyntax
        let kind: String
        if let decl = declaration.as(ClassDeclSyntax.self) {
            keyword = decl.classKeyword; kind = "a class"
        } else if let decl = declaration.as(ActorDeclSyntax.self) {
            keyword = decl.actorKeyword; kind = "an actor"
        } else if let decl = declaration.as(EnumDeclSyntax.self) {
            keyword = decl.enumKeyword; kind = "an enum"
        } else if let decl = declaration.as(ProtocolDeclSyntax.self) {
            keyword = decl.protocolKeyword; kind = "a protocol"
        } else if let decl = declaration.as(ExtensionDeclSyntax.self) {
            keyword = decl.extensionKeyword; kind = "an extension"
        } else {
            keyword = declaration.firstToken(viewMode: .sourceAccurate) ?? .keyword(.struct); kind = "this declaration"
        }
        var fixIts: [FixIt] = []
        if declaration.is(ClassDeclSyntax.self) || declaration.is(ActorDeclSyntax.self) {
            fixIts.append(.replace(
                message: TraceMacroFixIt(message: "Replace '\(keyword.text)' with 'struct'", id: "useStruct"),
                oldNode: keyword, newNode: keyword.with(\.tokenKind, .keyword(.struct))))
        }
        diagnostics.append(Diagnostic(
            node: keyword, message: TraceMacroDiagnostic.notAStruct(kind: kind), fixIts: fixIts))
    }

    private static func accessPrefix(_ modifiers: DeclModifierListSyntax) -> String {
        for modifier in modifiers {
            switch modifier.name.tokenKind {
            case .keyword(.public), .keyword(.open): return "public "
            case .keyword(.package): return "package "
            // A private type's members must be at least fileprivate to satisfy the TraceEvent conformance.
            case .keyword(.fileprivate), .keyword(.private): return "fileprivate "
            case .keyword(.internal): return "internal "
            default: continue
            }
        }
        return ""
    }

    private mutating func readEventName(_ attribute: AttributeSyntax) {
        guard case .argumentList(let arguments) = attribute.arguments, let first = arguments.first else {
            diagnostics.append(Diagnostic(node: attribute, message: TraceMacroDiagnostic.missingEventName))
            return
        }
        guard let literal = first.expression.as(StringLiteralExprSyntax.self) else {
            diagnostics.append(Diagnostic(node: first.expression, message: TraceMacroDiagnostic.eventNameNotLiteral))
            return
        }
        var name = ""
        for segment in literal.segments {
            switch segment {
            case .stringSegment(let text): name += text.content.text
            case .expressionSegment:
                diagnostics.append(Diagnostic(node: literal, message: TraceMacroDiagnostic.eventNameInterpolated))
                return
            }
        }
        if let problem = EventName.problem(name) {
            var fixIts: [FixIt] = []
            if let suggestion = EventName.suggestion(for: name) {
                let replacement = StringLiteralExprSyntax(content: suggestion)
                fixIts.append(.replace(
                    message: TraceMacroFixIt(message: "Replace with \"\(suggestion)\"", id: "fixEventName"),
                    oldNode: literal, newNode: replacement.with(\.leadingTrivia, literal.leadingTrivia)
                        .with(\.trailingTrivia, literal.trailingTrivia)))
            }
            diagnostics.append(Diagnostic(
                node: literal, message: TraceMacroDiagnostic.invalidEventName(name: name, problem: problem),
                fixIts: fixIts))
            return
        }
        eventName = name
    }

    /// `static let` stored properties are not allowed in generic types, nor in types nested in one; and a local
    /// type (in a function or closure) cannot have the extension macro that adds the conformance.
    private mutating func checkContext(_ structDecl: StructDeclSyntax, lexicalContext: [Syntax]) {
        if let generics = structDecl.genericParameterClause {
            diagnostics.append(Diagnostic(node: generics, message: TraceMacroDiagnostic.genericStruct(name: typeName)))
            return
        }
        var contexts = lexicalContext[...]
        // The compiler lists the attached declaration itself first.
        if let first = contexts.first?.as(StructDeclSyntax.self), first.name.text == structDecl.name.text,
           first.attributes.trimmedDescription == structDecl.attributes.trimmedDescription {
            contexts = contexts.dropFirst()
        }
        let generic = contexts.lazy.compactMap(Self.genericContextDescription).first
        if let function = contexts.lazy.compactMap(Self.functionDescription).first {
            diagnostics.append(Diagnostic(
                node: structDecl.name,
                message: TraceMacroDiagnostic.localType(name: typeName, function: function, genericContext: generic)))
        } else if let generic {
            diagnostics.append(Diagnostic(
                node: structDecl.name, message: TraceMacroDiagnostic.genericContext(name: typeName, context: generic)))
        }
    }

    private static func functionDescription(_ context: Syntax) -> String? {
        if let decl = context.as(FunctionDeclSyntax.self) { return "function '\(decl.name.text)'" }
        if context.is(InitializerDeclSyntax.self) { return "an initializer" }
        if context.is(DeinitializerDeclSyntax.self) { return "a deinitializer" }
        if context.is(AccessorDeclSyntax.self) || context.is(SubscriptDeclSyntax.self)
            || context.is(PatternBindingSyntax.self) { return "an accessor" }
        if context.is(ClosureExprSyntax.self) { return "a closure" }
        return nil
    }

    private static func genericContextDescription(_ context: Syntax) -> String? {
        func named(_ kind: String, _ name: TokenSyntax, _ generics: GenericParameterClauseSyntax?) -> String? {
            generics == nil ? nil : "generic \(kind) '\(name.text)'"
        }
        if let decl = context.as(StructDeclSyntax.self) { return named("struct", decl.name, decl.genericParameterClause) }
        if let decl = context.as(ClassDeclSyntax.self) { return named("class", decl.name, decl.genericParameterClause) }
        if let decl = context.as(EnumDeclSyntax.self) { return named("enum", decl.name, decl.genericParameterClause) }
        if let decl = context.as(ActorDeclSyntax.self) { return named("actor", decl.name, decl.genericParameterClause) }
        if let decl = context.as(ProtocolDeclSyntax.self) { return "protocol '\(decl.name.text)'" }
        if let decl = context.as(ExtensionDeclSyntax.self), decl.genericWhereClause != nil {
            return "constrained extension of generic type '\(decl.extendedType.trimmedDescription)'"
        }
        if let decl = context.as(FunctionDeclSyntax.self),
           decl.genericParameterClause != nil || hasOpaqueParameter(decl.signature.parameterClause) {
            return "generic function '\(decl.name.text)'"
        }
        if let decl = context.as(InitializerDeclSyntax.self),
           decl.genericParameterClause != nil || hasOpaqueParameter(decl.signature.parameterClause) {
            return "generic initializer"
        }
        if let decl = context.as(SubscriptDeclSyntax.self),
           decl.genericParameterClause != nil || hasOpaqueParameter(decl.parameterClause) {
            return "generic subscript"
        }
        return nil
    }

    /// A `some P` parameter makes a function generic.
    private static func hasOpaqueParameter(_ parameters: FunctionParameterClauseSyntax) -> Bool {
        parameters.parameters.contains { parameter in
            parameter.type.tokens(viewMode: .sourceAccurate).contains { $0.tokenKind == .keyword(.some) }
        }
    }

    // MARK: Fields

    private mutating func readFields(_ members: MemberBlockItemListSyntax) {
        for member in members {
            if let variable = member.decl.as(VariableDeclSyntax.self) {
                readVariable(variable)
            } else if let conditional = member.decl.as(IfConfigDeclSyntax.self) {
                diagnoseConditionalFields(conditional)
            }
        }
    }

    private static func isStatic(_ variable: VariableDeclSyntax) -> Bool {
        variable.modifiers.contains { $0.name.tokenKind == .keyword(.static) || $0.name.tokenKind == .keyword(.class) }
    }

    /// A binding with `get`/`set`/`_read`/... or a getter body is computed; one with only `willSet`/`didSet`
    /// observers (or no accessors) is stored.
    private static func isStored(_ binding: PatternBindingSyntax) -> Bool {
        guard let accessorBlock = binding.accessorBlock else { return true }
        switch accessorBlock.accessors {
        case .getter: return false
        case .accessors(let accessors):
            return accessors.allSatisfy {
                $0.accessorSpecifier.tokenKind == .keyword(.willSet) || $0.accessorSpecifier.tokenKind == .keyword(.didSet)
            }
        }
    }

    private mutating func readVariable(_ variable: VariableDeclSyntax) {
        if Self.isStatic(variable) { return }
        let bindings = Array(variable.bindings)
        let storedBindings = bindings.filter(Self.isStored)
        guard let firstStored = storedBindings.first else { return }
        let firstName = firstStored.pattern.trimmedDescription

        if let lazy = variable.modifiers.first(where: { $0.name.tokenKind == .keyword(.lazy) }) {
            var fixed = variable
            fixed.modifiers = variable.modifiers.filter { $0.id != lazy.id }
            fixed.leadingTrivia = variable.leadingTrivia
            diagnostics.append(Diagnostic(
                node: lazy, message: TraceMacroDiagnostic.lazyField(field: firstName),
                fixIt: .replace(
                    message: TraceMacroFixIt(message: "Remove 'lazy'", id: "removeLazy"),
                    oldNode: variable, newNode: fixed)))
        }
        let traceName = readTraceFieldName(variable, storedBindings: storedBindings)
        for element in variable.attributes {
            guard case .attribute(let attribute) = element, !Self.isTraceField(attribute),
                  let wrapper = Self.presumedPropertyWrapper(attribute) else { continue }
            var fixed = variable
            fixed.attributes = variable.attributes.filter { $0.id != element.id }
            fixed.leadingTrivia = variable.leadingTrivia
            diagnostics.append(Diagnostic(
                node: attribute, message: TraceMacroDiagnostic.propertyWrapper(field: firstName, wrapper: wrapper),
                fixIt: .replace(
                    message: TraceMacroFixIt(message: "Remove '@\(wrapper)'", id: "removeWrapper"),
                    oldNode: variable, newNode: fixed)))
        }

        for (index, binding) in bindings.enumerated() where Self.isStored(binding) {
            guard let pattern = binding.pattern.as(IdentifierPatternSyntax.self) else {
                diagnostics.append(Diagnostic(
                    node: binding.pattern,
                    message: TraceMacroDiagnostic.unsupportedPattern(pattern: binding.pattern.trimmedDescription)))
                continue
            }
            let spelling = pattern.identifier.text
            let name = traceName ?? FieldTypes.unescaped(spelling)
            // `var a, b: Int`: a binding without a type or initial value takes the type of the next one that has
            // a type annotation.
            var type = binding.typeAnnotation?.type
            if type == nil, binding.initializer == nil {
                type = bindings[(index + 1)...].first { $0.typeAnnotation != nil || $0.initializer != nil }?
                    .typeAnnotation?.type
            }
            guard let type else {
                diagnostics.append(missingTypeAnnotation(binding: binding, pattern: pattern, name: name))
                continue
            }
            switch FieldTypes.check(type) {
            case .supported(let kind):
                fields.append(EventField(
                    spelling: spelling, name: name, type: type.trimmed, kind: kind, nameNode: Syntax(pattern)))
            case .badBound(let bound):
                diagnostics.append(Diagnostic(
                    node: type,
                    message: TraceMacroDiagnostic.badBound(field: name, type: type.trimmedDescription, bound: bound)))
            case .unsupported(let why, let replacement):
                var fixIts: [FixIt] = []
                if let replacement {
                    let newType = TypeSyntax(stringLiteral: replacement)
                        .with(\.leadingTrivia, type.leadingTrivia).with(\.trailingTrivia, type.trailingTrivia)
                    fixIts.append(.replace(
                        message: TraceMacroFixIt(
                            message: "Replace '\(type.trimmedDescription)' with '\(replacement)'", id: "replaceType"),
                        oldNode: type, newNode: newType))
                }
                diagnostics.append(Diagnostic(
                    node: type,
                    message: TraceMacroDiagnostic.unsupportedFieldType(
                        field: name, type: type.trimmedDescription, why: why),
                    fixIts: fixIts))
            }
        }
    }

    /// `@TraceField` or `@RseqTraceMacros.TraceField`.
    static func isTraceField(_ attribute: AttributeSyntax) -> Bool {
        let name = attribute.attributeName.trimmedDescription
        return name == "TraceField" || name == "RseqTraceMacros.TraceField"
    }

    /// The name `@TraceField("...")` gives the field declared by `variable`, nil without one (or
    /// with a problem, which it diagnoses).
    private mutating func readTraceFieldName(_ variable: VariableDeclSyntax, storedBindings: [PatternBindingSyntax]) -> String? {
        for element in variable.attributes {
            guard case .attribute(let attribute) = element, Self.isTraceField(attribute) else { continue }
            let field = storedBindings.first?.pattern.trimmedDescription ?? ""
            // On several bindings the compiler also refuses the peer macro ("peer macro can only be applied
            // to a single variable"); this error says what to write instead.
            guard storedBindings.count == 1 else {
                diagnostics.append(Diagnostic(node: attribute, message: TraceMacroDiagnostic.traceFieldOnSeveralFields))
                return nil
            }
            guard case .argumentList(let arguments) = attribute.arguments, arguments.count == 1,
                  let literal = arguments.first?.expression.as(StringLiteralExprSyntax.self),
                  literal.segments.count == 1, case .stringSegment(let segment)? = literal.segments.first else {
                diagnostics.append(Diagnostic(node: attribute, message: TraceMacroDiagnostic.traceFieldNameNotLiteral(field: field)))
                return nil
            }
            let name = segment.content.text
            guard EventName.isIdentifier(Substring(name)) else {
                diagnostics.append(Diagnostic(
                    node: literal, message: TraceMacroDiagnostic.invalidTraceFieldName(field: field, name: name)))
                return nil
            }
            return name
        }
        return nil
    }

    /// A custom attribute whose name starts with an upper-case letter (`@Clamped`, `@Sendable` is not valid on
    /// a property): presumed to be a property wrapper. Compiler attributes (`@available`, `@usableFromInline`)
    /// are lower-case.
    private static func presumedPropertyWrapper(_ attribute: AttributeSyntax) -> String? {
        let name = attribute.attributeName.trimmedDescription
        let last = name.split(separator: ".").last.map(String.init) ?? name
        guard let first = last.first, first.isUppercase else { return nil }
        return name
    }

    private func missingTypeAnnotation(
        binding: PatternBindingSyntax, pattern: IdentifierPatternSyntax, name: String
    ) -> Diagnostic {
        var fixIts: [FixIt] = []
        if let value = binding.initializer?.value, let literalType = Self.literalType(value) {
            var fixed = binding
            fixed.pattern = PatternSyntax(pattern.with(\.trailingTrivia, []))
            fixed.typeAnnotation = TypeAnnotationSyntax(
                colon: .colonToken(trailingTrivia: .space),
                type: TypeSyntax(stringLiteral: literalType).with(\.trailingTrivia, pattern.trailingTrivia))
            fixIts.append(.replace(
                message: TraceMacroFixIt(message: "Add ': \(literalType)'", id: "addTypeAnnotation"),
                oldNode: binding, newNode: fixed))
        }
        return Diagnostic(
            node: pattern, message: TraceMacroDiagnostic.missingTypeAnnotation(field: name), fixIts: fixIts)
    }

    /// The type Swift infers for a plain literal initial value.
    private static func literalType(_ value: ExprSyntax) -> String? {
        if value.is(IntegerLiteralExprSyntax.self) { return "Int" }
        if value.is(FloatLiteralExprSyntax.self) { return "Double" }
        if value.is(BooleanLiteralExprSyntax.self) { return "Bool" }
        if let string = value.as(StringLiteralExprSyntax.self),
           !string.segments.contains(where: { if case .expressionSegment = $0 { true } else { false } }) {
            return "String"
        }
        if let prefix = value.as(PrefixOperatorExprSyntax.self), prefix.operator.text == "-" {
            return literalType(prefix.expression)
        }
        return nil
    }

    private mutating func diagnoseConditionalFields(_ conditional: IfConfigDeclSyntax) {
        for clause in conditional.clauses {
            guard case .decls(let members) = clause.elements else { continue }
            for member in members {
                if let variable = member.decl.as(VariableDeclSyntax.self), !Self.isStatic(variable),
                   let binding = variable.bindings.first(where: Self.isStored) {
                    diagnostics.append(Diagnostic(
                        node: binding.pattern,
                        message: TraceMacroDiagnostic.conditionalField(field: binding.pattern.trimmedDescription)))
                } else if let nested = member.decl.as(IfConfigDeclSyntax.self) {
                    diagnoseConditionalFields(nested)
                }
            }
        }
    }

    /// Names collide in CTF when they are equal after readers strip one leading underscore, or when a field is
    /// named like the `_<name>_length` field the format adds for a string or byte field.
    private mutating func checkFieldNames() {
        var seen: [String: EventField] = [:]
        for field in fields {
            if FieldTypes.unescaped(field.spelling) == "emit" {
                diagnostics.append(Diagnostic(
                    node: field.nameNode, message: TraceMacroDiagnostic.reservedFieldName(field: FieldTypes.unescaped(field.spelling))))
            }
            if let other = seen[field.traceName] {
                diagnostics.append(Diagnostic(
                    node: field.nameNode,
                    message: TraceMacroDiagnostic.duplicateFieldName(
                        field: field.name, other: other.name, traceName: field.traceName),
                    notes: [Note(
                        node: other.nameNode,
                        message: TraceMacroNote(message: "'\(other.name)' declared here", id: "firstField"))]))
            } else {
                seen[field.traceName] = field
            }
        }
        for stringField in fields where stringField.kind == .text || stringField.kind == .bytes {
            let lengthName = "_\(stringField.traceName)_length"
            for field in fields where field.name == lengthName || field.traceName == lengthName {
                diagnostics.append(Diagnostic(
                    node: field.nameNode,
                    message: TraceMacroDiagnostic.lengthFieldCollision(
                        field: field.name, stringField: stringField.traceName),
                    notes: [Note(
                        node: stringField.nameNode,
                        message: TraceMacroNote(
                            message: "string or byte field '\(stringField.name)' declared here", id: "stringField"))]))
            }
        }
    }
}

/// Event names: `provider:event`, both parts identifiers.
enum EventName {
    static func isIdentifier(_ part: Substring) -> Bool {
        guard let first = part.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return part.unicodeScalars.allSatisfy(isIdentifierScalar)
    }

    static func isIdentifierScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
    }

    /// Why `name` is not a valid event name, or nil if it is.
    static func problem(_ name: String) -> String? {
        if name.isEmpty { return "it is empty" }
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1 { return "it has no ':' between the provider and the event" }
        if parts.count > 2 { return "it has more than one ':'" }
        for (part, role) in zip(parts, ["provider", "event"]) {
            if part.isEmpty { return "the \(role) part is empty" }
            if let bad = part.unicodeScalars.first(where: { !isIdentifierScalar($0) }) {
                return "the \(role) part '\(part)' contains '\(bad.escaped(asASCII: false))'"
            }
            if !isIdentifier(part) { return "the \(role) part '\(part)' starts with a digit" }
        }
        return nil
    }

    /// A valid name close to `name` (`http.request` → `http:request`, `my-app:req` → `my_app:req`), if any.
    static func suggestion(for name: String) -> String? {
        var text = name
        if !text.contains(":") {
            let separators = text.filter { $0 == "." || $0 == "/" }
            guard separators.count == 1, let separator = separators.first,
                  let index = text.firstIndex(of: separator) else { return nil }
            text.replaceSubrange(index...index, with: ":")
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        let fixed = parts.map { part -> String in
            var scalars = String.UnicodeScalarView()
            for scalar in part.unicodeScalars { scalars.append(isIdentifierScalar(scalar) ? scalar : "_") }
            let result = String(scalars)
            return result.first!.isNumber ? "_" + result : result
        }.joined(separator: ":")
        return fixed != name && problem(fixed) == nil ? fixed : nil
    }
}
