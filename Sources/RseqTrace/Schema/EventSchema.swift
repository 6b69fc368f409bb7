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

/// One named field of an event.
public struct EventField: Sendable, Hashable {
    public var name: String
    public var type: FieldType

    public init(_ name: String, _ type: FieldType) {
        self.name = name
        self.type = type
    }
}
