import RseqTrace

/// Parses and validates the TSDL text of a trace's `metadata` file.
///
/// Only the dialect `CTFMetadata.text` generates is accepted: its fixed preamble (type aliases,
/// trace, env, clock, packet context, event header and stream blocks, in that order, values
/// aside) followed by `event` blocks whose fields are byte-aligned little-endian integers and
/// floats, or byte sequences. Anything else is rejected with `TraceError(.corrupted)` naming the
/// file, the byte offset and line, and what was expected.
struct CTFMetadataParser: TSDLValueParsing {
    enum Kind: Equatable { case identifier, number, string, punctuation, placeholder, end }

    struct Token {
        var kind: Kind
        var text: String
        var offset: Int

        var shown: String {
            switch kind {
            case .end: return "end of file"
            case .string: return "string \"\(text)\""
            default: return "'\(text)'"
            }
        }
    }

    static let signature = CTFMetadata.signature

    /// The fixed part, up to the first `event` block; `@NAME` marks a value to capture.
    static let preamble = """
        typealias integer { size = 8; align = 8; signed = false; } := uint8_t;
        typealias integer { size = 16; align = 8; signed = false; } := uint16_t;
        typealias integer { size = 32; align = 8; signed = false; } := uint32_t;
        typealias integer { size = 64; align = 8; signed = false; } := uint64_t;
        typealias integer { size = 5; align = 1; signed = false; } := uint5_t;
        trace {
            major = 1; minor = 8; uuid = @STRING; byte_order = le;
            packet.header := struct {
                uint32_t magic; uint8_t uuid[16]; uint32_t stream_id; uint64_t stream_instance_id;
            } align(8);
        };
        env { @ENV };
        clock {
            name = "monotonic"; uuid = @STRING; description = @STRING; freq = @NUMBER; precision = @NUMBER;
            offset_s = @NUMBER; offset = @NUMBER; absolute = @BOOL;
        };
        typealias integer { size = 27; align = 1; signed = false; map = clock.monotonic.value; } := uint27_clock_monotonic_t;
        typealias integer { size = 64; align = 8; signed = false; map = clock.monotonic.value; } := uint64_clock_monotonic_t;
        struct packet_context {
            uint64_clock_monotonic_t timestamp_begin; uint64_clock_monotonic_t timestamp_end;
            uint64_t content_size; uint64_t packet_size; uint64_t packet_seq_num; uint64_t events_discarded;
            uint32_t cpu_id;
        } align(8);
        struct event_header {
            enum : uint5_t { compact = 0 ... 30, extended = 31 } id;
            variant <id> {
                struct { uint27_clock_monotonic_t timestamp; } compact;
                struct { uint32_t id; uint64_clock_monotonic_t timestamp; } extended;
            } v;
        } align(8);
        stream { id = 0; event.header := struct event_header; packet.context := struct packet_context; };
        """

    /// The preamble, tokenized once (it is a constant: tokenizing it cannot fail).
    static let template: [Token] = (try? tokenize(Array(preamble.utf8), from: 0, allowPlaceholders: true,
                                                  fail: { o, w in TraceError(.corrupted, "template \(o): \(w)") })) ?? []

    let path: String
    let bytes: [UInt8]
    var tokens: [Token] = []
    var position = 0

    private init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    static func parse(_ bytes: [UInt8], path: String) throws(TraceError) -> CTFTraceMetadata {
        var parser = CTFMetadataParser(bytes: bytes, path: path)
        return try parser.run()
    }

    // MARK: - Errors

    private func fail(_ offset: Int, _ what: String) -> TraceError {
        let clamped = min(max(0, offset), bytes.count)
        let line = 1 + bytes[0..<clamped].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        return TraceError(.corrupted, "\(path): byte offset \(offset) (line \(line)): \(what)")
    }

    func fail(_ token: Token, _ what: String) -> TraceError { fail(token.offset, what) }

    // MARK: - Top level

