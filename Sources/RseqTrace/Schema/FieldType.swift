#if canImport(Glibc)
import Glibc
#endif

// Everything RseqTrace knows per field type lives in this file: size and bound (`FieldType`),
// how a field occupies a payload (`PayloadFieldShape`), how it is decoded (`FieldType.decode`),
// rendered as text (`PayloadValue.renderedText`), declared in CTF metadata
// (`FieldType.tsdlDeclarations`) and stored in the event registry (`FieldType.registryCode`). The CTF writer and reader, the LTTng-UST bridge and the checks
// derive from these, so a new field type is added here (and in its tests).

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

    /// A short name for listings (`rseqtrace list --events`): `u32`, `i64`, `f64`, `bool`,
    /// `string(64)`, `bytes(16)`, `enum(u8)`.
    package var spelling: String {
        switch self {
        case .unsigned(let bits): return "u\(bits)"
        case .signed(let bits): return "i\(bits)"
        case .float32: return "f32"
        case .float64: return "f64"
        case .bool: return "bool"
        case .string(let bound): return "string(\(bound))"
        case .bytes(let bound): return "bytes(\(bound))"
        case .enumeration(let type): return "enum(\(type.isSigned ? "i" : "u")\(type.bits))"
        }
    }

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

// MARK: - Decoding

/// One decoded field of a payload (see ``EventSchema/decode(_:)``).
package enum PayloadValue: Sendable, Equatable {
    case unsigned(UInt64)
    case signed(Int64)
    case float32(Float)
    case float64(Double)
    case bool(Bool)
    case string(String)
    case bytes([UInt8])
    /// The case name (nil when no case has the value) and the value (a bit pattern for unsigned containers).
    case enumeration(label: String?, value: Int64, isSigned: Bool)
}

extension FieldType {
    /// Decodes the field at `offset` of `payload`, which must match its schema (checked by
    /// ``EventSchema/matches(_:)``), and moves `offset` past it.
    package func decode(_ payload: [UInt8], at offset: inout Int) -> PayloadValue {
        func integer(_ size: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<size { value |= UInt64(payload[offset + i]) << (8 * UInt64(i)) }
            offset += size
            return value
        }
        switch self {
        case .unsigned(let bits): return .unsigned(integer(bits / 8))
        case .signed(let bits): return .signed(FieldType.signExtended(integer(bits / 8), bits: bits))
        case .bool: return .bool(integer(1) != 0)
        case .float32: return .float32(Float(bitPattern: UInt32(truncatingIfNeeded: integer(4))))
        case .float64: return .float64(Double(bitPattern: integer(8)))
        case .enumeration(let type):
            let raw = integer(type.bits / 8)
            let number = type.isSigned ? FieldType.signExtended(raw, bits: type.bits) : Int64(bitPattern: raw)
            return .enumeration(label: type.cases.first { $0.value == number }?.name, value: number, isSigned: type.isSigned)
        case .string:
            let count = Int(integer(2))
            defer { offset += count }
            return .string(String(decoding: payload[offset..<(offset + count)], as: UTF8.self))
        case .bytes:
            let count = Int(integer(2))
            defer { offset += count }
            return .bytes(Array(payload[offset..<(offset + count)]))
        }
    }

    /// The two's-complement value of the low `bits` bits of `raw` (8...64).
    package static func signExtended(_ raw: UInt64, bits: Int) -> Int64 {
        let shift = UInt64(64 - bits)
        return Int64(bitPattern: raw << shift) >> Int64(shift)
    }
}

extension EventSchema {
    /// The field values of `payload`, or nil when it does not match the schema.
    package func decode(_ payload: [UInt8]) -> [PayloadValue]? {
        guard matches(payload) else { return nil }
        var offset = 0
        return fields.map { $0.type.decode(payload, at: &offset) }
    }

    /// Bytes of text in one rendering (longer renderings are cut and end with "...").
    package static let textLimit = 4095

