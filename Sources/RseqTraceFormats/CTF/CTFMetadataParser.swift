import RseqTrace

/// Parses the TSDL of a trace's `metadata` file: what `CTFMetadata` writes and what lttng-sessiond
/// 2.13 writes for LTTng-UST traces (per-UID or per-PID buffers, any number of channels), so that
/// `rseqtrace view` reads RseqTrace's own traces, the LTTng-UST bridge's and other LTTng-UST
/// applications'. The writer's dialect is a subset of LTTng's; both share `CTFLayout`'s packet
/// header, packet context and event header, which the parser checks.
///
/// Accepted: type aliases; the trace block with the packet header of `CTFLayout`; env; one clock
/// of 1 GHz; named structs; stream blocks whose packet context is `CTFLayout`'s, whose event header
/// is the compact one (`event_header_compact`) or LTTng's large one, and whose event context holds
/// scalars, strings or text arrays; event blocks whose fields are byte-aligned little-endian
/// integers, floats, enumerations, strings (`string`), text arrays and 8-bit sequences (text or
/// bytes). Other fields (integer arrays, wider sequences, nested structs, variants) and
/// natural-alignment traces (`align` other than 8, as on aarch64) are refused with
/// `TraceError(.corrupted)` naming the file, the byte offset and line, and what is unsupported.
struct CTFMetadataParser: TSDLValueParsing {
    typealias Token = TSDLToken

    /// A parsed type.
    indirect enum TypeSpec {
        case integer(bits: Int, align: Int, isSigned: Bool, isText: Bool)
        case float(bits: Int, align: Int)
        case string
        case enumeration(bits: Int, isSigned: Bool, labels: [Int64: String])
        case structure([FieldSpec])
        case variant(tag: String, [FieldSpec])
    }

    /// A declared field: its type and, for arrays and sequences, the length.
    struct FieldSpec {
        enum Length { case none, fixed(Int), field(String) }
        var name: String
        var type: TypeSpec
        var length: Length
        var token: Token
    }

    let path: String
    let bytes: [UInt8]
    var tokens: [Token] = []
    var position = 0
    private var aliases: [String: TypeSpec] = [:]
    private var structs: [String: [FieldSpec]] = [:]

    private init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    static func parse(_ bytes: [UInt8], path: String) throws(TraceError) -> CTFTraceMetadata {
        var parser = CTFMetadataParser(bytes: bytes, path: path)
        return try parser.run()
    }

