import SwiftSyntax

/// How a field is encoded, as far as the macro needs to know (decided from the syntax alone).
enum FieldKind: Equatable {
    /// Integers, `Bool`, `Float`, `Double`.
    case scalar
    /// `String`, `Substring`, `StaticString`, `TraceString<N>`: the trace format adds a length field.
    case text
    /// `[UInt8]`, `TraceBytes<N>`: the trace format adds a length field.
    case bytes
    /// Any other named type: presumed to conform to `TraceEnum` (the compiler checks `TraceFieldValue`).
    case presumedEnum
}

/// The outcome of checking a field's declared type.
enum FieldTypeCheck: Equatable {
    case supported(FieldKind)
    /// `why` completes "field 'x' has type 'T', which cannot be traced: ..."; `replacement` is a type
    /// offered as a fix-it.
    case unsupported(why: String, replacement: String?)
    /// A `TraceString<N>` / `TraceBytes<N>` with a literal bound outside 1...65535.
    case badBound(String)
}

enum FieldTypes {
    static let scalarNames: Set<String> = [
        "UInt8", "UInt16", "UInt32", "UInt64", "UInt",
        "Int8", "Int16", "Int32", "Int64", "Int",
        "Bool", "Float", "Double",
    ]
    static let textNames: Set<String> = ["String", "Substring", "StaticString"]

    /// Modules whose type names the macro recognises when a type is written qualified
    /// (`Swift.Int`, `RseqTrace.TraceString<64>`, `Foundation.Date`).
    static let knownModules: Set<String> = [
        "Swift", "RseqTrace", "Foundation", "FoundationEssentials", "CoreGraphics", "CoreFoundation",
    ]

    static let optionalWhy =
        "trace fields cannot be optional; use a non-optional type (with a sentinel value, or an extra Bool field)"

    /// Checks a declared field type syntactically.
    static func check(_ type: TypeSyntax) -> FieldTypeCheck {
        if let optional = type.as(OptionalTypeSyntax.self) {
            return .unsupported(why: optionalWhy, replacement: optional.wrappedType.trimmedDescription)
        }
        if let optional = type.as(ImplicitlyUnwrappedOptionalTypeSyntax.self) {
            return .unsupported(why: optionalWhy, replacement: optional.wrappedType.trimmedDescription)
        }
        if let tuple = type.as(TupleTypeSyntax.self) {
            if tuple.elements.count == 1, let only = tuple.elements.first, only.firstName == nil,
               only.ellipsis == nil {
                return check(only.type)  // `(Int)` is just `Int`
            }
            if tuple.elements.isEmpty {
                return .unsupported(why: "the empty tuple carries no data; remove the field", replacement: nil)
            }
            return .unsupported(why: "tuples are not supported; declare one field per element", replacement: nil)
        }
        if type.is(FunctionTypeSyntax.self) {
            return .unsupported(why: "function types cannot be written to a trace", replacement: nil)
        }
        if let attributed = type.as(AttributedTypeSyntax.self) {
            return check(attributed.baseType)
        }
        if let someOrAny = type.as(SomeOrAnyTypeSyntax.self) {
            let keyword = someOrAny.someOrAnySpecifier.text
            return .unsupported(
                why: "'\(keyword)' types are not supported; a field needs a concrete type: an integer, Bool, "
                    + "Float, Double, a string, [UInt8], TraceString<N>, TraceBytes<N> or a TraceEnum enum",
                replacement: nil)
        }
        if type.is(CompositionTypeSyntax.self) {
            return .unsupported(
                why: "protocol compositions are existentials; a field needs a concrete type", replacement: nil)
        }
        if type.is(DictionaryTypeSyntax.self) {
            return .unsupported(
                why: "dictionaries are not supported; trace each entry as its own event", replacement: nil)
        }
        if let array = type.as(ArrayTypeSyntax.self) {
            if isUInt8(array.element) { return .supported(.bytes) }
            return arrayUnsupported
        }
        if type.is(InlineArrayTypeSyntax.self) {
            return .unsupported(
                why: "inline arrays are not supported; use [UInt8] or TraceBytes<N> for bytes, "
                    + "or one field per element", replacement: nil)
        }
        if type.is(MetatypeTypeSyntax.self) {
            return .unsupported(why: "metatypes cannot be written to a trace", replacement: nil)
        }
        if type.is(PackExpansionTypeSyntax.self) || type.is(PackElementTypeSyntax.self) {
            return .unsupported(why: "parameter packs are not supported", replacement: nil)
        }
        if let (module, name, arguments) = namedType(type) {
            return checkNamed(module: module, name: name, arguments: arguments)
        }
        return .unsupported(why: "this kind of type is not supported by @TraceEvent", replacement: nil)
    }

    static let arrayUnsupported = FieldTypeCheck.unsupported(
        why: "the only supported array is [UInt8] (a byte field, or TraceBytes<N> with a bound); "
            + "trace other collections element by element",
        replacement: nil)

