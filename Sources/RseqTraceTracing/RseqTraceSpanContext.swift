import Tracing

/// The identity of a span as it travels in an `InstrumentationContext` (swift-service-context's
/// `ServiceContext`): the trace it belongs to and its own id, as in W3C Trace Context.
public struct RseqTraceSpanContext: Sendable, Hashable {
    /// The high 64 bits of the 128-bit trace id.
    public var traceIDHigh: UInt64
    /// The low 64 bits of the 128-bit trace id.
    public var traceIDLow: UInt64
    /// The span's id (never 0). For spans of this process it is the id of the span's
    /// `rseqtrace:span_begin` / `rseqtrace:span_end` events.
    public var spanID: UInt64
    /// The W3C `sampled` flag, passed on to child spans and downstream services.
    public var isSampled: Bool
    /// Whether the span was started in another process (extracted from a carrier).
    public var isRemote: Bool

    /// A span identity from its parts.
    public init(traceIDHigh: UInt64, traceIDLow: UInt64, spanID: UInt64, isSampled: Bool = true, isRemote: Bool = false) {
        self.traceIDHigh = traceIDHigh
        self.traceIDLow = traceIDLow
        self.spanID = spanID
        self.isSampled = isSampled
        self.isRemote = isRemote
    }

    /// The trace id as 32 lowercase hexadecimal digits (as in a `traceparent` header).
    public var traceIDHex: String { Hex.digits(traceIDHigh) + Hex.digits(traceIDLow) }

    /// The span id as 16 lowercase hexadecimal digits (as in a `traceparent` header).
    public var spanIDHex: String { Hex.digits(spanID) }

    /// The W3C `traceparent` value: `00-<trace id>-<span id>-<flags>`.
    public var traceparent: String { "00-\(traceIDHex)-\(spanIDHex)-\(isSampled ? "01" : "00")" }

    /// Parses a W3C `traceparent` value (version `00`; a later version is read by its first four
    /// fields, as the specification asks). Returns nil for a malformed value, an all-zero trace or
    /// span id, or version `ff`. The result is marked remote.
    public init?(traceparent: String) {
        let bytes = Array(traceparent.utf8)
        // version(2) - trace id(32) - parent id(16) - flags(2)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"),
              bytes[52] == UInt8(ascii: "-") else { return nil }
        guard let version = Hex.value(bytes[0..<2]), version != 0xff else { return nil }
        if version == 0 && bytes.count != 55 { return nil }
        if bytes.count > 55 && bytes[55] != UInt8(ascii: "-") { return nil }
        guard let high = Hex.value(bytes[3..<19]), let low = Hex.value(bytes[19..<35]),
              let span = Hex.value(bytes[36..<52]), let flags = Hex.value(bytes[53..<55]) else { return nil }
        guard high | low != 0, span != 0 else { return nil }
        self.init(traceIDHigh: high, traceIDLow: low, spanID: span, isSampled: flags & 1 == 1, isRemote: true)
    }
}

/// Where a span's identity is kept in an `InstrumentationContext`.
public enum RseqTraceSpanContextKey: InstrumentationContextKey {
    /// The identity of the context's current span.
    public typealias Value = RseqTraceSpanContext
    /// The key's name in the context.
    public static var nameOverride: String? { "rseqtrace-span-context" }
}

extension InstrumentationContext {
    /// The identity of the span this context belongs to (set by ``RseqTraceTracer`` and by its
    /// `extract`), or nil.
    public var rseqTraceSpanContext: RseqTraceSpanContext? {
        get { self[RseqTraceSpanContextKey.self] }
        set { self[RseqTraceSpanContextKey.self] = newValue }
    }
}

/// Lowercase hexadecimal text.
enum Hex {
    /// `value` as 16 lowercase hexadecimal digits.
    static func digits(_ value: UInt64) -> String {
        var text = ""
        text.reserveCapacity(16)
        for shift in stride(from: 60, through: 0, by: -4) {
            text.unicodeScalars.append(Unicode.Scalar(digit(UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xF)))
        }
        return text
    }

    /// The ASCII digit of a nibble.
    @inline(__always)
    static func digit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ (nibble &- 10)
    }

    /// The value of 1 to 16 lowercase hexadecimal digits (W3C Trace Context allows no uppercase).
    static func value(_ digits: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        for byte in digits {
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(nibble)
        }
        return value
    }
}
