#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceLTTng
import RseqTrace
import Synchronization

/// Forwards typed RseqTrace events to LTTng-UST, so that they appear in `lttng` sessions next to
/// other user-space events, with their own names and fields.
///
/// Each event is described to LTTng-UST at run time, the first time it is enabled
/// (``register(event:schema:)``): a typed LTTng-UST event named like the RseqTrace event
/// (`http:request`), whose fields carry the schema's names and types. Enable it as any UST event
/// (`lttng enable-event -u 'http:*'`). How each field type is mapped: the table in README.md
/// ("LTTng-UST bridge").
///
/// When LTTng-UST refuses a description (a field name longer than 247 bytes, a missing
/// `liblttng-ust-tracepoint.so.1`), or with ``Encoding/text``, the event is forwarded as
/// `rseqtrace:text`, whose `event` field is the event name and `fields` the values rendered by
/// `EventSchema.renderText`, e.g. `bytes=12 status=-3 path="/x" level=info(0) data=<00 7f> ok=true`.
///
/// Without the `LTTng` package trait the forwarder exists but forwards nothing
/// (``LTTngBridge/isAvailable`` is false).
public final class LTTngForwarder: TraceEventForwarder {
    /// How events are written to LTTng-UST.
    public enum Encoding: Sendable, Equatable {
        /// One typed LTTng-UST event per RseqTrace event (the text encoding where refused).
        case typed
        /// Every event as `rseqtrace:text` (event name + rendered fields).
        case text
    }

    /// How this forwarder writes events.
    public let encoding: Encoding
    private let notes = Mutex<[String]>([])
    /// Schemas of the registered events, for the text encoding.
    private let schemas = Mutex<[Int: EventSchema]>([:])

    package init(encoding: Encoding = .typed) {
        self.encoding = encoding
    }

    /// Events that could not be forwarded as typed events, and why (also written to stderr once).
    public var problems: [String] { notes.withLock { $0 } }

    /// Describes event `event` to LTTng-UST as a typed event with `schema`'s name and fields
    /// (called by `TraceRuntime` when the event is first enabled). When LTTng-UST refuses it, the
    /// event is forwarded as `rseqtrace:text` and the reason lands in `problems`. Allocates; once per event.
    public func register(event: Int, schema: EventSchema) {
        guard rseqtrace_lttng_is_available() == 1 else { return }
        guard let index = UInt32(exactly: event) else {
            note("event \(schema.name) is not forwarded to LTTng-UST: event number \(event) is out of range")
            return
        }
        schemas.withLock { $0[event] = schema }
        // SAFETY: the C function copies `name` before returning.
        let builder = unsafe rseqtrace_lttng_builder_create(schema.name)
        for field in schema.fields {
            let (kind, bits, isSigned) = LTTngForwarder.kind(of: field.type)
            let shape = PayloadFieldShape(field.type)
            // SAFETY: `builder` is the live builder (or nil, which the C side ignores); names are copied.
            unsafe rseqtrace_lttng_builder_add_field(builder, field.name, Int32(bitPattern: kind.rawValue), UInt32(bits),
                                                     isSigned ? 1 : 0, UInt32(max(0, shape.fixed)), UInt32(shape.bound))
            if case .enumeration(let enumeration) = field.type {
                for item in enumeration.cases {
                    // SAFETY: as above.
                    unsafe rseqtrace_lttng_builder_add_enum_case(builder, item.name, item.value)
                }
            }
        }
        var message = [CChar](repeating: 0, count: 512)
        // SAFETY: `builder` is consumed by this call; `message` has `message.count` writable bytes.
        let result = unsafe message.withUnsafeMutableBufferPointer { buffer in
            unsafe rseqtrace_lttng_builder_register(builder, index, encoding == .typed ? 1 : 0,
                                                    schema.fixedPayloadSize ?? -1, buffer.baseAddress, buffer.count)
        }
        let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch result {
        case 1: break
        case 0 where encoding == .text: break
        case 0: note("event \(schema.name) is forwarded to LTTng-UST as rseqtrace:text: \(reason)")
        default: note("event \(schema.name) is not forwarded to LTTng-UST: \(reason)")
        }
    }

    /// Writes one event's payload to LTTng-UST (called by `TraceRuntime` for each emitted event):
    /// the typed event, or `rseqtrace:text` when the event is not registered as typed. Does nothing
    /// when no LTTng session enables the event, or in a build without the `LTTng` trait.
    public func forward(event: Int, payload: RawSpan) {
        // SAFETY: the C function reads `count` bytes of the span's memory during the call only.
        let wantsText = unsafe payload.withUnsafeBytes { bytes in
            unsafe rseqtrace_lttng_forward(UInt32(truncatingIfNeeded: event), bytes.baseAddress, bytes.count)
        }
        guard wantsText == 1 else { return }
        // SAFETY: copies the span's bytes, valid for the call.
        let bytes = unsafe payload.withUnsafeBytes { unsafe Array($0) }
        guard let text = renderedText(event: event, payload: bytes) else { return }
        // SAFETY: the C function reads the NUL-terminated text during the call only.
        unsafe rseqtrace_lttng_write_text(UInt32(truncatingIfNeeded: event), text)
    }

