/// Bytes written with an explicit bound of `maxCount` (1...65535); longer arrays keep their first
/// `maxCount` bytes. Plain `[UInt8]` fields use ``TextFieldEncoding/defaultMaximumBytes``.
@frozen
public struct TraceBytes<let maxCount: Int>: TraceFieldValue, Sendable {
    /// The bytes to record (only the first `maxCount` are kept).
    public var bytes: [UInt8]

    /// Wraps `bytes` for a field bounded to `maxCount` bytes.
    @inlinable public init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inlinable public static var traceFieldType: FieldType { .bytes(maxCount: maxCount) }
    @inlinable public var traceEncodedSize: Int { 2 &+ min(bytes.count, maxCount) }
    @inlinable public func traceEncode(into writer: inout TracePayloadWriter) {
        let kept = min(bytes.count, maxCount)
        writer.append(UInt16(truncatingIfNeeded: kept))
        writer.append(bytes.span, count: kept)
    }
}

extension Array: TraceFieldValue where Element == UInt8 {
    @inlinable public static var traceFieldType: FieldType { .bytes(maxCount: TextFieldEncoding.defaultMaximumBytes) }
    @inlinable public var traceEncodedSize: Int { 2 &+ Swift.min(count, TextFieldEncoding.defaultMaximumBytes) }
    @inlinable public func traceEncode(into writer: inout TracePayloadWriter) {
        let kept = Swift.min(count, TextFieldEncoding.defaultMaximumBytes)
        writer.append(UInt16(truncatingIfNeeded: kept))
        writer.append(span, count: kept)
    }
}
