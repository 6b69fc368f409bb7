@_exported import RseqTrace

/// Declares a trace event whose fields are the struct's stored properties.
///
/// ```swift
/// import RseqTraceMacros
///
/// @TraceEvent("http:request")
/// struct HTTPRequest {
///     var bytes: UInt64
///     var status: Int16
///     var path: TraceString<64>
/// }
///
/// #trace(HTTPRequest(bytes: n, status: s, path: TraceString(p)))  // arguments evaluated only when enabled
/// HTTPRequest.emit(bytes: n, status: s, path: TraceString(p))     // the same, through @autoclosure parameters
/// ```
///
/// The macro adds, with the struct's access level:
/// - `static let tracepoint`: a ``RseqTrace/TracepointSite`` with the event name and the field names;
/// - `static func fieldTypes()`: the schema's field types, from the declared types of the stored instance
///   properties, in declaration order (read once, at registration);
/// - `static var isEnabled: Bool`;
/// - `static func emit(field: @autoclosure () -> Type, ...)`, which evaluates its arguments only when the event
///   is enabled;
/// - `func emit()`, which writes this value (nothing when the event is disabled);
/// - and a conformance to ``RseqTrace/TraceEvent``.
///
/// The event name is a string literal `"provider:event"`; both parts are identifiers (ASCII letters, digits and
/// `_`, not starting with a digit). An event can have no fields, and at most 255.
///
/// Fields are the stored instance properties (static and computed properties are skipped), named in the trace
/// after the property or by ``TraceField(_:)`` (`@TraceField("request_id") var requestID: UInt64`). Each needs an
/// explicit type annotation, since the macro reads types from the source. Supported types: `UInt8`...`UInt64`,
/// `UInt`, `Int8`...`Int64`, `Int`, `Bool`, `Float`, `Double`, `String`, `Substring`, `StaticString`,
/// `[UInt8]`, ``RseqTrace/TraceString`` and ``RseqTrace/TraceBytes`` (also written `RseqTrace.X` or `Swift.X`).
/// Any other named type is presumed to be an enumeration conforming to ``RseqTrace/TraceEnum``; a type that is
/// not a ``RseqTrace/TraceFieldValue`` (a struct, a class, an enum without that conformance) is an error in the
/// expansion whose message lists the types a field may have and says to declare a struct's members as properties
/// of the event. Rejected with a diagnostic:
/// optionals, tuples, function types, `some`/`any` types, dictionaries, arrays other than `[UInt8]`,
/// `Character`, `Int128`/`UInt128`, `Float16`, `Float80`, `CGFloat`, `Date`, `Data`, property wrappers, `lazy`,
/// fields declared inside `#if`, a field named `emit`, and field names that collide in the trace (CTF readers strip one leading
/// underscore, so `_x` and `x` collide, and a string or byte field `x` adds a length field `_x_length`).
///
/// Declare event types at file scope or inside non-generic types: the struct cannot be generic nor nested in a
/// generic type (`static let` stored properties are not allowed there), nor local to a function or closure
/// (Swift does not allow the extension macro that adds the conformance on a local type).
@attached(member, names: named(tracepoint), named(fieldTypes), named(isEnabled), named(emit))
@attached(extension, conformances: RseqTrace.TraceEvent)
public macro TraceEvent(_ name: StaticString) =
    #externalMacro(module: "RseqTraceMacroPlugin", type: "TraceEventMacro")

/// Names a field of a ``TraceEvent(_:)`` struct in the trace, where it would otherwise take the property's name.
///
/// ```swift
/// @TraceEvent("http:request")
/// struct HTTPRequest {
///     @TraceField("request_id") var requestID: UInt64      // request_id in the trace
///     @TraceField("latency_ns") var latency: UInt64
/// }
/// ```
///
/// The name is a string literal and an identifier (ASCII letters, digits and `_`, not starting with a digit); it
/// takes part in the field name checks of ``TraceEvent(_:)`` (two fields cannot have the same name in the trace).
/// The attribute marks one stored property of a struct declared with ``TraceEvent(_:)`` and generates nothing.
@attached(peer)
public macro TraceField(_ name: StaticString) =
    #externalMacro(module: "RseqTraceMacroPlugin", type: "TraceFieldMacro")

/// Emits an event declared with ``TraceEvent(_:)``.
///
/// ```swift
/// #trace(HTTPRequest(bytes: n, status: s, path: TraceString(p)))
/// ```
///
/// When the argument is an initializer call whose callee names the type (`HTTPRequest(...)`,
/// `MyModule.HTTPRequest(...)`, `HTTPRequest.init(...)`), it expands to
/// `(HTTPRequest.isEnabled ? HTTPRequest(...).emit() : ())`: the arguments are evaluated only when the event is
/// enabled. Any other argument (a variable, a property, a call of a function returning an event) expands to
/// `(argument).emit()`: it is evaluated, and `emit()` writes nothing when the event is disabled. The type is
/// recognised by its upper-case first letter.
///
/// There is no `#trace("http:request", bytes: n)` form: a macro's arguments are type-checked against its
/// declaration before it expands, and a declaration cannot accept arbitrary labels. The event type carries the
/// name and the labels instead.
@freestanding(expression)
public macro trace<Event: RseqTrace.TraceEvent>(_ event: Event) =
    #externalMacro(module: "RseqTraceMacroPlugin", type: "TraceMacro")

/// Runs a block inside a span (see `TraceSpan`): `rseqtrace:span_begin` before it,
/// `rseqtrace:span_end` with its duration when it returns or throws.
///
/// ```swift
/// let rows = try #span("db:query") { try database.run(query) }
/// let page = try await #span("http:render") { try await render(rows) }
/// ```
///
/// Expands to `RseqTrace.withTraceSpan("db:query") { ... }`; write `try` and `await` before the
/// macro as the block requires.
@freestanding(expression)
public macro span<Result>(_ name: StaticString, _ body: () throws -> Result) -> Result =
    #externalMacro(module: "RseqTraceMacroPlugin", type: "SpanMacro")

/// The asynchronous form of ``span(_:_:)-(_,()->Result)``: the span may end on another thread than
/// it began.
@freestanding(expression)
public macro span<Result>(_ name: StaticString, _ body: () async throws -> Result) -> Result =
    #externalMacro(module: "RseqTraceMacroPlugin", type: "SpanMacro")
