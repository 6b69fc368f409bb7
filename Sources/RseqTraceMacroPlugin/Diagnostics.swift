import SwiftDiagnostics

/// Every error the `@TraceEvent` and `#trace` macros report. Each message says what is wrong and what to do.
enum TraceMacroDiagnostic: DiagnosticMessage {
    // @TraceEvent: where and how it is written
    case notAStruct(kind: String)
    case missingEventName
    case eventNameNotLiteral
    case eventNameInterpolated
    case invalidEventName(name: String, problem: String)
    case genericStruct(name: String)
    case genericContext(name: String, context: String)
    case localType(name: String, function: String, genericContext: String?)
    // @TraceEvent: fields
    case tooManyFields(type: String, count: Int)
    case missingTypeAnnotation(field: String)
    case unsupportedPattern(pattern: String)
    case unsupportedFieldType(field: String, type: String, why: String)
    case badBound(field: String, type: String, bound: String)
    case duplicateFieldName(field: String, other: String, traceName: String)
    case lengthFieldCollision(field: String, stringField: String)
    case reservedFieldName(field: String)
    case propertyWrapper(field: String, wrapper: String)
    case lazyField(field: String)
    case conditionalField(field: String)
    case traceFieldNameNotLiteral(field: String)
    case invalidTraceFieldName(field: String, name: String)
    case traceFieldOnSeveralFields
    case traceFieldOutsideEvent
    // #trace
    case traceMissingArgument
    case traceStringLiteral
    // #span
    case spanMissingName
    case spanNameNotLiteral
    case spanMissingBody

    var severity: DiagnosticSeverity { .error }

    var diagnosticID: MessageID {
        let id: String
        switch self {
        case .notAStruct: id = "notAStruct"
        case .missingEventName: id = "missingEventName"
        case .eventNameNotLiteral: id = "eventNameNotLiteral"
        case .eventNameInterpolated: id = "eventNameInterpolated"
        case .invalidEventName: id = "invalidEventName"
        case .genericStruct: id = "genericStruct"
        case .genericContext: id = "genericContext"
        case .localType: id = "localType"
        case .tooManyFields: id = "tooManyFields"
        case .missingTypeAnnotation: id = "missingTypeAnnotation"
        case .unsupportedPattern: id = "unsupportedPattern"
        case .unsupportedFieldType: id = "unsupportedFieldType"
        case .badBound: id = "badBound"
        case .duplicateFieldName: id = "duplicateFieldName"
        case .lengthFieldCollision: id = "lengthFieldCollision"
        case .reservedFieldName: id = "reservedFieldName"
        case .propertyWrapper: id = "propertyWrapper"
        case .lazyField: id = "lazyField"
        case .conditionalField: id = "conditionalField"
        case .traceFieldNameNotLiteral: id = "traceFieldNameNotLiteral"
        case .invalidTraceFieldName: id = "invalidTraceFieldName"
        case .traceFieldOnSeveralFields: id = "traceFieldOnSeveralFields"
        case .traceFieldOutsideEvent: id = "traceFieldOutsideEvent"
        case .traceMissingArgument: id = "traceMissingArgument"
        case .traceStringLiteral: id = "traceStringLiteral"
        case .spanMissingName: id = "spanMissingName"
        case .spanNameNotLiteral: id = "spanNameNotLiteral"
        case .spanMissingBody: id = "spanMissingBody"
        }
        return MessageID(domain: "RseqTraceMacros", id: id)
    }