    private mutating func run() throws(TraceError) -> CTFTraceMetadata {
        let signature = Array(CTFMetadataParser.signature.utf8)
        if bytes.count >= 4 && bytes[0] == 0x57 && bytes[1] == 0x1D && bytes[2] == 0xD1 && bytes[3] == 0x75 {
            throw fail(0, "packetized (binary) metadata is not supported: rseqtrace writes plain-text TSDL")
        }
        guard bytes.count >= signature.count, Array(bytes[0..<signature.count]) == signature else {
            throw fail(0, "metadata does not start with '\(CTFMetadataParser.signature)': not a CTF 1.8 text metadata file")
        }
        tokens = try CTFMetadataParser.tokenize(bytes, from: signature.count, allowPlaceholders: false,
                                                fail: { o, w in fail(o, w) })
        let template = CTFMetadataParser.template
        var strings: [Token] = []
        var numbers: [Token] = []
        var bools: [Token] = []
        var environment: [(key: String, value: CTFEnvironmentValue)] = []
        for expected in template where expected.kind != .end {
            let token = peek
            switch (expected.kind, expected.text) {
            case (.placeholder, "@STRING"):
                guard token.kind == .string else { throw fail(token, "expected a string, found \(token.shown)") }
                strings.append(token)
                position += 1
            case (.placeholder, "@NUMBER"):
                guard token.kind == .number else { throw fail(token, "expected a number, found \(token.shown)") }
                numbers.append(token)
                position += 1
            case (.placeholder, "@BOOL"):
                guard token.kind == .identifier, ["TRUE", "FALSE", "true", "false"].contains(token.text) else {
                    throw fail(token, "expected TRUE or FALSE, found \(token.shown)")
                }
                bools.append(token)
                position += 1
            case (.placeholder, _):
                environment = try parseEnvironment()
            default:
                guard token.kind == expected.kind, token.text == expected.text else {
                    throw fail(token, "expected '\(expected.text)', found \(token.shown) (not the rseqtrace CTF 1.8 layout)")
                }
                position += 1
            }
        }
        guard strings.count == 3, numbers.count == 4, bools.count == 1 else {
            throw fail(0, "internal error: the metadata template is inconsistent")
        }
        // strings: trace uuid, clock uuid, clock description; numbers: freq, precision, offset_s, offset.
        let uuid = try uuidValue(strings[0])
        let clockUUID = try uuidValue(strings[1])
        let frequency = try unsignedValue(numbers[0], "clock freq")
        guard frequency == 1_000_000_000 else {
            throw fail(numbers[0], "clock freq \(frequency) is not supported: rseqtrace traces use a 1000000000 Hz (nanosecond) clock")
        }
        let precision = try unsignedValue(numbers[1], "clock precision")
        let offsetSeconds = try signedValue(numbers[2], "clock offset_s")
        let offsetCycles = try signedValue(numbers[3], "clock offset")
        let (scaled, o1) = offsetSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (_, o2) = scaled.addingReportingOverflow(offsetCycles)
        guard !o1 && !o2 else { throw fail(numbers[2], "clock offset_s \(offsetSeconds) + offset \(offsetCycles) overflows 64-bit nanoseconds") }
        let clock = CTFClockDescription(
            name: "monotonic", uuid: clockUUID, description: strings[2].text, frequency: frequency,
            precision: precision, offsetSeconds: offsetSeconds, offsetCycles: offsetCycles,
            absolute: bools[0].text.uppercased() == "TRUE")

        var events: [UInt32: CTFEventDeclaration] = [:]
        while peek.kind != .end {
            let start = peek
            let event = try parseEvent()
            guard events[event.id] == nil else { throw fail(start, "event id \(event.id) is declared twice") }
            events[event.id] = event
        }
        return CTFTraceMetadata(uuid: uuid, clock: clock, environment: environment, events: events)
    }

    // MARK: - Blocks

    /// `key = "string" | number;` entries up to (not including) the closing brace.
    private mutating func parseEnvironment() throws(TraceError) -> [(key: String, value: CTFEnvironmentValue)] {
        var entries: [(key: String, value: CTFEnvironmentValue)] = []
        while !(peek.kind == .punctuation && peek.text == "}") {
            let key = try identifier("(env entry name)")
            guard !entries.contains(where: { $0.key == key.text }) else { throw fail(key, "env entry '\(key.text)' appears twice") }
            try expect("=", "after env entry '\(key.text)'")
            let value = next()
            switch value.kind {
            case .string: entries.append((key.text, .string(value.text)))
            case .number: entries.append((key.text, .integer(try signedValue(value, "env \(key.text)"))))
            default: throw fail(value, "expected a string or an integer for env entry '\(key.text)', found \(value.shown)")
            }
            try expect(";", "after env entry '\(key.text)'")
        }
        return entries
    }

