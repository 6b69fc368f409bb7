import RseqTrace

/// Parsing of TSDL literal values (integers, UUIDs), used by the metadata parser. Each returns
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

/// A metadata parser over a token array that reports problems at a token: gets the token cursor
/// and the literal readers below.
protocol TSDLValueParsing {
    var tokens: [TSDLToken] { get }
    var position: Int { get set }
    func fail(_ token: TSDLToken, _ what: String) -> TraceError
}

extension TSDLValueParsing {
    /// The current token (the end token once the input is exhausted).
    var peek: TSDLToken { tokens[min(position, tokens.count - 1)] }

    mutating func next() -> TSDLToken {
        let token = peek
        if position < tokens.count - 1 { position += 1 }
        return token
    }

    mutating func expect(_ text: String, _ context: String) throws(TraceError) {
        let token = next()
        guard token.kind == .punctuation || token.kind == .identifier, token.text == text else {
            throw fail(token, "expected '\(text)' \(context), found \(token.shown)")
        }
    }

    mutating func identifier(_ context: String) throws(TraceError) -> TSDLToken {
        let token = next()
        guard token.kind == .identifier else { throw fail(token, "expected an identifier \(context), found \(token.shown)") }
        return token
    }

    func unsignedValue(_ token: TSDLToken, _ what: String) throws(TraceError) -> UInt64 {
        guard let value = TSDLLiteral.unsigned(token.text) else { throw fail(token, "\(what) '\(token.text)' is not a 64-bit unsigned integer") }
        return value
    }

    func signedValue(_ token: TSDLToken, _ what: String) throws(TraceError) -> Int64 {
        switch TSDLLiteral.signed(token.text) {
        case .success(let value): return value
        case .failure(let problem): throw fail(token, problem.describe(what, token.text))
        }
    }

    func uuidValue(_ token: TSDLToken) throws(TraceError) -> [UInt8] {
        guard let uuid = TSDLLiteral.uuid(token.text) else {
            throw fail(token, "'\(token.text)' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
        }
        return uuid
    }
}