    var message: String {
        switch self {
        case .notAStruct(let kind):
            return "@TraceEvent can only be attached to a struct, not \(kind); declare the event as a struct "
                + "whose stored properties are its fields"
        case .missingEventName:
            return "@TraceEvent needs the event name as a string literal, e.g. @TraceEvent(\"http:request\")"
        case .eventNameNotLiteral:
            return "the event name of @TraceEvent must be a string literal such as \"http:request\"; "
                + "macros read it from the source, so a constant or an expression cannot be used"
        case .eventNameInterpolated:
            return "the event name of @TraceEvent cannot use string interpolation; "
                + "write the whole name as a literal such as \"http:request\""
        case .invalidEventName(let name, let problem):
            return "event name \"\(name)\" is not of the form \"provider:event\": \(problem); both parts must be "
                + "identifiers (ASCII letters, digits and '_', not starting with a digit), e.g. \"http:request\""
        case .genericStruct(let name):
            return "@TraceEvent cannot be attached to generic struct '\(name)': it generates a "
                + "'static let tracepoint', and Swift does not support static stored properties in generic "
                + "types; move the event type to a non-generic scope and remove its generic parameters"
        case .genericContext(let name, let context):
            return "@TraceEvent struct '\(name)' is declared inside \(context): it generates a "
                + "'static let tracepoint', and Swift does not support static stored properties in generic "
                + "types; move the event type to a non-generic scope (file scope or a non-generic type)"
        case .localType(let name, let function, let genericContext):
            return "@TraceEvent struct '\(name)' is declared inside \(function): Swift does not allow the extension "
                + "macro that adds the TraceEvent conformance on a local type"
                + (genericContext.map { ", nor static stored properties such as 'static let tracepoint' in \($0)" } ?? "")
                + "; move the event type to a non-generic scope (file scope or a non-generic type)"
        case .tooManyFields(let type, let count):
            return "event '\(type)' has \(count) fields, but an event can have at most 255; "
                + "split it into several events"
        case .missingTypeAnnotation(let field):
            return "field '\(field)' needs an explicit type annotation (e.g. 'var \(field): UInt64'): "
                + "@TraceEvent reads field types from the source, before type inference"
        case .unsupportedPattern(let pattern):
            return "stored property pattern '\(pattern)' is not supported by @TraceEvent; "
                + "declare each field with its own name, e.g. 'var a: Int64, b: Int64'"
        case .unsupportedFieldType(let field, let type, let why):
            return "field '\(field)' has type '\(type)', which cannot be traced: \(why)"
        case .badBound(let field, let type, let bound):
            return "field '\(field)' has type '\(type)' with bound \(bound), but bounds must be between 1 and 65535"
        case .duplicateFieldName(let field, let other, let traceName):
            return "fields '\(other)' and '\(field)' both appear as '\(traceName)' in the trace: "
                + "CTF readers strip one leading underscore from field names; rename one of them"
        case .lengthFieldCollision(let field, let stringField):
            return "field '\(field)' collides with the length field '_\(stringField)_length' that the trace "
                + "format adds for the string or byte field '\(stringField)'; rename it"
        case .reservedFieldName(let field):
            return "field name '\(field)' clashes with the method 'emit()' that @TraceEvent generates; rename the field"
        case .propertyWrapper(let field, let wrapper):
            return "field '\(field)' uses property wrapper '@\(wrapper)': @TraceEvent fields must be plain stored "
                + "properties, since the tracepoint's field types are the declared types; remove the wrapper"
        case .lazyField(let field):
            return "field '\(field)' is 'lazy': the non-mutating emit() that @TraceEvent generates cannot read a "
                + "lazy property; make it a plain stored property"
        case .conditionalField(let field):
            return "field '\(field)' is declared inside '#if': @TraceEvent cannot tell which fields exist; "
                + "declare fields outside '#if', or use separate event types per configuration"
        case .traceFieldNameNotLiteral(let field):
            return "@TraceField on field '\(field)' needs the trace name as a string literal, "
                + "e.g. @TraceField(\"request_id\")"
        case .invalidTraceFieldName(let field, let name):
            return "@TraceField(\"\(name)\") on field '\(field)': a field's trace name must be an identifier "
                + "(ASCII letters, digits and '_', not starting with a digit), e.g. \"request_id\""
        case .traceFieldOnSeveralFields:
            return "@TraceField names one field: declare this field in its own 'var' (e.g. 'var requestID: UInt64')"
        case .traceFieldOutsideEvent:
            return "@TraceField names a field of an event: attach it to a stored property of a struct "
                + "declared with @TraceEvent"
        case .traceMissingArgument:
            return "#trace needs an event value, e.g. #trace(HTTPRequest(bytes: n, status: s)), where "
                + "HTTPRequest is a struct declared with @TraceEvent(\"http:request\")"
        case .traceStringLiteral:
            return "#trace takes an event value, not an event name: macro arguments are type-checked against the "
                + "macro's declaration before it expands, so a declaration cannot accept arbitrary field labels. "
                + "Declare '@TraceEvent(\"http:request\") struct HTTPRequest { var bytes: UInt64 }' and write "
                + "'#trace(HTTPRequest(bytes: n))'"
        case .spanMissingName:
            return "#span needs a name and a block, e.g. #span(\"db:query\") { try database.run(query) }"
        case .spanNameNotLiteral:
            return "a span name is a string literal without interpolation (it is recorded as a StaticString); "
                + "put variable parts in an event inside the span"
        case .spanMissingBody:
            return "#span needs a block to time, e.g. #span(\"db:query\") { try database.run(query) }"
        }
    }
}

/// Notes attached to the diagnostics above.
struct TraceMacroNote: NoteMessage {
    let message: String
    let id: String
    var noteID: MessageID { MessageID(domain: "RseqTraceMacros", id: id) }
}

/// Fix-its offered with the diagnostics above.
struct TraceMacroFixIt: FixItMessage {
    let message: String
    let id: String
    var fixItID: MessageID { MessageID(domain: "RseqTraceMacros", id: id) }
}
