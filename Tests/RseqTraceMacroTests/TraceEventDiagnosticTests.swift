@testable import RseqTraceMacroPlugin
import SwiftSyntaxMacrosGenericTestSupport
import Testing

@Suite("@TraceEvent diagnostics")
struct TraceEventDiagnosticTests {
    // MARK: Where it is attached and its argument

    @Test func classIsRejectedWithFixIt() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            class C {
                var v: Int
            }
            """,
            expandedSource: """
            class C {
                var v: Int
            }
            """,
            message: "@TraceEvent can only be attached to a struct, not a class; declare the event as a struct "
                + "whose stored properties are its fields",
            line: 2, column: 1,
            fixIts: [FixItSpec(message: "Replace 'class' with 'struct'")],
            fixedSource: """
            @TraceEvent("a:b")
            struct C {
                var v: Int
            }
            """
        )
    }

    @Test func enumIsRejected() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            enum E {
                case x
            }
            """,
            expandedSource: """
            enum E {
                case x
            }
            """,
            message: "@TraceEvent can only be attached to a struct, not an enum; declare the event as a struct "
                + "whose stored properties are its fields",
            line: 2, column: 1
        )
    }

    @Test func missingEventName() {
        expectDiagnostic(
            """
            @TraceEvent
            struct E {
                var v: Int
            }
            """,
            expandedSource: """
            struct E {
                var v: Int
            }
            """,
            message: "@TraceEvent needs the event name as a string literal, e.g. @TraceEvent(\"http:request\")",
            line: 1, column: 1
        )
    }

    @Test func eventNameNotALiteral() {
        expectDiagnostic(
            """
            @TraceEvent(eventName)
            struct E {
                var v: Int
            }
            """,
            expandedSource: """
            struct E {
                var v: Int
            }
            """,
            message: "the event name of @TraceEvent must be a string literal such as \"http:request\"; "
                + "macros read it from the source, so a constant or an expression cannot be used",
            line: 1, column: 13
        )
    }

    @Test func eventNameInterpolated() {
        expectDiagnostic(
            #"""
            @TraceEvent("http:\(kind)")
            struct E {
                var v: Int
            }
            """#,
            expandedSource: """
            struct E {
                var v: Int
            }
            """,
            message: "the event name of @TraceEvent cannot use string interpolation; "
                + "write the whole name as a literal such as \"http:request\"",
            line: 1, column: 13
        )
    }

    static let nameRule = "both parts must be identifiers (ASCII letters, digits and '_', not starting with a "
        + "digit), e.g. \"http:request\""

    @Test func eventNameWithDotGetsFixIt() {
        expectDiagnostic(
            """
            @TraceEvent("http.request")
            struct E {
                var v: Int
            }
            """,
            expandedSource: """
            struct E {
                var v: Int
            }
            """,
            message: "event name \"http.request\" is not of the form \"provider:event\": it has no ':' between the "
                + "provider and the event; " + Self.nameRule,
            line: 1, column: 13,
            fixIts: [FixItSpec(message: "Replace with \"http:request\"")],
            fixedSource: """
            @TraceEvent("http:request")
            struct E {
                var v: Int
            }
            """
        )
    }

    @Test(arguments: [
        ("http", "it has no ':' between the provider and the event"),
        ("", "it is empty"),
        ("a:b:c", "it has more than one ':'"),
        (":request", "the provider part is empty"),
        ("http:", "the event part is empty"),
        ("http:1xx", "the event part '1xx' starts with a digit"),
        ("http:ré", "the event part 'ré' contains 'é'"),
    ])
    func invalidEventNames(name: String, problem: String) {
        expectDiagnostic(
            """
            @TraceEvent("\(name)")
            struct E {
            }
            """,
            expandedSource: """
            struct E {
            }
            """,
            message: "event name \"\(name)\" is not of the form \"provider:event\": \(problem); " + Self.nameRule,
            line: 1, column: 13,
            // Only the last two have an obvious valid neighbour.
            fixIts: name == "http:1xx" ? [FixItSpec(message: "Replace with \"http:_1xx\"")]
                : name == "http:ré" ? [FixItSpec(message: "Replace with \"http:r_\"")] : []
        )
    }

    @Test func validEventNamesAreAccepted() {
        for name in ["http:request", "_a:_1", "A1_b:C_2", "x:y"] {
            #expect(EventName.problem(name) == nil, "\(name)")
        }
        #expect(EventName.problem("http-server:req") != nil)
        #expect(EventName.suggestion(for: "http-server:req") == "http_server:req")
        #expect(EventName.suggestion(for: "http/request") == "http:request")
        #expect(EventName.suggestion(for: "a.b.c") == nil)
    }

    // MARK: Generic contexts

    @Test func genericStruct() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E<T> {
                var v: Int
            }
            """,
            expandedSource: """
            struct E<T> {
                var v: Int
            }
            """,
            message: "@TraceEvent cannot be attached to generic struct 'E': it generates a 'static let tracepoint', "
                + "and Swift does not support static stored properties in generic types; move the event type to "
                + "a non-generic scope and remove its generic parameters",
            line: 2, column: 9
        )
    }

    static func genericContextMessage(_ context: String) -> String {
        "@TraceEvent struct 'E' is declared inside \(context): it generates a 'static let tracepoint', and Swift "
            + "does not support static stored properties in generic types; move the event type to a non-generic "
            + "scope (file scope or a non-generic type)"
    }

    static func localTypeMessage(_ function: String, generic: String? = nil) -> String {
        "@TraceEvent struct 'E' is declared inside \(function): Swift does not allow the extension macro that adds "
            + "the TraceEvent conformance on a local type"
            + (generic.map { ", nor static stored properties such as 'static let tracepoint' in \($0)" } ?? "")
            + "; move the event type to a non-generic scope (file scope or a non-generic type)"
    }

    /// The compiler itself refuses extension macros on local types ("local type cannot have attached extension
    /// macro"); the macro says why and what to do when it gets to run.
    @Test func insideNonGenericFunction() {
        expectDiagnostic(
            """
            func run() {
                @TraceEvent("a:b")
                struct E {
                    var v: UInt8
                }
            }
            """,
            expandedSource: """
            func run() {
                struct E {
                    var v: UInt8
                }
            }
            """,
            message: Self.localTypeMessage("function 'run'"),
            line: 3, column: 12
        )
    }

    @Test func insideClosure() {
        expectDiagnostic(
            """
            let handler = {
                @TraceEvent("a:b")
                struct E {
                    var v: UInt8
                }
            }
            """,
            expandedSource: """
            let handler = {
                struct E {
                    var v: UInt8
                }
            }
            """,
            message: Self.localTypeMessage("a closure"),
            line: 3, column: 12
        )
    }

    @Test func nestedInGenericType() {
        expectDiagnostic(
            """
            struct Box<T> {
                @TraceEvent("a:b")
                struct E {
                    var v: Int
                }
            }
            """,
            expandedSource: """
            struct Box<T> {
                struct E {
                    var v: Int
                }
            }
            """,
            message: Self.genericContextMessage("generic struct 'Box'"),
            line: 3, column: 12
        )
    }

    @Test func insideFunctionOfGenericType() {
        expectDiagnostic(
            """
            final class Cache<Key: Hashable> {
                func lookup() {
                    @TraceEvent("cache:miss")
                    struct E {
                        var v: Int
                    }
                }
            }
            """,
            expandedSource: """
            final class Cache<Key: Hashable> {
                func lookup() {
                    struct E {
                        var v: Int
                    }
                }
            }
            """,
            message: Self.localTypeMessage(
                "function 'lookup'", generic: "generic class 'Cache'"),
            line: 4, column: 16
        )
    }

    @Test func insideGenericFunction() {
        expectDiagnostic(
            """
            func handle(_ request: some Sendable) {
                @TraceEvent("a:b")
                struct E {
                    var v: Int
                }
            }
            """,
            expandedSource: """
            func handle(_ request: some Sendable) {
                struct E {
                    var v: Int
                }
            }
            """,
            message: Self.localTypeMessage("function 'handle'", generic: "generic function 'handle'"),
            line: 3, column: 12
        )
    }

    @Test func insideConstrainedExtension() {
        expectDiagnostic(
            """
            extension Array where Element == Int {
                @TraceEvent("a:b")
                struct E {
                    var v: Int
                }
            }
            """,
            expandedSource: """
            extension Array where Element == Int {
                struct E {
                    var v: Int
                }
            }
            """,
            message: Self.genericContextMessage("constrained extension of generic type 'Array'"),
            line: 3, column: 12
        )
    }

    // MARK: Fields

    @Test func tooManyFields() {
        let fields = (0..<256).map { "    var f\($0): UInt8" }.joined(separator: "\n")
        expectDiagnostic(
            "@TraceEvent(\"a:b\")\nstruct Wide {\n\(fields)\n}",
            expandedSource: "struct Wide {\n\(fields)\n}",
            message: "event 'Wide' has 256 fields, but an event can have at most 255; split it into several events",
            line: 2, column: 8
        )
    }

    @Test func exactly255FieldsAreAllowed() {
        let fields = (0..<255).map { ("f\($0)", "UInt8") }
        let declared = fields.map { "    var \($0.0): \($0.1)" }.joined(separator: "\n")
        expectExpansion(
            "@TraceEvent(\"a:b\")\nstruct Wide {\n\(declared)\n}",
            expandedSource: "struct Wide {\n\(declared)\n\n\(expectedMembers(event: "a:b", fields: fields))\n}\n\n"
                + "extension Wide: RseqTrace.TraceEvent {\n}"
        )
    }

    @Test func missingTypeAnnotationWithFixIt() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var count = 0
            }
            """,
            expandedSource: """
            struct E {
                var count = 0
            }
            """,
            message: "field 'count' needs an explicit type annotation (e.g. 'var count: UInt64'): "
                + "@TraceEvent reads field types from the source, before type inference",
            line: 3, column: 9,
            fixIts: [FixItSpec(message: "Add ': Int'")],
            fixedSource: """
            @TraceEvent("a:b")
            struct E {
                var count: Int = 0
            }
            """
        )
    }

    @Test func missingTypeAnnotationInMultiBinding() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var a = makeA(), b: Int
            }
            """,
            expandedSource: """
            struct E {
                var a = makeA(), b: Int
            }
            """,
            message: "field 'a' needs an explicit type annotation (e.g. 'var a: UInt64'): "
                + "@TraceEvent reads field types from the source, before type inference",
            line: 3, column: 9
        )
    }

    @Test func tuplePattern() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var (a, b): (Int, Int)
            }
            """,
            expandedSource: """
            struct E {
                var (a, b): (Int, Int)
            }
            """,
            message: "stored property pattern '(a, b)' is not supported by @TraceEvent; "
                + "declare each field with its own name, e.g. 'var a: Int64, b: Int64'",
            line: 3, column: 9
        )
    }

    static let optionalWhy =
        "trace fields cannot be optional; use a non-optional type (with a sentinel value, or an extra Bool field)"

    /// (type, why, replacement offered as a fix-it)
    @Test(arguments: [
        ("Int?", optionalWhy, "Int"),
        ("Optional<UInt8>", optionalWhy, "UInt8"),
        ("Swift.Optional<UInt8>", optionalWhy, "UInt8"),
        ("String!", optionalWhy, "String"),
        ("(Int, Int)", "tuples are not supported; declare one field per element", nil),
        ("()", "the empty tuple carries no data; remove the field", nil),
        ("() -> Void", "function types cannot be written to a trace", nil),
        ("@Sendable (Int) -> Int", "function types cannot be written to a trace", nil),
        ("some Equatable", "'some' types are not supported; a field needs a concrete type: an integer, Bool, Float, "
            + "Double, a string, [UInt8], TraceString<N>, TraceBytes<N> or a TraceEnum enum", nil),
        ("any Error", "'any' types are not supported; a field needs a concrete type: an integer, Bool, Float, "
            + "Double, a string, [UInt8], TraceString<N>, TraceBytes<N> or a TraceEnum enum", nil),
        ("Any", "existentials are not supported; a field needs a concrete type", nil),
        ("[String: Int]", "dictionaries are not supported; trace each entry as its own event", nil),
        ("Dictionary<String, Int>", "dictionaries are not supported; trace each entry as its own event", nil),
        ("[Int]", "the only supported array is [UInt8] (a byte field, or TraceBytes<N> with a bound); trace other "
            + "collections element by element", nil),
        ("Array<Int8>", "the only supported array is [UInt8] (a byte field, or TraceBytes<N> with a bound); trace "
            + "other collections element by element", nil),
        ("Set<UInt8>", "the only supported array is [UInt8] (a byte field, or TraceBytes<N> with a bound); trace "
            + "other collections element by element", nil),
        ("Character", "use String (or TraceString<N>) for text", "String"),
        ("Int128", "128-bit integers are not supported; split the value into two 64-bit fields (high and low)", nil),
        ("UInt128", "128-bit integers are not supported; split the value into two 64-bit fields (high and low)", nil),
        ("Float16", "Float16 is not supported; use Float", "Float"),
        ("Float80", "Float80 is not supported; use Double", "Double"),
        ("CGFloat", "CGFloat is not supported; use Double", "Double"),
        ("Date", "Date is not supported; trace a timestamp as a number, e.g. 'timeIntervalSince1970' as Double "
            + "or nanoseconds as UInt64", nil),
        ("Foundation.Date", "Date is not supported; trace a timestamp as a number, e.g. 'timeIntervalSince1970' "
            + "as Double or nanoseconds as UInt64", nil),
        ("Data", "Data is not supported; use [UInt8] or TraceBytes<N>", "[UInt8]"),
        ("Int.Type", "metatypes cannot be written to a trace", nil),
    ] as [(String, String, String?)])
    func unsupportedFieldTypes(type: String, why: String, replacement: String?) {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var field: \(type)
            }
            """,
            expandedSource: """
            struct E {
                var field: \(type)
            }
            """,
            message: "field 'field' has type '\(type)', which cannot be traced: \(why)",
            line: 3, column: 16,
            fixIts: replacement.map { [FixItSpec(message: "Replace '\(type)' with '\($0)'")] } ?? [],
            fixedSource: replacement.map {
                """
                @TraceEvent("a:b")
                struct E {
                    var field: \($0)
                }
                """
            }
        )
    }

    @Test(arguments: [("TraceString<0>", "0"), ("TraceBytes<70000>", "70000"), ("RseqTrace.TraceString<-1>", "-1")])
    func boundsOutOfRange(type: String, bound: String) {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var field: \(type)
            }
            """,
            expandedSource: """
            struct E {
                var field: \(type)
            }
            """,
            message: "field 'field' has type '\(type)' with bound \(bound), but bounds must be between 1 and 65535",
            line: 3, column: 16
        )
    }

    @Test func leadingUnderscoreCollision() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var x: Int
                var _x: Int
            }
            """,
            expandedSource: """
            struct E {
                var x: Int
                var _x: Int
            }
            """,
            message: "fields 'x' and '_x' both appear as 'x' in the trace: CTF readers strip one leading underscore "
                + "from field names; rename one of them",
            line: 4, column: 9,
            notes: [NoteSpec(message: "'x' declared here", line: 3, column: 9)]
        )
    }

    @Test func backtickedNameCollision() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var `_count`: Int
                var count: UInt8
            }
            """,
            expandedSource: """
            struct E {
                var `_count`: Int
                var count: UInt8
            }
            """,
            message: "fields '_count' and 'count' both appear as 'count' in the trace: CTF readers strip one "
                + "leading underscore from field names; rename one of them",
            line: 4, column: 9,
            notes: [NoteSpec(message: "'_count' declared here", line: 3, column: 9)]
        )
    }

    @Test func lengthFieldCollision() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var path: String
                var _path_length: UInt16
            }
            """,
            expandedSource: """
            struct E {
                var path: String
                var _path_length: UInt16
            }
            """,
            message: "field '_path_length' collides with the length field '_path_length' that the trace format "
                + "adds for the string or byte field 'path'; rename it",
            line: 4, column: 9,
            notes: [NoteSpec(message: "string or byte field 'path' declared here", line: 3, column: 9)]
        )
    }

    @Test func lengthFieldCollisionWithBytesField() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var __body_length: UInt16
                var body: TraceBytes<16>
            }
            """,
            expandedSource: """
            struct E {
                var __body_length: UInt16
                var body: TraceBytes<16>
            }
            """,
            message: "field '__body_length' collides with the length field '_body_length' that the trace format "
                + "adds for the string or byte field 'body'; rename it",
            line: 3, column: 9,
            notes: [NoteSpec(message: "string or byte field 'body' declared here", line: 4, column: 9)]
        )
    }

    @Test func fieldNamedEmit() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                var emit: Bool
            }
            """,
            expandedSource: """
            struct E {
                var emit: Bool
            }
            """,
            message: "field name 'emit' clashes with the method 'emit()' that @TraceEvent generates; rename the field",
            line: 3, column: 9
        )
    }

    @Test func propertyWrapperWithFixIt() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                @Clamped var level: Int
            }
            """,
            expandedSource: """
            struct E {
                @Clamped var level: Int
            }
            """,
            message: "field 'level' uses property wrapper '@Clamped': @TraceEvent fields must be plain stored "
                + "properties, since the tracepoint's field types are the declared types; remove the wrapper",
            line: 3, column: 5,
            fixIts: [FixItSpec(message: "Remove '@Clamped'")],
            fixedSource: """
            @TraceEvent("a:b")
            struct E {
                var level: Int
            }
            """
        )
    }

    @Test func lazyWithFixIt() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                lazy var level: Int = 0
            }
            """,
            expandedSource: """
            struct E {
                lazy var level: Int = 0
            }
            """,
            message: "field 'level' is 'lazy': the non-mutating emit() that @TraceEvent generates cannot read a lazy "
                + "property; make it a plain stored property",
            line: 3, column: 5,
            fixIts: [FixItSpec(message: "Remove 'lazy'")],
            fixedSource: """
            @TraceEvent("a:b")
            struct E {
                var level: Int = 0
            }
            """
        )
    }

    @Test func fieldInsideIfConfig() {
        expectDiagnostic(
            """
            @TraceEvent("a:b")
            struct E {
                #if DEBUG
                var debugID: Int
                #endif
            }
            """,
            expandedSource: """
            struct E {
                #if DEBUG
                var debugID: Int
                #endif
            }
            """,
            message: "field 'debugID' is declared inside '#if': @TraceEvent cannot tell which fields exist; "
                + "declare fields outside '#if', or use separate event types per configuration",
            line: 4, column: 9
        )
    }

    /// Every problem is reported, not only the first.
    @Test func severalProblemsAreAllReported() {
        expectExpansion(
            """
            @TraceEvent("a:b")
            struct E {
                var a: Int?
                var b = 1
            }
            """,
            expandedSource: """
            struct E {
                var a: Int?
                var b = 1
            }
            """,
            diagnostics: [
                DiagnosticSpec(
                    message: "field 'a' has type 'Int?', which cannot be traced: \(Self.optionalWhy)",
                    line: 3, column: 12, fixIts: [FixItSpec(message: "Replace 'Int?' with 'Int'")]),
                DiagnosticSpec(
                    message: "field 'b' needs an explicit type annotation (e.g. 'var b: UInt64'): "
                        + "@TraceEvent reads field types from the source, before type inference",
                    line: 4, column: 9, fixIts: [FixItSpec(message: "Add ': Int'")]),
            ]
        )
    }
}
