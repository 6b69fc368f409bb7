/// Protocol Buffers wire-format encoding of one message, field by field (proto2 semantics; only
/// what the Perfetto export writes: varints, fixed64 doubles, length-delimited bytes and messages).
package struct ProtobufWriter {
    package private(set) var bytes: [UInt8] = []

    package init() {}

    private enum WireType: UInt64 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
    }

    private mutating func tag(_ field: Int, _ type: WireType) {
        varint(UInt64(field) << 3 | type.rawValue)
    }

    private mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// A `uint64`/`uint32`/enum field.
    package mutating func unsigned(_ field: Int, _ value: UInt64) {
        tag(field, .varint)
        varint(value)
    }

    /// An `int64`/`int32` field (two's complement varint, as protobuf encodes negative ints).
    package mutating func signed(_ field: Int, _ value: Int64) {
        tag(field, .varint)
        varint(UInt64(bitPattern: value))
    }

    package mutating func bool(_ field: Int, _ value: Bool) {
        unsigned(field, value ? 1 : 0)
    }

    package mutating func double(_ field: Int, _ value: Double) {
        tag(field, .fixed64)
        var bits = value.bitPattern
        for _ in 0..<8 {
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bits >>= 8
        }
    }

    package mutating func string(_ field: Int, _ value: String) {
        data(field, Array(value.utf8))
    }

    package mutating func data(_ field: Int, _ value: [UInt8]) {
        tag(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// An embedded message, built by `build`.
    package mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        build(&inner)
        data(field, inner.bytes)
    }
}
