import RseqTrace

/// Decodes a record payload with its event schema (the encoding documented on ``EventSchema``)
/// into the values a CTF reader would show for the same event.
public enum EventPayloadDecoder {
    /// The field values, or nil when `payload` does not match `schema` (see `EventSchema.matches`).
    /// Byte arrays yield their length field (`_<name>_length`) first, as in CTF; strings are
    /// exact (the CTF writer cuts them at a NUL, this does not).
    public static func decode(_ payload: [UInt8], schema: EventSchema) -> [CTFFieldValue]? {
        guard schema.matches(payload) else { return nil }
        var values: [CTFFieldValue] = []
        var offset = 0
        func integer(_ size: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<size { value |= UInt64(payload[offset + i]) << (8 * UInt64(i)) }
            offset += size
            return value
        }
        for field in schema.fields {
            let value: CTFValue
            switch field.type {
            case .unsigned(let bits): value = .unsigned(integer(bits / 8))
            case .signed(let bits): value = .signed(CTFValue.signExtended(integer(bits / 8), bits: bits))
            case .bool: value = .unsigned(integer(1))
            case .float32: value = .float32(Float(bitPattern: UInt32(truncatingIfNeeded: integer(4))))
            case .float64: value = .float64(Double(bitPattern: integer(8)))
            case .enumeration(let type):
                let raw = integer(type.bits / 8)
                let number = type.isSigned ? CTFValue.signExtended(raw, bits: type.bits) : Int64(bitPattern: raw)
                value = .enumeration(label: type.cases.first { $0.value == number }?.name, value: number,
                                     isSigned: type.isSigned)
            case .string:
                let count = Int(integer(2))
                value = .string(String(decoding: payload[offset..<(offset + count)], as: UTF8.self))
                offset += count
            case .bytes:
                let count = Int(integer(2))
                values.append(CTFFieldValue(name: "_\(field.name)_length", value: .unsigned(UInt64(count))))
                value = .bytes(Array(payload[offset..<(offset + count)]))
                offset += count
            }
            values.append(CTFFieldValue(name: field.name, value: value))
        }
        return values
    }
}