    /// `event { name = "..."; id = N; stream_id = 0; fields := struct { ... }; };`
    private mutating func parseEvent() throws(TraceError) -> CTFEventDeclaration {
        try expect("event", "(only event blocks may follow the stream block)")
        try expect("{", "after 'event'")
        try expect("name", "(first attribute of an event)")
        try expect("=", "after 'name'")
        let name = next()
        guard name.kind == .string, !name.text.isEmpty else { throw fail(name, "expected the event name as a non-empty string, found \(name.shown)") }
        try expect(";", "after the event name")
        try expect("id", "(second attribute of event \(name.text))")
        try expect("=", "after 'id'")
        let idToken = next()
        guard idToken.kind == .number else { throw fail(idToken, "expected the id of event \(name.text), found \(idToken.shown)") }
        let rawID = try unsignedValue(idToken, "event id")
        guard let id = UInt32(exactly: rawID) else { throw fail(idToken, "event id \(rawID) does not fit the 32-bit extended header id") }
        try expect(";", "after the event id")
        try expect("stream_id", "(third attribute of event \(name.text))")
        try expect("=", "after 'stream_id'")
        let stream = next()
        guard stream.kind == .number, stream.text == "0" else { throw fail(stream, "event \(name.text): stream_id must be 0 (the only stream), found \(stream.shown)") }
        try expect(";", "after stream_id")
        try expect("fields", "(fourth attribute of event \(name.text))")
        try expect(":=", "after 'fields'")
        try expect("struct", "(event fields are a struct)")
        try expect("{", "after 'struct'")
        var fields: [CTFFieldDeclaration] = []
        var rawNames: [String] = []
        while !(peek.kind == .punctuation && peek.text == "}") {
            let (field, raw) = try parseField(event: name.text, rawNames: rawNames, fields: fields)
            fields.append(field)
            rawNames.append(raw)
        }
        try expect("}", "closing the fields of \(name.text)")
        try expect(";", "after the fields of \(name.text)")
        try expect("}", "closing event \(name.text)")
        try expect(";", "after event \(name.text)")
        return CTFEventDeclaration(id: id, name: name.text, fields: fields)
    }

