/// A value that can be a field of a typed event (``Tracepoint``).
///
/// The library makes the integer types, `Bool`, `Float`, `Double`, `String`, `Substring`,
/// `StaticString`, `[UInt8]`, ``TraceString``, ``TraceBytes`` and every ``TraceEnum`` conform.
/// A custom conformance must write exactly ``traceEncodedSize`` bytes in
/// ``traceEncode(into:)``, in the encoding of its ``traceFieldType``; otherwise the record is
/// abandoned (never published malformed).
public protocol TraceFieldValue: SendableMetatype {
    /// The schema type of every value of this type (strings and byte arrays give their bound).
    static var traceFieldType: FieldType { get }
    /// Bytes this value occupies in a payload (at most `traceFieldType.maximumByteCount`).
    var traceEncodedSize: Int { get }
    /// Writes the value.
    func traceEncode(into writer: inout TracePayloadWriter)
}

/// The schema type of each stored property of a `@TraceEvent` struct, for the macro's generated
/// code: a property whose type is not a ``TraceFieldValue`` (a struct, a class, an enum that does
/// not conform to ``TraceEnum``) is reported at compile time with a message saying which types a
/// field may have, instead of a bare protocol-conformance error.
public enum TraceEventFieldCheck {
    /// The schema type of a field of type `Field`.
    @inlinable
    public static func fieldType<Field: TraceFieldValue>(_: Field.Type) -> FieldType { Field.traceFieldType }

    /// Chosen only for a type that is not a ``TraceFieldValue``, and unavailable: its use is the
    /// compile-time error that names the types a field may have.
    @available(*, unavailable, message: """
        a @TraceEvent property must be an integer, Bool, Float, Double, a string, [UInt8], TraceString<N>, \
        TraceBytes<N> or an enum conforming to TraceEnum; a struct or class is not a field: declare the \
        members you want traced as properties of the event (or conform the type to TraceFieldValue)
        """)
    public static func fieldType<Field>(_: Field.Type) -> FieldType { fatalError("unavailable") }
}

/// Fixed-size values written as their own bytes.
public protocol TraceScalarField: TraceFieldValue, BitwiseCopyable {}

extension TraceScalarField {
    @inlinable public var traceEncodedSize: Int { MemoryLayout<Self>.size }
    @inlinable @inline(__always) public func traceEncode(into writer: inout TracePayloadWriter) { writer.append(self) }
}

extension UInt8: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .unsigned(bits: 8) } }
extension UInt16: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .unsigned(bits: 16) } }
extension UInt32: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .unsigned(bits: 32) } }
extension UInt64: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .unsigned(bits: 64) } }
extension UInt: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .unsigned(bits: UInt.bitWidth) } }
extension Int8: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .signed(bits: 8) } }
extension Int16: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .signed(bits: 16) } }
extension Int32: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .signed(bits: 32) } }
extension Int64: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .signed(bits: 64) } }
extension Int: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .signed(bits: Int.bitWidth) } }
extension Float: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .float32 } }
extension Double: TraceScalarField { @inlinable public static var traceFieldType: FieldType { .float64 } }

extension Bool: TraceFieldValue {
    @inlinable public static var traceFieldType: FieldType { .bool }
    @inlinable public var traceEncodedSize: Int { 1 }
    @inlinable @inline(__always) public func traceEncode(into writer: inout TracePayloadWriter) {
        writer.append(UInt8(self ? 1 : 0))
    }
}
