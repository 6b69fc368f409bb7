/// Parsing of TSDL literal values (integers, UUIDs), shared by the metadata parsers. Each returns
/// nil or a reason instead of throwing, so that a parser can report it with its own position.
enum TSDLLiteral {
    /// A decimal or `0x` hexadecimal 64-bit unsigned integer.
    static func unsigned(_ text: String) -> UInt64? {
        text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text, radix: 10)
    }

    /// A decimal or hexadecimal integer with an optional `-`, within the 64-bit signed range;
    /// `.failure` says what is wrong.
    static func signed(_ text: String) -> Result<Int64, LiteralProblem> {
        let negative = text.hasPrefix("-")
        guard let magnitude = unsigned(negative ? String(text.dropFirst()) : text) else { return .failure(.notAnInteger) }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return .failure(.outOfRange) }
            return .success(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
        }
        guard let value = Int64(exactly: magnitude) else { return .failure(.outOfRange) }
        return .success(value)
    }

    enum LiteralProblem: Error {
        case notAnInteger, outOfRange

        func describe(_ what: String, _ text: String) -> String {
            self == .notAnInteger ? "\(what) '\(text)' is not a 64-bit integer" : "\(what) '\(text)' is out of the 64-bit range"
        }
    }

    /// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" → 16 bytes.
    static func uuid(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count == 36 else { return nil }
        var nibbles: [UInt8] = []
        for (i, c) in chars.enumerated() {
            if [8, 13, 18, 23].contains(i) {
                guard c == UInt8(ascii: "-") else { return nil }
                continue
            }
            switch c {
            case 0x30...0x39: nibbles.append(c - 0x30)
            case 0x61...0x66: nibbles.append(c - 0x61 + 10)
            case 0x41...0x46: nibbles.append(c - 0x41 + 10)
            default: return nil
            }
        }
        return stride(from: 0, to: 32, by: 2).map { nibbles[$0] << 4 | nibbles[$0 + 1] }
    }
}