    private mutating func parseField(event: String, rawNames: [String], fields: [CTFFieldDeclaration])
        throws(TraceError) -> (CTFFieldDeclaration, String) {
        let typeToken = peek
        var type: CTFFieldType
        var isText = false
        switch (typeToken.kind, typeToken.text) {
        case (.identifier, "floating_point"):
            _ = next()
            let attributes = try parseAttributes("floating_point")
            let exp = try attribute(attributes, "exp_dig", typeToken)
            let mant = try attribute(attributes, "mant_dig", typeToken)
            guard try attribute(attributes, "align", typeToken) == "8" else { throw fail(typeToken, "floating_point fields must be byte-aligned (align = 8)") }
            for (key, value) in attributes where !["exp_dig", "mant_dig", "align"].contains(key.text) {
                guard key.text == "byte_order", value.text == "le" || value.text == "native" else {
                    throw fail(key, "unsupported floating_point attribute '\(key.text) = \(value.text)'")
                }
            }
            switch (exp, mant) {
            case ("8", "24"): type = .float32
            case ("11", "53"): type = .float64
            default: throw fail(typeToken, "unsupported floating_point (exp_dig \(exp), mant_dig \(mant)): expected binary32 (8, 24) or binary64 (11, 53)")
            }
        case (.identifier, "string"):
            _ = next()
            if peek.kind == .punctuation && peek.text == "{" {
                let attributes = try parseAttributes("string")
                for (key, value) in attributes where !(key.text == "encoding" && ["UTF8", "ASCII", "none"].contains(value.text)) {
                    throw fail(key, "unsupported string attribute '\(key.text) = \(value.text)'")
                }
            }
            type = .string
        case (.identifier, "enum"):
            _ = next()
            try expect(":", "after 'enum' (an enumeration names its integer container)")
            let container = try parseIntegerType(event: event)
            type = .enumeration(bits: container.bits, isSigned: container.isSigned,
                                labels: try parseEnumerators(event: event, isSigned: container.isSigned))
        default:
            let integer = try parseIntegerType(event: event)
            type = integer.isSigned ? .signed(bits: integer.bits) : .unsigned(bits: integer.bits)
            isText = integer.isText
        }
        let nameToken = try identifier("(field name in event \(event))")
        if peek.kind == .punctuation && peek.text == "[" {
            _ = next()
            let length = next()
            guard type == .unsigned(bits: 8) else {
                if type == .string { throw fail(length, "event \(event): arrays of strings are not supported (field \(nameToken.text))") }
                throw fail(length, "event \(event): only sequences of 8-bit unsigned integers are supported, field \(nameToken.text) is not one")
            }
            guard length.kind == .identifier, let index = rawNames.firstIndex(of: length.text) else {
                throw fail(length, "event \(event): sequence \(nameToken.text) must be sized by an earlier field, found \(length.shown)")
            }
            guard case .unsigned = fields[index].type else {
                throw fail(length, "event \(event): the length of sequence \(nameToken.text) must be an unsigned integer field")
            }
            try expect("]", "closing the length of \(nameToken.text)")
            type = isText ? .text(lengthField: index) : .bytes(lengthField: index)
        } else if isText {
            throw fail(nameToken, "event \(event): field \(nameToken.text) has a text encoding but is not a sequence")
        }
        try expect(";", "after field \(nameToken.text) of event \(event)")
        guard !rawNames.contains(nameToken.text) else { throw fail(nameToken, "event \(event): field \(nameToken.text) appears twice") }
        let shown = nameToken.text.hasPrefix("_") ? String(nameToken.text.dropFirst()) : nameToken.text
        return (CTFFieldDeclaration(name: shown, type: type), nameToken.text)
    }

    /// `integer { size = N; align = 8; signed = B; [encoding = UTF8;] [byte_order = le;] }` or one
    /// of the `uintN_t` aliases.
    private mutating func parseIntegerType(event: String) throws(TraceError) -> (bits: Int, isSigned: Bool, isText: Bool) {
        let typeToken = next()
        switch (typeToken.kind, typeToken.text) {
        case (.identifier, "integer"):
            let attributes = try parseAttributes("integer")
            let size = try attribute(attributes, "size", typeToken)
            guard try attribute(attributes, "align", typeToken) == "8" else { throw fail(typeToken, "integer fields must be byte-aligned (align = 8)") }
            let signed = try attribute(attributes, "signed", typeToken)
            var isText = false
            for (key, value) in attributes where !["size", "align", "signed"].contains(key.text) {
                switch (key.text, value.text) {
                case ("byte_order", "le"), ("byte_order", "native"), ("encoding", "none"):
                    break
                case ("encoding", "UTF8"), ("encoding", "ASCII"):
                    isText = true
                default:
                    throw fail(key, "unsupported integer attribute '\(key.text) = \(value.text)'")
                }
            }
            guard let bits = Int(size), [8, 16, 32, 64].contains(bits) else { throw fail(typeToken, "unsupported integer size \(size): expected 8, 16, 32 or 64") }
            guard !isText || bits == 8 else { throw fail(typeToken, "a text encoding needs 8-bit integers, not \(bits)-bit") }
            switch signed {
            case "true", "TRUE", "1": return (bits, true, isText)
            case "false", "FALSE", "0": return (bits, false, isText)
            default: throw fail(typeToken, "integer 'signed' must be true or false, found '\(signed)'")
            }
        case (.identifier, "uint8_t"): return (8, false, false)
        case (.identifier, "uint16_t"): return (16, false, false)
        case (.identifier, "uint32_t"): return (32, false, false)
        case (.identifier, "uint64_t"): return (64, false, false)
        default:
            throw fail(typeToken, "event \(event): expected a field type (integer { ... }, floating_point { ... }, enum : ..., or uint8_t/16/32/64_t), found \(typeToken.shown)")
        }
    }

