/// The shape of one event: a provider-qualified name and typed fields.
///
/// A record's payload is the fields in declaration order, little-endian, packed without padding,
/// so that a reader can decode it from the schema alone and copy it verbatim into a CTF stream
/// whose field declarations are byte-aligned.
public struct EventSchema: Sendable, Hashable {
    /// `provider:event`, e.g. `http:request`.
    public var name: String
    public var fields: [EventField]

    public init(name: String, fields: [EventField]) {
        self.name = name
        self.fields = fields
    }

    /// Bytes of payload a record of this event carries.
    public var payloadSize: Int { fields.reduce(0) { $0 + $1.type.byteCount } }

    /// Byte offset of each field in the payload.
    public var fieldOffsets: [Int] {
        var offset = 0
        return fields.map { field in
            defer { offset += field.type.byteCount }
            return offset
        }
    }

    /// Checks the name and fields; returns what is wrong, or nil.
    public var problem: String? {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(EventSchema.isIdentifierCharacter) }) else {
            return "event name '\(name)' must be 'provider:event', each part made of letters, digits and '_'"
        }
        var seen = Set<String>()
        for field in fields {
            guard let first = field.name.first, !first.isNumber,
                  field.name.allSatisfy(EventSchema.isIdentifierCharacter) else {
                return "field name '\(field.name)' of \(name) must be an identifier (letters, digits, '_')"
            }
            guard seen.insert(field.name).inserted else {
                return "field '\(field.name)' appears twice in \(name)"
            }
        }
        return nil
    }

    static func isIdentifierCharacter(_ c: Character) -> Bool {
        c == "_" || (c.isASCII && (c.isLetter || c.isNumber))
    }
}

/// One named field of an event.
public struct EventField: Sendable, Hashable {
    public var name: String
    public var type: FieldType

    public init(_ name: String, _ type: FieldType) {
        self.name = name
        self.type = type
    }
}

/// Field types a payload can carry (fixed size, little-endian).
public enum FieldType: Sendable, Hashable {
    case unsigned(bits: Int)
    case signed(bits: Int)
    case float32
    case float64
    case bool

    /// Bytes the field occupies in a payload.
    public var byteCount: Int {
        switch self {
        case .unsigned(let bits), .signed(let bits): return bits / 8
        case .float32: return 4
        case .float64: return 8
        case .bool: return 1
        }
    }

    public static let uint8 = FieldType.unsigned(bits: 8)
    public static let uint16 = FieldType.unsigned(bits: 16)
    public static let uint32 = FieldType.unsigned(bits: 32)
    public static let uint64 = FieldType.unsigned(bits: 64)
    public static let int8 = FieldType.signed(bits: 8)
    public static let int16 = FieldType.signed(bits: 16)
    public static let int32 = FieldType.signed(bits: 32)
    public static let int64 = FieldType.signed(bits: 64)
}
