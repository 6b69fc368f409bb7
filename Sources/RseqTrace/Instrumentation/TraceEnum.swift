/// An enumeration written as its raw integer, and declared to readers with its case names (a CTF
/// enumeration: babeltrace2 shows the name next to the value).
///
/// ```swift
/// enum Method: UInt8, TraceEnum { case get, post, put }
/// ```
/// The case names are read once, at registration, with `String(describing:)`.
public protocol TraceEnum: TraceFieldValue, CaseIterable, RawRepresentable
where RawValue: FixedWidthInteger & BitwiseCopyable {}

extension TraceEnum {
    public static var traceFieldType: FieldType {
        .enumeration(EnumerationType(
            bits: RawValue.bitWidth, isSigned: RawValue.isSigned,
            cases: allCases.map { EnumerationCase(String(describing: $0), Int64(truncatingIfNeeded: $0.rawValue)) }))
    }
    @inlinable public var traceEncodedSize: Int { MemoryLayout<RawValue>.size }
    @inlinable @inline(__always) public func traceEncode(into writer: inout TracePayloadWriter) { writer.append(rawValue) }
}