    /// `{ "label" = value, ... }` (a trailing comma is allowed).
    private mutating func parseEnumerators(event: String, isSigned: Bool) throws(TraceError) -> [Int64: String] {
        try expect("{", "opening the enumerators of an enum in event \(event)")
        var labels: [Int64: String] = [:]
        while !(peek.kind == .punctuation && peek.text == "}") {
            let label = next()
            guard label.kind == .string || label.kind == .identifier else {
                throw fail(label, "event \(event): expected an enumerator label, found \(label.shown)")
            }
            try expect("=", "after enumerator \(label.text)")
            let valueToken = next()
            guard valueToken.kind == .number else { throw fail(valueToken, "event \(event): expected the value of enumerator \(label.text), found \(valueToken.shown)") }
            let value = isSigned ? try signedValue(valueToken, "enumerator value")
                : Int64(bitPattern: try unsignedValue(valueToken, "enumerator value"))
            if labels[value] == nil { labels[value] = label.text }
            if peek.kind == .punctuation && peek.text == "," { _ = next() }
        }
        try expect("}", "closing the enumerators in event \(event)")
        return labels
    }

    /// `{ key = value; ... }`
    private mutating func parseAttributes(_ what: String) throws(TraceError) -> [(Token, Token)] {
        try expect("{", "after '\(what)'")
        var result: [(Token, Token)] = []
        while !(peek.kind == .punctuation && peek.text == "}") {
            let key = try identifier("(\(what) attribute)")
            guard !result.contains(where: { $0.0.text == key.text }) else { throw fail(key, "\(what) attribute '\(key.text)' appears twice") }
            try expect("=", "after '\(key.text)'")
            let value = next()
            guard value.kind == .number || value.kind == .identifier else { throw fail(value, "expected a value for '\(key.text)', found \(value.shown)") }
            try expect(";", "after '\(key.text) = \(value.text)'")
            result.append((key, value))
        }
        try expect("}", "closing '\(what)'")
        return result
    }

    private func attribute(_ attributes: [(Token, Token)], _ key: String, _ at: Token) throws(TraceError) -> String {
        guard let value = attributes.first(where: { $0.0.text == key })?.1 else { throw fail(at, "\(at.text) lacks the '\(key)' attribute") }
        return value.text
    }

    // Values: unsignedValue, signedValue and uuidValue come from TSDLValueParsing (TSDLLiteral.swift).

    // MARK: - Tokenizer

    static func tokenize(_ bytes: [UInt8], from start: Int, allowPlaceholders: Bool,
                         fail: (Int, String) -> TraceError) throws(TraceError) -> [Token] {
        var tokens: [Token] = []
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
                tokens.append(Token(kind: .string, text: String(decoding: value, as: UTF8.self), offset: start))
            case UInt8(ascii: "@") where allowPlaceholders:
                i += 1
                while i < bytes.count && isIdentifierByte(bytes[i]) { i += 1 }
                tokens.append(Token(kind: .placeholder, text: text(start..<i), offset: start))
            case _ where isIdentifierStart(c):
                while i < bytes.count && isIdentifierByte(bytes[i]) { i += 1 }
                tokens.append(Token(kind: .identifier, text: text(start..<i), offset: start))
            case _ where isDigit(c) || (c == UInt8(ascii: "-") && i + 1 < bytes.count && isDigit(bytes[i + 1])):
                i += 1
                while i < bytes.count && isIdentifierByte(bytes[i]) { i += 1 }
                tokens.append(Token(kind: .number, text: text(start..<i), offset: start))
            case UInt8(ascii: ":") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "="):
                i += 2
                tokens.append(Token(kind: .punctuation, text: ":=", offset: start))
            case UInt8(ascii: ".") where i + 2 < bytes.count && bytes[i + 1] == c && bytes[i + 2] == c:
                i += 3
                tokens.append(Token(kind: .punctuation, text: "...", offset: start))
            case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["),
                 UInt8(ascii: "]"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ";"), UInt8(ascii: "="),
                 UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "."):
                i += 1
                tokens.append(Token(kind: .punctuation, text: text(start..<i), offset: start))
            default:
                throw fail(start, "unexpected byte 0x\(String(c, radix: 16)) in metadata")
            }
        }
        tokens.append(Token(kind: .end, text: "", offset: bytes.count))
        return tokens
    }
}
