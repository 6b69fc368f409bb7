import RseqTrace

/// Decodes a record payload with its event schema (the encoding documented on ``EventSchema``)
/// into the values a CTF reader would show for the same event.
package enum EventPayloadDecoder {
    /// The field values, or nil when `payload` does not match `schema` (see `EventSchema.matches`).
    /// Byte arrays yield their length field (`_<name>_length`) first, as in CTF; strings are
    /// exact (the CTF writer cuts them at a NUL, this does not).
    package static func decode(_ payload: [UInt8], schema: EventSchema) -> [CTFFieldValue]? {
        schema.decode(payload).map { fields($0, schema: schema) }
    }

    /// The CTF view of decoded `values` (one per field of `schema`).
    package static func fields(_ values: [PayloadValue], schema: EventSchema) -> [CTFFieldValue] {
        var out: [CTFFieldValue] = []
        for (field, value) in zip(schema.fields, values) {
            let shown: CTFValue
            switch value {
            case .unsigned(let v): shown = .unsigned(v)
            case .signed(let v): shown = .signed(v)
            case .bool(let v): shown = .bool(v)
            case .float32(let v): shown = .float32(v)
            case .float64(let v): shown = .float64(v)
            case .string(let text): shown = .string(text)
            case .bytes(let bytes):
                out.append(CTFFieldValue(name: "_\(field.name)_length", value: .unsigned(UInt64(bytes.count))))
                shown = .bytes(bytes)
            case .enumeration(let label, let number, let isSigned):
                shown = .enumeration(label: label, value: number, isSigned: isSigned)
            }
            out.append(CTFFieldValue(name: field.name, value: shown))
        }
        return out
    }
}