    /// `Name`, `Name<Args>`, `Module.Name<Args>` or `Outer.Name<Args>`: the qualifier (if it is a plain
    /// identifier), the last name and the generic arguments.
    static func namedType(_ type: TypeSyntax) -> (qualifier: String?, name: String, arguments: [GenericArgumentSyntax])? {
        if let identifier = type.as(IdentifierTypeSyntax.self) {
            let arguments = identifier.genericArgumentClause.map { Array($0.arguments) } ?? []
            return (nil, unescaped(identifier.name.text), arguments)
        }
        if let member = type.as(MemberTypeSyntax.self) {
            let arguments = member.genericArgumentClause.map { Array($0.arguments) } ?? []
            let qualifier = member.baseType.as(IdentifierTypeSyntax.self).flatMap {
                $0.genericArgumentClause == nil ? unescaped($0.name.text) : nil
            } ?? member.baseType.trimmedDescription
            return (qualifier, unescaped(member.name.text), arguments)
        }
        return nil
    }

    static func checkNamed(module: String?, name: String, arguments: [GenericArgumentSyntax]) -> FieldTypeCheck {
        if name == "Scalar", module == "Unicode" || module == "Swift.Unicode" {
            return .unsupported(why: "use String (or TraceString<N>) for text", replacement: "String")
        }
        // A name qualified by something other than a known module (`Outer.Kind`, `MyModule.Date`) is the
        // user's own type: presumed to be a TraceEnum.
        if let module, !knownModules.contains(module) { return .supported(.presumedEnum) }

        switch name {
        case _ where scalarNames.contains(name) && arguments.isEmpty:
            return .supported(.scalar)
        case _ where textNames.contains(name) && arguments.isEmpty:
            return .supported(.text)
        case "TraceString", "TraceBytes":
            let kind: FieldKind = name == "TraceString" ? .text : .bytes
            if arguments.count == 1, let bound = literalBound(arguments[0]) {
                if let value = Int(bound), (1...65535).contains(value) { return .supported(kind) }
                return .badBound(bound)
            }
            return .supported(kind)  // a non-literal bound: the compiler and the runtime check it
        case "Optional", "ImplicitlyUnwrappedOptional":
            return .unsupported(why: optionalWhy, replacement: arguments.first.map { $0.argument.trimmedDescription })
        case "Array":
            if arguments.count == 1, case .type(let element) = arguments[0].argument, isUInt8(element) {
                return .supported(.bytes)
            }
            return arrayUnsupported
        case "ContiguousArray", "ArraySlice", "Set", "InlineArray", "Span", "CollectionOfOne":
            return arrayUnsupported
        case "Dictionary", "KeyValuePairs":
            return .unsupported(
                why: "dictionaries are not supported; trace each entry as its own event", replacement: nil)
        case "Character":
            return .unsupported(why: "use String (or TraceString<N>) for text", replacement: "String")
        case "Int128", "UInt128":
            return .unsupported(
                why: "128-bit integers are not supported; split the value into two 64-bit fields (high and low)",
                replacement: nil)
        case "Float16":
            return .unsupported(why: "Float16 is not supported; use Float", replacement: "Float")
        case "Float80":
            return .unsupported(why: "Float80 is not supported; use Double", replacement: "Double")
        case "CGFloat":
            return .unsupported(why: "CGFloat is not supported; use Double", replacement: "Double")
        case "Date":
            return .unsupported(
                why: "Date is not supported; trace a timestamp as a number, e.g. "
                    + "'timeIntervalSince1970' as Double or nanoseconds as UInt64",
                replacement: nil)
        case "Data":
            return .unsupported(
                why: "Data is not supported; use [UInt8] or TraceBytes<N>", replacement: "[UInt8]")
        case "Any", "AnyObject":
            return .unsupported(why: "existentials are not supported; a field needs a concrete type", replacement: nil)
        case "Void", "Never":
            return .unsupported(why: "'\(name)' carries no data; remove the field", replacement: nil)
        default:
            // Any other named type: presumed to be an enum conforming to TraceEnum. If it is not a TraceFieldValue,
            // the generated fieldTypes() picks TraceEventFieldCheck's unavailable overload, whose message names the
            // types a field may have.
            return .supported(.presumedEnum)
        }
    }

    /// The literal text of a value-generic bound (`64` in `TraceString<64>`), if it is a literal.
    static func literalBound(_ argument: GenericArgumentSyntax) -> String? {
        switch argument.argument {
        case .expr(let expr):
            if expr.is(IntegerLiteralExprSyntax.self) { return expr.trimmedDescription }
            if let prefix = expr.as(PrefixOperatorExprSyntax.self), prefix.operator.text == "-",
               prefix.expression.is(IntegerLiteralExprSyntax.self) {
                return expr.trimmedDescription
            }
            return nil
        case .type(let type):
            let text = type.trimmedDescription
            return text.first.map { $0.isNumber || $0 == "-" } == true ? text : nil
        }
    }

    static func isUInt8(_ type: TypeSyntax) -> Bool {
        guard let (module, name, arguments) = namedType(type), arguments.isEmpty, name == "UInt8" else { return false }
        return module == nil || module == "Swift"
    }

    /// An identifier without its backticks.
    static func unescaped(_ text: String) -> String {
        if text.count >= 2, text.hasPrefix("`"), text.hasSuffix("`") { return String(text.dropFirst().dropLast()) }
        return text
    }
}
