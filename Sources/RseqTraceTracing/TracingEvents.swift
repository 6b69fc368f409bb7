import RseqTrace
import Tracing

/// The events a ``RseqTraceTracer`` records, besides the `rseqtrace:span_begin` /
/// `rseqtrace:span_end` pair that draws each span as a slice.
enum TracingEvents {
    /// `tracing:span_start`: a span began (recorded right after its `rseqtrace:span_begin`).
    static let start = Tracepoint6<TraceIDField, UInt64, UInt64, SpanKindField, String, UInt64>(
        "tracing:span_start", fields: "trace_id span_id parent_span_id kind operation start_ns")
    /// `tracing:span_end`: a span ended (recorded right before its `rseqtrace:span_end`).
    static let end = Tracepoint5<UInt64, SpanStatusField, String, TraceString<1024>, UInt64>(
        "tracing:span_end", fields: "span_id status status_message attributes duration_ns")
    /// `tracing:span_event`: `Span.addEvent`.
    static let event = Tracepoint4<UInt64, String, TraceString<1024>, UInt64>(
        "tracing:span_event", fields: "span_id name attributes time_ns")
    /// `tracing:span_error`: `Span.recordError`.
    static let error = Tracepoint5<UInt64, String, TraceString<1024>, TraceString<1024>, UInt64>(
        "tracing:span_error", fields: "span_id type message attributes time_ns")
    /// `tracing:span_link`: `Span.addLink`.
    static let link = Tracepoint4<UInt64, TraceIDField, UInt64, TraceString<1024>>(
        "tracing:span_link", fields: "span_id trace_id linked_span_id attributes")

    /// `key=value` pairs sorted by key and separated by one space; arrays as `[a, b]`.
    static func render(_ attributes: SpanAttributes) -> String {
        if attributes.isEmpty { return "" }
        var pairs: [(String, SpanAttribute)] = []
        pairs.reserveCapacity(attributes.count)
        attributes.forEach { pairs.append(($0, $1)) }
        pairs.sort { $0.0 < $1.0 }
        var text = ""
        for (key, value) in pairs {
            if !text.isEmpty { text += " " }
            text += key
            text += "="
            text += render(value)
        }
        return text
    }

    /// One attribute value as text.
    static func render(_ value: SpanAttribute) -> String {
        func list<T>(_ values: [T], _ item: (T) -> String) -> String { "[" + values.map(item).joined(separator: ", ") + "]" }
        switch value {
        case .int32(let v): return String(v)
        case .int64(let v): return String(v)
        case .double(let v): return String(v)
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return v
        case .stringConvertible(let v): return v.description
        case .int32Array(let v): return list(v) { String($0) }
        case .int64Array(let v): return list(v) { String($0) }
        case .doubleArray(let v): return list(v) { String($0) }
        case .boolArray(let v): return list(v) { $0 ? "true" : "false" }
        case .stringArray(let v): return list(v) { $0 }
        case .stringConvertibleArray(let v): return list(v) { $0.description }
        default: return ""
        }
    }
}

/// The `kind` field of `tracing:span_start`.
enum SpanKindField: UInt8, TraceEnum {
    case `internal`, server, client, producer, consumer

    init(_ kind: SpanKind) {
        switch kind {
        case .internal: self = .internal
        case .server: self = .server
        case .client: self = .client
        case .producer: self = .producer
        case .consumer: self = .consumer
        }
    }
}

/// The `status` field of `tracing:span_end`: `unset` when the span's status was never set.
enum SpanStatusField: UInt8, TraceEnum {
    case unset, ok, error
}

/// A 128-bit trace id written as a string field of 32 lowercase hexadecimal digits, without
/// building a `String`.
struct TraceIDField: TraceFieldValue {
    var high: UInt64
    var low: UInt64

    static var traceFieldType: FieldType { .string(maxBytes: 32) }
    var traceEncodedSize: Int { 34 }

    func traceEncode(into writer: inout TracePayloadWriter) {
        writer.append(UInt16(32))
        writer.append(Self.digits(high >> 32))
        writer.append(Self.digits(high & 0xFFFF_FFFF))
        writer.append(Self.digits(low >> 32))
        writer.append(Self.digits(low & 0xFFFF_FFFF))
    }

    /// The eight digits of a 32-bit value, most significant first, as the bytes of one
    /// little-endian word.
    @inline(__always)
    static func digits(_ half: UInt64) -> UInt64 {
        var word: UInt64 = 0
        for index in 0..<8 {
            let nibble = UInt8(truncatingIfNeeded: half >> UInt64(28 - 4 * index)) & 0xF
            word |= UInt64(Hex.digit(nibble)) << UInt64(8 * index)
        }
        return word
    }
}