    /// `name=value` pairs separated by spaces (see ``PayloadValue/renderedText``), cut to
    /// ``textLimit`` bytes; nil when `payload` does not match the schema. The LTTng-UST bridge's
    /// `rseqtrace:text` events carry this.
    package func renderText(_ payload: [UInt8]) -> String? {
        decode(payload).map { renderText($0) }
    }

    /// The rendering of already decoded `values` (one per field).
    package func renderText(_ values: [PayloadValue]) -> String {
        var text: [UInt8] = []
        for (field, value) in zip(fields, values) {
            if !text.isEmpty { text.append(UInt8(ascii: " ")) }
            text += field.name.utf8
            text.append(UInt8(ascii: "="))
            text += value.renderedText.utf8
            if text.count > EventSchema.textLimit { break }
        }
        if text.count > EventSchema.textLimit {
            text = Array(text.prefix(EventSchema.textLimit - 3)) + Array("...".utf8)
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension PayloadValue {
    /// The value as text: integers in decimal, `true`/`false`, floats with 9 (binary32) or 17
    /// (binary64) significant digits, strings quoted with `\"`, `\\` and `\xNN` escapes for
    /// control bytes, byte arrays as `<00 7f ff>`, enumerations as `label(value)`.
    package var renderedText: String {
        switch self {
        case .unsigned(let v): return "\(v)"
        case .signed(let v): return "\(v)"
        case .bool(let v): return v ? "true" : "false"
        case .float32(let v): return PayloadValue.significantDigits(Double(v), 9)
        case .float64(let v): return PayloadValue.significantDigits(v, 17)
        case .enumeration(let label, let value, let isSigned):
            return "\(label ?? "")(\(isSigned ? "\(value)" : "\(UInt64(bitPattern: value))"))"
        case .string(let text):
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"", "\\": out += "\\\(scalar)"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                    out += "\\x" + PayloadValue.hex(UInt8(scalar.value))
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        case .bytes(let bytes):
            return "<" + bytes.map(PayloadValue.hex).joined(separator: " ") + ">"
        }
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
    }

    /// `value` as C's `%.<digits>g` writes it.
    static func significantDigits(_ value: Double, _ digits: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        // SAFETY: vsnprintf writes at most buffer.count bytes (NUL included) into the array's storage;
        // the va_list holds one Double, which the format consumes.
        let count = unsafe withVaList([value]) { arguments in
            unsafe buffer.withUnsafeMutableBufferPointer { out in
                unsafe vsnprintf(out.baseAddress, out.count, "%.\(digits)g", arguments)
            }
        }
        guard count > 0 else { return "\(value)" }
        return String(decoding: buffer.prefix(min(Int(count), buffer.count - 1)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

// MARK: - CTF declaration

extension FieldType {
    /// The TSDL declarations of a field named `name` in CTF metadata (byte-aligned,
    /// little-endian; the field is `_name`, shown as `name`). Strings are NUL-terminated `string`s;
    /// byte arrays are a `uint16_t` length field `__<name>_length` (shown as `_<name>_length`) and
    /// a sequence, as LTTng-UST writes its sequences. `escape` makes a TSDL string literal's text.
    package func tsdlDeclarations(name: String, escape: (String) -> String) -> [String] {
        switch self {
        case .unsigned(let bits): return ["integer { size = \(bits); align = 8; signed = false; } _\(name);"]
        case .signed(let bits): return ["integer { size = \(bits); align = 8; signed = true; } _\(name);"]
        case .float32: return ["floating_point { exp_dig = 8; mant_dig = 24; align = 8; } _\(name);"]
        case .float64: return ["floating_point { exp_dig = 11; mant_dig = 53; align = 8; } _\(name);"]
        case .bool:
            // An enumeration of one byte whose only labels are "false" = 0 and "true" = 1: babeltrace2
            // 2.0 shows it as a labelled integer, and the CTF reader takes exactly this shape for a boolean.
            return ["enum : integer { size = 8; align = 8; signed = false; } { \"false\" = 0, \"true\" = 1 } _\(name);"]
        case .string:
            // A NUL-terminated CTF string (the CTF writer converts the counted payload text): readers
            // handle it best (babeltrace2 2.0.4 shows a stale value for an empty text sequence).
            return ["string { encoding = UTF8; } _\(name);"]
        case .bytes:
            return ["uint16_t __\(name)_length;", "uint8_t _\(name)[__\(name)_length];"]
        case .enumeration(let type):
            let cases = type.cases.map { c -> String in
                let value = type.isSigned ? "\(c.value)" : "\(UInt64(bitPattern: c.value))"
                return "\"\(escape(c.name))\" = \(value)"
            }.joined(separator: ", ")
            return ["enum : integer { size = \(type.bits); align = 8; signed = \(type.isSigned); } { \(cases) } _\(name);"]
        }
    }
}

// MARK: - Event registry encoding

extension FieldType {
    /// The type code and `bits` byte of the field in an event registry entry (see ``EventRegistry``).
    var registryCode: (code: UInt8, bits: Int) {
        switch self {
        case .unsigned(let bits): return (1, bits)
        case .signed(let bits): return (2, bits)
        case .float32: return (3, 32)
        case .float64: return (4, 64)
        case .bool: return (5, 8)
        case .string: return (6, 8)
        case .bytes: return (7, 8)
        case .enumeration(let type): return (8, type.bits)
        }
    }

    /// Appends the parameters that follow the field's name in a registry entry: a `u16` bound for
    /// strings and byte arrays; `u8 signed | u16 case count` and per case `i64 value | u8 name
    /// length | name` for enumerations; nothing for the other types.
    func appendRegistryParameters(to bytes: inout [UInt8]) {
        func append16(_ value: Int) {
            bytes.append(UInt8(truncatingIfNeeded: value))
            bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        }
        switch self {
        case .string(let bound), .bytes(let bound):
            append16(bound)
        case .enumeration(let type):
            bytes.append(type.isSigned ? 1 : 0)
            append16(type.cases.count)
            for c in type.cases {
                for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: c.value >> (8 * i))) }
                bytes.append(UInt8(c.name.utf8.count))
                bytes.append(contentsOf: c.name.utf8)
            }
        case .unsigned, .signed, .float32, .float64, .bool:
            break
        }
    }

    /// Why a registry entry's field cannot be decoded.
    struct RegistryProblem: Error {
        let what: String
    }

    /// The type of a registry field with `code` and `bits`, reading its parameters with
    /// `integer(size)` (little-endian) and `string(count)`, which return nil past the entry.
    static func fromRegistry(code: UInt8, bits: Int, field: String, integer: (Int) -> UInt64?,
                             string: (Int) -> String?) -> Result<FieldType, RegistryProblem> {
        switch (code, bits) {
        case (1, 8), (1, 16), (1, 32), (1, 64): return .success(.unsigned(bits: bits))
        case (2, 8), (2, 16), (2, 32), (2, 64): return .success(.signed(bits: bits))
        case (3, 32): return .success(.float32)
        case (4, 64): return .success(.float64)
        case (5, 8): return .success(.bool)
        case (6, 8), (7, 8):
            guard let bound = integer(2) else { return .failure(RegistryProblem(what: "bound of field \(field) runs past the entry")) }
            return .success(code == 6 ? .string(maxBytes: Int(bound)) : .bytes(maxCount: Int(bound)))
        case (8, 8), (8, 16), (8, 32), (8, 64):
            guard let signed = integer(1), let count = integer(2) else {
                return .failure(RegistryProblem(what: "enumeration \(field) runs past the entry"))
            }
            var cases: [EnumerationCase] = []
            for _ in 0..<count {
                guard let value = integer(8), let length = integer(1), let name = string(Int(length)) else {
                    return .failure(RegistryProblem(what: "a case of enumeration \(field) runs past the entry"))
                }
                cases.append(EnumerationCase(name, Int64(bitPattern: value)))
            }
            return .success(.enumeration(EnumerationType(bits: bits, isSigned: signed != 0, cases: cases)))
        default:
            return .failure(RegistryProblem(what: "unknown field type \(code)/\(bits)"))
        }
    }
}