    /// The text of the fallback encoding for a payload of a registered event (what `rseqtrace:text`
    /// carries in `fields`), or nil when the event is unknown or the payload does not match it.
    package func renderedText(event: Int, payload: [UInt8]) -> String? {
        schemas.withLock { $0[event] }?.renderText(payload)
    }

    private func note(_ problem: String) {
        notes.withLock { $0.append(problem) }
        let line = Array("rseqtrace: \(problem)\n".utf8)
        // SAFETY: writing `line`'s bytes, valid for the call.
        _ = unsafe line.withUnsafeBytes { unsafe write(2, $0.baseAddress, $0.count) }
    }

    static func kind(of type: FieldType) -> (rseqtrace_lttng_kind, Int, Bool) {
        switch type {
        case .unsigned(let bits): return (RSEQTRACE_LTTNG_UNSIGNED, bits, false)
        case .signed(let bits): return (RSEQTRACE_LTTNG_SIGNED, bits, true)
        case .float32: return (RSEQTRACE_LTTNG_FLOAT, 32, false)
        case .float64: return (RSEQTRACE_LTTNG_FLOAT, 64, false)
        case .bool: return (RSEQTRACE_LTTNG_BOOL, 8, false)
        case .string: return (RSEQTRACE_LTTNG_STRING, 0, false)
        case .bytes: return (RSEQTRACE_LTTNG_BYTES, 0, false)
        case .enumeration(let enumeration): return (RSEQTRACE_LTTNG_ENUM, enumeration.bits, enumeration.isSigned)
        }
    }
}

/// Turns the LTTng-UST bridge on for this process.
///
/// ```swift
/// import RseqTraceLTTng
/// try LTTngBridge.install()          // then RSEQTRACE_BACKEND=lttng|both selects it
/// try LTTngBridge.install(backend: .forwarder)   // or choose in code
/// ```
public enum LTTngBridge {
    /// `typed` (default) or `text`: how events are written (see ``LTTngForwarder/Encoding``).
    package static let encodingVariable = "RSEQTRACE_LTTNG_ENCODING"

    /// Whether this build includes the LTTng-UST provider (the package was built with
    /// `--traits LTTng`).
    public static var isAvailable: Bool { rseqtrace_lttng_is_available() == 1 }

    /// The forwarder installed by ``install(encoding:backend:)``, if any.
    public static var installed: LTTngForwarder? { current.withLock { $0 } }

    private static let current = Mutex<LTTngForwarder?>(nil)

    /// Installs an ``LTTngForwarder`` as ``TraceRuntime``'s forwarder (once per process; later calls
    /// return the installed one) and, when `backend` is given, selects the sinks; otherwise
    /// `RSEQTRACE_BACKEND` (read by the runtime) decides.
    ///
    /// - Parameter encoding: nil reads `RSEQTRACE_LTTNG_ENCODING` (`typed` when unset).
    /// - Throws: `.invalidConfiguration` when this build has no LTTng-UST provider, or when
    ///   `RSEQTRACE_LTTNG_ENCODING` is neither `typed` nor `text`.
    @discardableResult
    public static func install(encoding: LTTngForwarder.Encoding? = nil, backend: TraceSinks? = nil)
        throws(TraceError) -> LTTngForwarder {
        guard isAvailable else {
            throw TraceError(.invalidConfiguration, """
                this program was built without the LTTng trait: rebuild with `swift build --traits LTTng` \
                (needs liblttng-ust-dev) to forward events to LTTng-UST
                """)
        }
        let chosen: LTTngForwarder.Encoding
        if let encoding { chosen = encoding } else { chosen = try encodingFromEnvironment() }
        let (forwarder, isNew) = current.withLock { installed -> (LTTngForwarder, Bool) in
            if let installed { return (installed, false) }
            let forwarder = LTTngForwarder(encoding: chosen)
            installed = forwarder
            return (forwarder, true)
        }
        if isNew { TraceRuntime.installForwarder(forwarder) }
        if let backend { TraceRuntime.setSinks(backend) }
        return forwarder
    }

    static func encodingFromEnvironment() throws(TraceError) -> LTTngForwarder.Encoding {
        guard let raw = SystemInfo.environmentValue(encodingVariable) else { return .typed }
        switch raw {
        case "", "typed": return .typed
        case "text": return .text
        case let other:
            throw TraceError(.invalidConfiguration, "\(encodingVariable)='\(other)' is not valid: use typed or text")
        }
    }
}