    /// The text of packetized metadata (what LTTng writes): each packet's header is magic
    /// 0x75D11D57, uuid, checksum, content_size and packet_size in bits, then five one-byte fields.
    static func unpacketize(_ bytes: [UInt8], path: String) throws(TraceError) -> [UInt8] {
        let headerSize = 37
        var text: [UInt8] = []
        var offset = 0
        func fail(_ at: Int, _ what: String) -> TraceError {
            TraceError(.corrupted, "\(path): byte offset \(at): \(what)")
        }
        func word(_ at: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << UInt32(8 * $1) }
        }
        while offset < bytes.count {
            guard bytes.count - offset >= headerSize else {
                throw fail(offset, "truncated metadata packet header: \(bytes.count - offset) bytes left, it takes \(headerSize)")
            }
            guard word(offset) == 0x75D1_1D57 else {
                throw fail(offset, "bad metadata packet magic 0x\(String(word(offset), radix: 16)), expected 0x75d11d57")
            }
            let content = Int(word(offset + 24)), packet = Int(word(offset + 28))
            guard content % 8 == 0, packet % 8 == 0, content / 8 >= headerSize, content <= packet,
                  packet / 8 <= bytes.count - offset else {
                throw fail(offset + 24, "metadata packet content_size \(content) / packet_size \(packet) bits do not fit the \(bytes.count - offset) bytes left")
            }
            guard bytes[offset + 32] == 0, bytes[offset + 33] == 0 else {
                throw fail(offset + 32, "compressed or encrypted metadata packets are not supported")
            }
            text += bytes[(offset + headerSize)..<(offset + content / 8)]
            offset += packet / 8
        }
        return text
    }

    // MARK: - Errors and tokens

    private func fail(_ offset: Int, _ what: String) -> TraceError {
        let clamped = min(max(0, offset), bytes.count)
        let line = 1 + bytes[0..<clamped].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        return TraceError(.corrupted, "\(path): byte offset \(offset) (line \(line)): \(what)")
    }

    func fail(_ token: Token, _ what: String) -> TraceError { fail(token.offset, what) }

    private func peek(_ ahead: Int) -> Token { tokens[min(position + ahead, tokens.count - 1)] }

    private func isPunctuation(_ text: String) -> Bool { peek.kind == .punctuation && peek.text == text }

    // MARK: - Top level

    private mutating func run() throws(TraceError) -> CTFTraceMetadata {
        let signature = Array(CTFMetadata.signature.utf8)
        guard bytes.count >= signature.count, Array(bytes[0..<signature.count]) == signature else {
            throw fail(0, "metadata does not start with '\(CTFMetadata.signature)': not a CTF 1.8 text metadata file")
        }
        tokens = try TSDLTokenizer.tokenize(bytes, from: signature.count, fail: { o, w in fail(o, w) })
        var uuid: [UInt8]?
        var clock: CTFClockDescription?
        var environment: [(key: String, value: CTFEnvironmentValue)] = []
        var streams: [UInt32: CTFStreamClass] = [:]
        var events: [(Token, UInt32, CTFEventDeclaration)] = []
        while peek.kind != .end {
            let keyword = next()
            switch keyword.text {
            case "typealias":
                let type = try parseType()
                try expect(":=", "in a typealias")
                let name = try aliasName()
                aliases[name] = type
                try expect(";", "after typealias \(name)")
            case "struct":
                let name = try identifier("(struct name)")
                let fields = try parseStructBody()
                structs[name.text] = fields
                try expect(";", "after struct \(name.text)")
            case "trace":
                uuid = try parseTrace()
            case "env":
                // A later env block adds entries (a live relay session's metadata grows so); for a
                // key given twice, the first value counts.
                environment += try parseEnvironment()
            case "clock":
                guard clock == nil else { throw fail(keyword, "a second clock block: only one clock is supported") }
                clock = try parseClock()
            case "stream":
                let stream = try parseStream(at: keyword)
                guard streams[stream.id] == nil else { throw fail(keyword, "stream id \(stream.id) is declared twice") }
                streams[stream.id] = stream
            case "event":
                let (streamID, event) = try parseEvent()
                events.append((keyword, streamID, event))
            default:
                throw fail(keyword, "expected typealias, struct, trace, env, clock, stream or event, found \(keyword.shown)")
            }
        }
        guard let uuid else { throw fail(bytes.count, "the metadata has no trace block") }
        guard let clock else { throw fail(bytes.count, "the metadata has no clock block") }
        if streams.isEmpty { throw fail(bytes.count, "the metadata declares no stream") }
        for (token, streamID, event) in events {
            guard streams[streamID] != nil else {
                throw fail(token, "event \(event.name) belongs to stream \(streamID), which is not declared")
            }
            guard streams[streamID]!.events[event.id] == nil else {
                throw fail(token, "event id \(event.id) is declared twice in stream \(streamID)")
            }
            streams[streamID]!.events[event.id] = event
        }
        return CTFTraceMetadata(uuid: uuid, clock: clock, environment: environment, streams: streams)
    }

    /// A typealias target: one identifier, or several (`unsigned long`).
    private mutating func aliasName() throws(TraceError) -> String {
        var words = [try identifier("(typealias name)").text]
        while peek.kind == .identifier { words.append(next().text) }
        return words.joined(separator: " ")
    }

    // MARK: - Types

    /// A type specifier: integer/floating_point/string/enum/struct/variant or an alias.
    private mutating func parseType() throws(TraceError) -> TypeSpec {
        let token = peek
        switch (token.kind, token.text) {
        case (.identifier, "integer"):
            _ = next()
            let attributes = try parseAttributes("integer")
            let size = try attribute(attributes, "size", token)
            guard let bits = Int(size), (1...64).contains(bits) else { throw fail(token, "unsupported integer size \(size)") }
            let align = Int(try attribute(attributes, "align", token, default: "8")) ?? -1
            let signed = try attribute(attributes, "signed", token, default: "false")
            var isText = false
            for (key, value) in attributes {
                switch (key.text, value.text) {
                case ("size", _), ("align", _), ("signed", _), ("base", _), ("map", _):
                    break
                case ("byte_order", "le"), ("byte_order", "native"), ("encoding", "none"):
                    break
                case ("encoding", "UTF8"), ("encoding", "ASCII"):
                    isText = true
                case ("byte_order", let order):
                    throw fail(key, "byte_order \(order) is not supported: expected 'le'")
                default:
                    throw fail(key, "unsupported integer attribute '\(key.text) = \(value.text)'")
                }
            }
            return .integer(bits: bits, align: align, isSigned: ["true", "TRUE", "1"].contains(signed), isText: isText)
        case (.identifier, "floating_point"):
            _ = next()
            let attributes = try parseAttributes("floating_point")
            let exp = try attribute(attributes, "exp_dig", token)
            let mant = try attribute(attributes, "mant_dig", token)
            let align = Int(try attribute(attributes, "align", token, default: "8")) ?? -1
            for (key, value) in attributes where key.text == "byte_order" && value.text != "le" && value.text != "native" {
                throw fail(key, "byte_order \(value.text) is not supported: expected 'le'")
            }
            switch (exp, mant) {
            case ("8", "24"): return .float(bits: 32, align: align)
            case ("11", "53"): return .float(bits: 64, align: align)
            default: throw fail(token, "unsupported floating_point (exp_dig \(exp), mant_dig \(mant)): expected binary32 (8, 24) or binary64 (11, 53)")
            }
        case (.identifier, "string"):
            _ = next()
            if isPunctuation("{") { _ = try parseAttributes("string") }
            return .string
        case (.identifier, "enum"):
            _ = next()
            if peek.kind == .identifier && peek.text != "integer" && peek(1).kind == .punctuation && peek(1).text == ":" { _ = next() }
            try expect(":", "after 'enum' (an enumeration names its integer container)")
            guard case .integer(let bits, let align, let isSigned, _) = try parseType() else {
                throw fail(token, "an enumeration's container must be an integer")
            }
            guard align == 8 || bits < 8 else { throw fail(token, "enumeration containers must be byte-aligned (align = 8)") }
            return .enumeration(bits: bits, isSigned: isSigned, labels: try parseEnumerators(isSigned: isSigned))
        case (.identifier, "struct"):
            _ = next()
            if isPunctuation("{") { return .structure(try parseStructBody()) }
            let name = try identifier("(struct name)")
            if isPunctuation("{") {
                let fields = try parseStructBody()
                structs[name.text] = fields
                return .structure(fields)
            }
            guard let fields = structs[name.text] else { throw fail(name, "struct \(name.text) is not declared") }
            return .structure(fields)
        case (.identifier, "variant"):
            _ = next()
            try expect("<", "after 'variant'")
            let tag = try identifier("(variant tag)")
            try expect(">", "closing the variant tag")
            return .variant(tag: tag.text, try parseStructBody())
        case (.identifier, _):
            // The longest run of identifiers naming an alias (`unsigned long`), leaving the field name.
            var words: [String] = []
            var count = 0
            var match: (TypeSpec, Int)?
            while peek(count).kind == .identifier {
                words.append(peek(count).text)
                count += 1
                if let type = aliases[words.joined(separator: " ")] { match = (type, count) }
            }
            guard let (type, used) = match else {
                throw fail(token, "expected a type (integer, floating_point, string, enum, struct or a typealias), found \(token.shown)")
            }
            position += used
            return type
        default:
            throw fail(token, "expected a type, found \(token.shown)")
        }
    }

    /// `{ field; ... } [align(N)]`
    private mutating func parseStructBody() throws(TraceError) -> [FieldSpec] {
        try expect("{", "opening a struct")
        var fields: [FieldSpec] = []
        while !isPunctuation("}") {
            let start = peek
            guard start.kind != .end else { throw fail(start, "unterminated struct (truncated metadata?)") }
            let type = try parseType()
            let name = try identifier("(field name)")
            var length = FieldSpec.Length.none
            if isPunctuation("[") {
                _ = next()
                let size = next()
                switch size.kind {
                case .number:
                    guard let count = Int(size.text), count >= 0 else { throw fail(size, "array length '\(size.text)' is not a count") }
                    length = .fixed(count)
                case .identifier:
                    var path = size.text
                    while isPunctuation(".") {
                        _ = next()
                        path += "." + (try identifier("(length field path)")).text
                    }
                    length = .field(path)
                default:
                    throw fail(size, "expected an array length or a length field, found \(size.shown)")
                }
                try expect("]", "closing the length of \(name.text)")
            }
            try expect(";", "after field \(name.text)")
            fields.append(FieldSpec(name: name.text, type: type, length: length, token: start))
        }
        try expect("}", "closing a struct")
        if peek.kind == .identifier && peek.text == "align" {
            _ = next()
            try expect("(", "after align")
            _ = next()
            try expect(")", "closing align(...)")
        }
        return fields
    }

    /// `{ "label" = value | value ... value | (nothing: the next value), ... }`
    private mutating func parseEnumerators(isSigned: Bool) throws(TraceError) -> [Int64: String] {
        try expect("{", "opening the enumerators")
        var labels: [Int64: String] = [:]
        var nextValue: Int64 = 0
        while !isPunctuation("}") {
            let label = next()
            guard label.kind == .string || label.kind == .identifier else {
                throw fail(label, "expected an enumerator label, found \(label.shown)")
            }
            var low = nextValue, high = nextValue
            if isPunctuation("=") {
                _ = next()
                low = try enumeratorValue(isSigned: isSigned)
                high = low
                if isPunctuation("...") {
                    _ = next()
                    high = try enumeratorValue(isSigned: isSigned)
                }
            }
            // Ranges are labelled at their ends only (LTTng-UST writes single values).
            if labels[low] == nil { labels[low] = label.text }
            if labels[high] == nil { labels[high] = label.text }
            nextValue = high &+ 1
            if isPunctuation(",") { _ = next() }
        }
        try expect("}", "closing the enumerators")
        return labels
    }

    private mutating func enumeratorValue(isSigned: Bool) throws(TraceError) -> Int64 {
        let token = next()
        guard token.kind == .number else { throw fail(token, "expected an enumerator value, found \(token.shown)") }
        if token.text.hasPrefix("-") { return try signedValue(token, "enumerator value") }
        return Int64(bitPattern: try unsignedValue(token, "enumerator value"))
    }

    /// `{ key = value; ... }` (values: numbers, identifiers, or dotted paths such as clock.monotonic.value).
    private mutating func parseAttributes(_ what: String) throws(TraceError) -> [(Token, Token)] {
        try expect("{", "after '\(what)'")
        var result: [(Token, Token)] = []
        while !isPunctuation("}") {
            let key = try identifier("(\(what) attribute)")
            try expect("=", "after '\(key.text)'")
            var value = next()
            guard value.kind == .number || value.kind == .identifier || value.kind == .string else {
                throw fail(value, "expected a value for '\(key.text)', found \(value.shown)")
            }
            while isPunctuation(".") {
                _ = next()
                value.text += "." + (try identifier("(attribute value)")).text
            }
            try expect(";", "after '\(key.text) = \(value.text)'")
            result.append((key, value))
        }
        try expect("}", "closing '\(what)'")
        return result
    }

    private func attribute(_ attributes: [(Token, Token)], _ key: String, _ at: Token, default fallback: String? = nil) throws(TraceError) -> String {
        if let value = attributes.first(where: { $0.0.text == key })?.1 { return value.text }
        if let fallback { return fallback }
        throw fail(at, "\(at.text) lacks the '\(key)' attribute")
    }

    // MARK: - Blocks

    /// `key = value;` entries of a block, as tokens (dotted keys joined, `:=` types parsed by `typed`).
    private mutating func parseBlock(_ what: String, typed: (inout CTFMetadataParser, String, Token) throws(TraceError) -> Void)
        throws(TraceError) -> [String: Token] {
        try expect("{", "after '\(what)'")
        var values: [String: Token] = [:]
        while !isPunctuation("}") {
            let first = try identifier("(\(what) attribute)")
            var key = first.text
            while isPunctuation(".") {
                _ = next()
                key += "." + (try identifier("(\(what) attribute)")).text
            }
            if isPunctuation(":=") {
                _ = next()
                try typed(&self, key, first)
            } else {
                try expect("=", "after '\(key)' in \(what)")
                let value = next()
                guard value.kind == .number || value.kind == .string || value.kind == .identifier else {
                    throw fail(value, "expected a value for '\(key)' in \(what), found \(value.shown)")
                }
                values[key] = value
            }
            try expect(";", "after '\(key)' in \(what)")
        }
        try expect("}", "closing \(what)")
        try expect(";", "after \(what)")
        return values
    }

    private mutating func parseTrace() throws(TraceError) -> [UInt8] {
        var header: (TypeSpec, Token)?
        let values = try parseBlock("trace") { (parser: inout CTFMetadataParser, key: String, token: Token) throws(TraceError) in
            guard key == "packet.header" else { throw parser.fail(token, "unsupported trace attribute \(key)") }
            header = (try parser.parseType(), token)
        }
        guard values["major"]?.text == "1", values["minor"]?.text == "8" else {
            throw fail(values["major"] ?? peek, "only CTF 1.8 traces are supported")
        }
        if let order = values["byte_order"], order.text != "le" {
            throw fail(order, "byte_order \(order.text) is not supported: expected 'le'")
        }
        guard let uuidToken = values["uuid"] else { throw fail(peek, "the trace block has no uuid") }
        guard let (type, token) = header else { throw fail(peek, "the trace block declares no packet.header") }
        try require(type, matches: CTFLayout.packetHeader, what: "packet header", at: token)
        return try uuidValue(uuidToken)
    }

    private mutating func parseEnvironment() throws(TraceError) -> [(key: String, value: CTFEnvironmentValue)] {
        try expect("{", "after 'env'")
        var entries: [(key: String, value: CTFEnvironmentValue)] = []
        while !isPunctuation("}") {
            let key = try identifier("(env entry name)")
            try expect("=", "after env entry '\(key.text)'")
            let value = next()
            switch value.kind {
            case .string: entries.append((key.text, .string(value.text)))
            case .number: entries.append((key.text, .integer(try signedValue(value, "env \(key.text)"))))
            default: throw fail(value, "expected a string or an integer for env entry '\(key.text)', found \(value.shown)")
            }
            try expect(";", "after env entry '\(key.text)'")
        }
        try expect("}", "closing env")
        try expect(";", "after env")
        return entries
    }

    private mutating func parseClock() throws(TraceError) -> CTFClockDescription {
        let values = try parseBlock("clock") { (parser: inout CTFMetadataParser, key: String, token: Token) throws(TraceError) in
            throw parser.fail(token, "unsupported clock attribute \(key)")
        }
        let frequency = try values["freq"].map { (token: Token) throws(TraceError) in try unsignedValue(token, "clock freq") } ?? 1_000_000_000
        guard frequency == 1_000_000_000 else {
            throw fail(values["freq"]!, "clock freq \(frequency) is not supported: this reader needs a 1000000000 Hz (nanosecond) clock")
        }
        let offsetSeconds = try values["offset_s"].map { (token: Token) throws(TraceError) in try signedValue(token, "clock offset_s") } ?? 0
        let offset = try values["offset"].map { (token: Token) throws(TraceError) in try signedValue(token, "clock offset") } ?? 0
        let (scaled, o1) = offsetSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (_, o2) = scaled.addingReportingOverflow(offset)
        guard !o1 && !o2 else { throw fail(values["offset"] ?? peek, "clock offset_s + offset overflows 64-bit nanoseconds") }
        return CTFClockDescription(
            name: values["name"]?.text ?? "monotonic",
            uuid: try values["uuid"].map { (token: Token) throws(TraceError) in try uuidValue(token) } ?? [],
            description: values["description"]?.text ?? "",
            frequency: frequency,
            precision: try values["precision"].map { (token: Token) throws(TraceError) in try unsignedValue(token, "clock precision") } ?? 0,
            offsetSeconds: offsetSeconds, offsetCycles: offset,
            absolute: values["absolute"].map { ["TRUE", "true", "1"].contains($0.text) } ?? true)
    }

    private mutating func parseStream(at keyword: Token) throws(TraceError) -> CTFStreamClass {
        var header: CTFStreamClass.EventHeader = .compact
        var context: [CTFFieldDeclaration] = []
        var sawHeader = false, sawContext = false
        let values = try parseBlock("stream") { (parser: inout CTFMetadataParser, key: String, token: Token) throws(TraceError) in
            let type = try parser.parseType()
            switch key {
            case "event.header":
                header = try parser.eventHeader(type, at: token)
                sawHeader = true
            case "packet.context":
                try parser.require(type, matches: CTFLayout.packetContext, what: "packet context", at: token)
                sawContext = true
            case "event.context":
                guard case .structure(let fields) = type else { throw parser.fail(token, "event.context must be a struct") }
                context = try parser.declarations(fields, of: "the event context")
            default:
                throw parser.fail(token, "unsupported stream attribute \(key)")
            }
        }
        guard sawHeader, sawContext else { throw fail(keyword, "a stream block lacks its event.header or packet.context") }
        let id = try values["id"].map { (token: Token) throws(TraceError) in try unsignedValue(token, "stream id") } ?? 0
        guard let id32 = UInt32(exactly: id) else { throw fail(values["id"]!, "stream id \(id) does not fit 32 bits") }
        return CTFStreamClass(id: id32, eventHeader: header, eventContext: context, events: [:])
    }

    private mutating func parseEvent() throws(TraceError) -> (UInt32, CTFEventDeclaration) {
        var fieldSpecs: [FieldSpec]?
        let values = try parseBlock("event") { (parser: inout CTFMetadataParser, key: String, token: Token) throws(TraceError) in
            guard key == "fields", case .structure(let fields) = try parser.parseType() else {
                throw parser.fail(token, "unsupported event attribute \(key) (expected fields := struct { ... })")
            }
            fieldSpecs = fields
        }
        guard let nameToken = values["name"], nameToken.kind == .string, !nameToken.text.isEmpty else {
            throw fail(peek, "an event block has no name")
        }
        let name = nameToken.text
        guard let idToken = values["id"] else { throw fail(nameToken, "event \(name) has no id") }
        let rawID = try unsignedValue(idToken, "event id")
        guard let id = UInt32(exactly: rawID) else { throw fail(idToken, "event id \(rawID) does not fit 32 bits") }
        let stream = try values["stream_id"].map { (token: Token) throws(TraceError) in try unsignedValue(token, "stream_id") } ?? 0
        guard let stream32 = UInt32(exactly: stream) else { throw fail(values["stream_id"]!, "stream_id \(stream) does not fit 32 bits") }
        let fields = try declarations(fieldSpecs ?? [], of: "event \(name)")
        return (stream32, CTFEventDeclaration(id: id, name: name, fields: fields))
    }

    // MARK: - Checks and mapping

    /// The header kind of an `event_header_compact` / `event_header_large` struct.
    private func eventHeader(_ type: TypeSpec, at token: Token) throws(TraceError) -> CTFStreamClass.EventHeader {
        guard case .structure(let fields) = type, fields.count == 2, fields[0].name == "id",
              case .enumeration(let bits, false, _) = fields[0].type, case .variant = fields[1].type else {
            throw fail(token, "unsupported event.header: expected LTTng's event_header_compact or event_header_large")
        }
        switch bits {
        case CTFLayout.compactIDBits: return .compact
        case 16: return .large
        default: throw fail(token, "unsupported event.header id of \(bits) bits: expected 5 (compact) or 16 (large)")
        }
    }

    /// Checks that a struct has exactly these byte-aligned unsigned integer fields (`CTFLayout`).
    private func require(_ type: TypeSpec, matches expected: [CTFLayout.Field], what: String, at token: Token) throws(TraceError) {
        let layout = expected.map { "\($0.name) (\($0.count.map { "\($0) bytes" } ?? "\($0.bits) bits"))" }.joined(separator: ", ")
        guard case .structure(let fields) = type, fields.count == expected.count else {
            throw fail(token, "unsupported \(what): expected \(layout)")
        }
        for (field, want) in zip(fields, expected) {
            guard field.name == want.name, case .integer(let bits, let align, false, _) = field.type, align == 8, bits == want.bits else {
                throw fail(field.token, "unsupported \(what) field \(field.name): expected \(layout)")
            }
            switch (field.length, want.count) {
            case (.none, nil): break
            case (.fixed(let count), let wanted?) where count == wanted: break
            default: throw fail(field.token, "unsupported \(what) field \(field.name): expected \(layout)")
            }
        }
    }

    /// The reader's field declarations; names lose one leading underscore, as babeltrace2 shows them.
    private func declarations(_ specs: [FieldSpec], of owner: String) throws(TraceError) -> [CTFFieldDeclaration] {
        var out: [CTFFieldDeclaration] = []
        var rawNames: [String] = []
        for spec in specs {
            let type: CTFFieldType
            func unsupported(_ why: String) -> TraceError { fail(spec.token, "\(owner): field \(spec.name): \(why) is not supported by this reader") }
            switch (spec.type, spec.length) {
            case (.integer(let bits, let align, let isSigned, false), .none):
                guard [8, 16, 32, 64].contains(bits) else { throw fail(spec.token, "\(owner): unsupported integer size \(bits)") }
                guard align == 8 else { throw fail(spec.token, "\(owner): integer fields must be byte-aligned (align = 8), \(spec.name) has align = \(align)") }
                type = isSigned ? .signed(bits: bits) : .unsigned(bits: bits)
            case (.integer(8, let align, _, true), .fixed(let count)):
                guard align == 8 else { throw unsupported("an array with align = \(align)") }
                type = .textArray(count: count)
            case (.integer(8, let align, _, let isText), .field(let lengthName)):
                guard align == 8 else { throw unsupported("a sequence with align = \(align)") }
                guard let index = rawNames.firstIndex(of: lengthName), case .unsigned = out[index].type else {
                    throw fail(spec.token, "\(owner): sequence \(spec.name) must be sized by an earlier field (an unsigned integer), not \(lengthName)")
                }
                type = isText ? .text(lengthField: index) : .bytes(lengthField: index)
            case (.float(let bits, let align), .none):
                guard align == 8 else { throw fail(spec.token, "\(owner): floating_point fields must be byte-aligned (align = 8)") }
                type = bits == 32 ? .float32 : .float64
            case (.enumeration(let bits, let isSigned, let labels), .none):
                guard [8, 16, 32, 64].contains(bits) else { throw fail(spec.token, "\(owner): unsupported integer size \(bits)") }
                type = bits == 8 && !isSigned && labels == [0: "false", 1: "true"]
                    ? .bool : .enumeration(bits: bits, isSigned: isSigned, labels: labels)
            case (.string, .none):
                type = .string
            case (.integer, .fixed):
                throw unsupported("an integer array")
            case (.integer, .field):
                throw unsupported("a sequence of integers wider than 8 bits")
            case (.integer(_, _, _, true), .none):
                throw unsupported("a text-encoded integer that is not an array")
            case (.structure, _), (.variant, _):
                throw unsupported("a nested struct or variant")
            default:
                throw unsupported("an array or sequence of this element type")
            }
            rawNames.append(spec.name)
            let shown = spec.name.hasPrefix("_") ? String(spec.name.dropFirst()) : spec.name
            out.append(CTFFieldDeclaration(name: shown, type: type))
        }
        return out
    }

    // Values: unsignedValue, signedValue and uuidValue come from TSDLValueParsing (TSDLLiteral.swift).
}
