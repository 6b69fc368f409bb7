/// Text written with an explicit bound of `maxBytes` UTF-8 bytes (1...65535).
///
/// Longer text is cut to at most `maxBytes` bytes at a Unicode scalar boundary, never inside a
/// UTF-8 sequence. Plain `String`, `Substring` and `StaticString` fields use
/// ``TextFieldEncoding/defaultMaximumBytes``.
///
/// ```swift
/// let open = Tracepoint<TraceString<64>, Int32>("fs:open", fields: "path flags")
/// open.emit(TraceString(path), flags)
/// ```
@frozen
public struct TraceString<let maxBytes: Int>: TraceFieldValue, Sendable, ExpressibleByStringLiteral {
    /// The text to record (cut to at most `maxBytes` UTF-8 bytes at a character boundary).
    public var text: String

    /// Wraps `text` for a field bounded to `maxBytes` bytes.
    @inlinable public init(_ text: String) { self.text = text }
    @inlinable public init(stringLiteral text: String) { self.text = text }

    @inlinable public static var traceFieldType: FieldType { .string(maxBytes: maxBytes) }
    @inlinable @inline(__always) public var traceEncodedSize: Int { TextFieldEncoding.encodedSize(text, limit: maxBytes) }
    @inlinable @inline(__always) public func traceEncode(into writer: inout TracePayloadWriter) {
        TextFieldEncoding.encode(text, limit: maxBytes, into: &writer)
    }
}

/// Encoding of text fields: a 16-bit byte count, then the UTF-8 bytes, cut at a scalar boundary.
public enum TextFieldEncoding {
    /// The bound of `String`, `Substring` and `StaticString` fields.
    public static let defaultMaximumBytes = 255

    /// How many of `bytes` to keep under `limit`: all of them, or the longest prefix of at most
    /// `limit` bytes that ends on a Unicode scalar boundary.
    @inlinable
    @inline(__always)
    public static func keptCount(_ bytes: Span<UInt8>, limit: Int) -> Int {
        if bytes.count <= limit { return bytes.count }
        var kept = limit
        // bytes[kept] exists (count > limit); step back over continuation bytes (10xxxxxx) so the
        // cut falls before the lead byte of a sequence.
        while kept > 0 && bytes[kept] & 0xC0 == 0x80 { kept -= 1 }
        return kept
    }

    @inlinable
    @inline(__always)
    static func encodedSize(_ text: String, limit: Int) -> Int {
        // Through the span: `utf8.count` would branch to a call for foreign strings.
        2 &+ keptCount(text.utf8.span, limit: limit)
    }

    @inlinable
    @inline(__always)
    static func encode(_ text: String, limit: Int, into writer: inout TracePayloadWriter) {
        let bytes = text.utf8.span
        let kept = keptCount(bytes, limit: limit)
        writer.append(UInt16(truncatingIfNeeded: kept))
        writer.append(bytes, count: kept)
    }

    @inlinable
    static func encode(_ bytes: Span<UInt8>, limit: Int, into writer: inout TracePayloadWriter) {
        let kept = keptCount(bytes, limit: limit)
        writer.append(UInt16(truncatingIfNeeded: kept))
        writer.append(bytes, count: kept)
    }
}

extension String: TraceFieldValue {
    @inlinable public static var traceFieldType: FieldType { .string(maxBytes: TextFieldEncoding.defaultMaximumBytes) }
    @inlinable @inline(__always) public var traceEncodedSize: Int { TextFieldEncoding.encodedSize(self, limit: TextFieldEncoding.defaultMaximumBytes) }
    @inlinable @inline(__always) public func traceEncode(into writer: inout TracePayloadWriter) {
        TextFieldEncoding.encode(self, limit: TextFieldEncoding.defaultMaximumBytes, into: &writer)
    }
}

extension Substring: TraceFieldValue {
    @inlinable public static var traceFieldType: FieldType { .string(maxBytes: TextFieldEncoding.defaultMaximumBytes) }
    @inlinable public var traceEncodedSize: Int {
        2 &+ TextFieldEncoding.keptCount(utf8.span, limit: TextFieldEncoding.defaultMaximumBytes)
    }
    @inlinable public func traceEncode(into writer: inout TracePayloadWriter) {
        TextFieldEncoding.encode(utf8.span, limit: TextFieldEncoding.defaultMaximumBytes, into: &writer)
    }
}

extension StaticString: TraceFieldValue {
    @inlinable public static var traceFieldType: FieldType { .string(maxBytes: TextFieldEncoding.defaultMaximumBytes) }
    @inlinable public var traceEncodedSize: Int {
        // SAFETY: the buffer is the literal's constant storage, valid for the closure.
        withUTF8Buffer { unsafe 2 &+ TextFieldEncoding.keptCount($0.span, limit: TextFieldEncoding.defaultMaximumBytes) }
    }
    @inlinable public func traceEncode(into writer: inout TracePayloadWriter) {
        // SAFETY: as above.
        withUTF8Buffer { unsafe TextFieldEncoding.encode($0.span, limit: TextFieldEncoding.defaultMaximumBytes, into: &writer) }
    }
}
