import RseqTrace

/// One token of TSDL text: an identifier, a number, a string (unescaped), punctuation, or the end.
struct TSDLToken {
    enum Kind: Equatable { case identifier, number, string, punctuation, end }

    var kind: Kind
    var text: String
    /// Byte offset in the metadata text.
    var offset: Int

    /// How an error message shows the token.
    var shown: String {
        switch kind {
        case .end: return "end of file"
        case .string: return "string \"\(text)\""
        default: return "'\(text)'"
        }
    }
}

/// Splits TSDL text into tokens; comments and whitespace are dropped.
enum TSDLTokenizer {
    /// The tokens of `bytes` from `start`, ending with an `.end` token; `fail(offset, what)` makes
    /// the error for unterminated comments and strings and for unexpected bytes.
    static func tokenize(_ bytes: [UInt8], from start: Int, fail: (Int, String) -> TraceError) throws(TraceError) -> [TSDLToken] {
        var tokens: [TSDLToken] = []
        var i = start
        func isIdentifierStart(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A || c == 0x5F }
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        func isIdentifierByte(_ c: UInt8) -> Bool { isIdentifierStart(c) || isDigit(c) }
        func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        while i < bytes.count {
            let c = bytes[i]
            let start = i
            switch c {
            case 0x20, 0x09, 0x0A, 0x0D:
                i += 1
            case UInt8(ascii: "/") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "*"):
                i += 2
                var closed = false
                while i + 1 < bytes.count {
                    if bytes[i] == UInt8(ascii: "*") && bytes[i + 1] == UInt8(ascii: "/") { closed = true; break }
                    i += 1
                }
                guard closed else { throw fail(start, "unterminated comment (truncated metadata?)") }
                i += 2
            case UInt8(ascii: "/") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "/"):
                while i < bytes.count && bytes[i] != 0x0A { i += 1 }
            case UInt8(ascii: "\""):
                i += 1
                var value: [UInt8] = []
                var closed = false
                while i < bytes.count {
                    let b = bytes[i]
                    if b == UInt8(ascii: "\"") { closed = true; i += 1; break }
                    if b == 0x0A { break }
                    if b == UInt8(ascii: "\\") {
                        guard i + 1 < bytes.count else { break }
                        switch bytes[i + 1] {
                        case UInt8(ascii: "\""), UInt8(ascii: "\\"): value.append(bytes[i + 1])
                        case UInt8(ascii: "n"): value.append(0x0A)
                        case UInt8(ascii: "t"): value.append(0x09)
                        default: throw fail(i, "unsupported escape sequence in string")
                        }
                        i += 2
                        continue
                    }
                    value.append(b)
                    i += 1
                }
                guard closed else { throw fail(start, "unterminated string (truncated metadata?)") }
                tokens.append(TSDLToken(kind: .string, text: String(decoding: value, as: UTF8.self), offset: start))
            case _ where isIdentifierStart(c):
                while i < bytes.count && isIdentifierByte(bytes[i]) { i += 1 }
                tokens.append(TSDLToken(kind: .identifier, text: text(start..<i), offset: start))
            case _ where isDigit(c) || (c == UInt8(ascii: "-") && i + 1 < bytes.count && isDigit(bytes[i + 1])):
                i += 1
                while i < bytes.count && isIdentifierByte(bytes[i]) { i += 1 }
                tokens.append(TSDLToken(kind: .number, text: text(start..<i), offset: start))
            case UInt8(ascii: ":") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "="):
                i += 2
                tokens.append(TSDLToken(kind: .punctuation, text: ":=", offset: start))
            case UInt8(ascii: ".") where i + 2 < bytes.count && bytes[i + 1] == c && bytes[i + 2] == c:
                i += 3
                tokens.append(TSDLToken(kind: .punctuation, text: "...", offset: start))
            case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["),
                 UInt8(ascii: "]"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ";"), UInt8(ascii: "="),
                 UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "."):
                i += 1
                tokens.append(TSDLToken(kind: .punctuation, text: text(start..<i), offset: start))
            default:
                throw fail(start, "unexpected byte 0x\(String(c, radix: 16)) in metadata")
            }
        }
        tokens.append(TSDLToken(kind: .end, text: "", offset: bytes.count))
        return tokens
    }
}
