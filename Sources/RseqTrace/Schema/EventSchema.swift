/// The shape of one event: a provider-qualified name and typed fields.
///
/// A record's payload is the fields in declaration order, little-endian, packed without padding:
/// fixed-size fields at their width, strings and byte arrays as a 16-bit count followed by the
/// bytes. A reader decodes it from the schema alone, and a CTF writer copies it verbatim, since
/// every CTF field declaration of the trace is byte-aligned.
public struct EventSchema: Sendable, Hashable {
    /// `provider:event`, e.g. `http:request`.
    public var name: String
    public var fields: [EventField]

    public init(name: String, fields: [EventField]) {
        self.name = name
        self.fields = fields
    }

    /// The largest payload a record of this event can carry (every string and byte array at its bound).
    public var maximumPayloadSize: Int { fields.reduce(0) { $0 + $1.type.maximumByteCount } }

    /// The payload size when every field has a fixed size; nil when a field is variable-sized.
    public var fixedPayloadSize: Int? {
        var total = 0
        for field in fields {
            guard let size = field.type.fixedByteCount else { return nil }
            total += size
        }
        return total
    }

    /// Whether a field is text.
    public var hasStringField: Bool {
        fields.contains { if case .string = $0.type { return true } else { return false } }
    }

    /// Whether `payload` is exactly one payload of this event: every fixed-size field present,
    /// every string or byte count within its bound and its bytes present, nothing left over.
    public func matches(_ payload: [UInt8]) -> Bool {
        PayloadFieldShape.matches(size: payload.count, fields.lazy.map { PayloadFieldShape($0.type) }) { offset in
            Int(payload[offset]) | Int(payload[offset + 1]) << 8
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
            if let problem = field.type.problem { return "field '\(field.name)' of \(name): \(problem)" }
        }
        // A string or byte array `x` is written to CTF with a length field `_x_length`.
        for field in fields where field.type.fixedByteCount == nil {
            if seen.contains("_\(field.name)_length") {
                return "field '_\(field.name)_length' of \(name) collides with the length field CTF readers show for '\(field.name)'; rename it"
            }
        }
        return nil
    }

    static func isIdentifierCharacter(_ c: Character) -> Bool {
        c == "_" || (c.isASCII && (c.isLetter || c.isNumber))
    }
}

/// How one field occupies a payload, without its name (what walking a payload needs):
/// `fixed` bytes, or (`fixed` < 0) a 16-bit count of at most `bound` bytes followed by the bytes,
/// text when `isString`.
@frozen
public struct PayloadFieldShape: BitwiseCopyable, Sendable {
    public let fixed: Int32
    public let bound: Int32
    public let isString: Bool

    public init(_ type: FieldType) {
        if let size = type.fixedByteCount {
            fixed = Int32(size)
            bound = 0
        } else {
            fixed = -1
            bound = Int32(type.maximumByteCount - 2)
        }
        if case .string = type { isString = true } else { isString = false }
    }

    /// Whether `size` bytes are exactly one payload of `fields`: every fixed-size field present,
    /// every count within its bound and its bytes present, nothing left over. `count(offset)`
    /// reads the little-endian 16-bit count at `offset`; it is called only with `offset + 2 <= size`.
    @inlinable
    public static func matches(size: Int, _ fields: some Sequence<PayloadFieldShape>, count: (Int) -> Int) -> Bool {
        var offset = 0
        for field in fields {
            if field.fixed >= 0 {
                offset += Int(field.fixed)
                guard offset <= size else { return false }
                continue
            }
            guard offset + 2 <= size else { return false }
            let length = count(offset)
            guard length <= Int(field.bound) else { return false }
            offset += 2 + length
            guard offset <= size else { return false }
        }
        return offset == size
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

/// Field types a payload can carry.
public enum FieldType: Sendable, Hashable {
    /// An unsigned integer of 8, 16, 32 or 64 bits.
    case unsigned(bits: Int)
    /// A two's-complement integer of 8, 16, 32 or 64 bits.
    case signed(bits: Int)
    case float32
    case float64
    /// One byte, 0 or 1.
    case bool
    /// UTF-8 text of at most `maxBytes` bytes (1...65535): a 16-bit byte count, then the bytes.
    case string(maxBytes: Int)
    /// At most `maxCount` bytes (1...65535): a 16-bit count, then the bytes.
    case bytes(maxCount: Int)
    /// An integer with named values.
    case enumeration(EnumerationType)

    /// Bytes of the field when its size is fixed; nil for strings and byte arrays.
    public var fixedByteCount: Int? {
        switch self {
        case .unsigned(let bits), .signed(let bits): return bits / 8
        case .float32: return 4
        case .float64: return 8
        case .bool: return 1
        case .string, .bytes: return nil
        case .enumeration(let type): return type.bits / 8
        }
    }

    /// The most bytes the field can occupy in a payload.
    public var maximumByteCount: Int {
        switch self {
        case .string(let bound), .bytes(let bound): return 2 + bound
        default: return fixedByteCount ?? 0
        }
    }

    /// What is wrong with the type's parameters, or nil.
    public var problem: String? {
        switch self {
        case .unsigned(let bits), .signed(let bits):
            return [8, 16, 32, 64].contains(bits) ? nil : "integers have 8, 16, 32 or 64 bits, not \(bits)"
        case .float32, .float64, .bool:
            return nil
        case .string(let bound), .bytes(let bound):
            return (1...Int(UInt16.max)).contains(bound) ? nil : "the bound \(bound) is outside 1...65535"
        case .enumeration(let type):
            return type.problem
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

/// The integer container and named values of an enumeration field.
public struct EnumerationType: Sendable, Hashable {
    /// 8, 16, 32 or 64.
    public var bits: Int
    public var isSigned: Bool
    public var cases: [EnumerationCase]

    public init(bits: Int, isSigned: Bool, cases: [EnumerationCase]) {
        self.bits = bits
        self.isSigned = isSigned
        self.cases = cases
    }

    var problem: String? {
        guard [8, 16, 32, 64].contains(bits) else { return "enumerations have 8, 16, 32 or 64-bit values, not \(bits)" }
        guard !cases.isEmpty, cases.count <= Int(UInt16.max) else { return "an enumeration needs 1...65535 cases" }
        var names = Set<String>()
        for c in cases {
            guard !c.name.isEmpty, c.name.utf8.count <= 255 else { return "enumeration case names are 1...255 bytes" }
            guard names.insert(c.name).inserted else { return "enumeration case '\(c.name)' appears twice" }
            guard fits(c.value) else { return "enumeration value \(c.value) of '\(c.name)' does not fit \(bits) bits" }
        }
        return nil
    }

    /// Whether `value` (a bit pattern for unsigned 64-bit containers) fits the container.
    func fits(_ value: Int64) -> Bool {
        if bits == 64 { return true }
        if isSigned { return value >= -(Int64(1) << (bits - 1)) && value < Int64(1) << (bits - 1) }
        return value >= 0 && value < Int64(1) << bits
    }
}

/// One named value of an enumeration. For an unsigned 64-bit container, `value` holds the bit pattern.
public struct EnumerationCase: Sendable, Hashable {
    public var name: String
    public var value: Int64

    public init(_ name: String, _ value: Int64) {
        self.name = name
        self.value = value
    }
}
