import Testing
@testable import RseqTrace
@testable import RseqTraceFormats

/// The schema model (`FieldType.swift`) and what derives from it: decoding, the text rendering of
/// the LTTng-UST bridge's `rseqtrace:text` events, and the CTF metadata the writer renders and the
/// parser reads back.
@Suite("Schema model: decoding, text rendering, CTF metadata round trip")
struct SchemaModelTests {
    static let allTypes = InstrumentationTests.allTypes
    /// u=1 i=-1 f=1 d=1 b=true s="hi" raw=<09> e=pos(7), in the payload encoding.
    static let payload: [UInt8] = [1, 0, 0, 0, 0xFF, 0, 0, 0x80, 0x3F, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 1]
        + [2, 0, 0x68, 0x69] + [1, 0, 9] + [7, 0]

    @Test("decode yields one value per field, nil for a payload that does not match")
    func decode() {
        #expect(Self.allTypes.decode(Self.payload) == [
            .unsigned(1), .signed(-1), .float32(1), .float64(1), .bool(true), .string("hi"), .bytes([9]),
            .enumeration(label: "pos", value: 7, isSigned: true),
        ])
        #expect(Self.allTypes.decode(Self.payload + [0]) == nil)
        #expect(Self.allTypes.decode(Array(Self.payload.dropLast())) == nil)
    }

    @Test("text rendering: every field type, escapes, digits, unknown enumeration values")
    func renderText() {
        #expect(Self.allTypes.renderText(Self.payload) == #"u=1 i=-1 f=1 d=1 b=true s="hi" raw=<09> e=pos(7)"#)
        #expect(Self.allTypes.renderText(Self.payload + [0]) == nil)
        let schema = EventSchema(name: "t:r", fields: [
            EventField("s", .string(maxBytes: 16)), EventField("f", .float32), EventField("d", .float64),
            EventField("b", .bool), EventField("raw", .bytes(maxCount: 4)), EventField("big", .uint64),
            EventField("e", .enumeration(EnumerationType(bits: 64, isSigned: false, cases: [EnumerationCase("top", -1)]))),
            EventField("n", .enumeration(EnumerationType(bits: 8, isSigned: true, cases: [EnumerationCase("one", 1)]))),
        ])
        var payload: [UInt8] = [9, 0] + Array("a\"b\\c\n\u{7F}é".utf8)
        payload += [0xCD, 0xCC, 0xCC, 0x3D]                                   // 0.1 as binary32
        payload += [0x9A, 0x99, 0x99, 0x99, 0x99, 0x99, 0xB9, 0x3F]           // 0.1 as binary64
        payload += [0] + [3, 0, 0x00, 0x7F, 0xFF] + [UInt8](repeating: 0xFF, count: 8)
        payload += [UInt8](repeating: 0xFF, count: 8) + [0xFE]
        #expect(schema.renderText(payload) == #"s="a\"b\\c\x0a\x7fé" f=0.100000001 d=0.10000000000000001 b=false raw=<00 7f ff> big=18446744073709551615 e=top(18446744073709551615) n=(-2)"#)
    }

    @Test("text rendering is cut at the limit with '...'")
    func renderTextLimit() {
        let schema = EventSchema(name: "t:long", fields: (0..<3).map { EventField("s\($0)", .string(maxBytes: 2000)) })
        let text = [UInt8](repeating: 0x61, count: 2000)
        let payload: [UInt8] = (0..<3).flatMap { _ -> [UInt8] in [0xD0, 0x07] + text }
        let rendered = Array(schema.renderText(payload)!.utf8)
        #expect(rendered.count == EventSchema.textLimit)
        #expect(Array(rendered.suffix(3)) == Array("...".utf8) && Array(rendered.prefix(4)) == Array("s0=\"".utf8))
        let short = EventSchema(name: "t:short", fields: [EventField("s", .string(maxBytes: 4))])
        #expect(short.renderText([1, 0, 0x61]) == #"s="a""#)
    }

    @Test("registry entries: every field type encodes and decodes back; malformed entries say what is wrong")
    func registryEncoding() throws {
        let entry = EventRegistry.encode(id: 12, schema: Self.allTypes)
        #expect(entry.count % 8 == 0)
        let decoded = try EventRegistry.decode(entry).get()
        #expect(decoded.count == 1 && decoded[0].0 == 12 && decoded[0].1 == Self.allTypes)
        func problem(_ bytes: [UInt8]) -> String {
            switch EventRegistry.decode(bytes) {
            case .success: return "decoded"
            case .failure(let error): return error.message
            }
        }
        // The first field's type code (after the 8-byte header and the 5-byte name "t:all").
        var unknown = entry
        #expect(unknown[13] == 1)
        unknown[13] = 9
        #expect(problem(unknown).contains("unknown field type 9/32"))
        // Shorten the entry (its length word) so that the enumeration's cases run past it.
        let enumeration = EventRegistry.encode(id: 3, schema: EventSchema(name: "t:e", fields: [
            EventField("e", .enumeration(EnumerationType(bits: 8, isSigned: false, cases: [EnumerationCase("long_case_name", 1)]))),
        ]))
        var short = Array(enumeration.prefix(16))
        short[0] = 16
        #expect(problem(short) == "event registry entry at offset 0: enumeration e runs past the entry")
    }

    @Test("a Bool is declared as a one-byte enumeration false = 0, true = 1; only exactly that shape reads back as a Bool")
    func boolDeclaration() throws {
        #expect(FieldType.bool.tsdlDeclarations(name: "flag", escape: { $0 })
                == [#"enum : integer { size = 8; align = 8; signed = false; } { "false" = 0, "true" = 1 } _flag;"#])
        let clock = CycleClock(frequency: 1_000_000_000, cycleReference: 0, monotonicReference: 5_000_000_000,
                               realtimeReference: 1_700_000_000_123_456_789)
        let falseTrue = [EnumerationCase("false", 0), EnumerationCase("true", 1)]
        let schema = EventSchema(name: "t:bools", fields: [
            EventField("b", .bool),
            EventField("wide", .enumeration(EnumerationType(bits: 16, isSigned: false, cases: falseTrue))),
            EventField("signed", .enumeration(EnumerationType(bits: 8, isSigned: true, cases: falseTrue))),
            EventField("more", .enumeration(EnumerationType(bits: 8, isSigned: false, cases: falseTrue + [EnumerationCase("maybe", 2)]))),
        ])
        let description = CTFTraceDescription(
            uuid: Array(0..<16), clock: clock, bootID: Array(repeating: 0xAB, count: 16), hostname: "h",
            traceName: "t", procname: "p", pid: 77, cpuRingCount: 1, schemas: [3: schema])
        let text = CTFMetadata.text(description, unknownIDs: [], malformedSeen: false)
        let metadata = try CTFMetadataParser.parse(Array(text.utf8), path: "memory")
        #expect(metadata.events[3]?.fields.map(\.type) == [
            .bool,
            .enumeration(bits: 16, isSigned: false, labels: [0: "false", 1: "true"]),
            .enumeration(bits: 8, isSigned: true, labels: [0: "false", 1: "true"]),
            .enumeration(bits: 8, isSigned: false, labels: [0: "false", 1: "true", 2: "maybe"]),
        ])
    }

    @Test("the metadata the writer renders parses back to the same uuid, clock, env and declarations")
    func metadataRoundTrip() throws {
        let clock = CycleClock(frequency: 1_000_000_000, cycleReference: 0, monotonicReference: 5_000_000_000,
                               realtimeReference: 1_700_000_000_123_456_789)
        let description = CTFTraceDescription(
            uuid: Array(0..<16), clock: clock, bootID: Array(repeating: 0xAB, count: 16), hostname: "host \"q\"",
            traceName: "t", procname: "p", pid: 77, cpuRingCount: 2, schemas: [5: Self.allTypes])
        let text = CTFMetadata.text(description, unknownIDs: [9], malformedSeen: true)
        let metadata = try CTFMetadataParser.parse(Array(text.utf8), path: "memory")
        #expect(metadata.uuid == Array(0..<16))
        #expect(metadata.clock.uuid == Array(repeating: 0xAB, count: 16))
        #expect(metadata.clock.offsetNanoseconds == 1_700_000_000_123_456_789 - 5_000_000_000)
        #expect(metadata.environmentValue("hostname") == .string("host \"q\""))
        #expect(metadata.environmentValue("vpid") == .integer(77))
        #expect(metadata.streams.count == 1 && metadata.streams[0]?.eventHeader == .compact)
        #expect(metadata.events[5] == CTFEventDeclaration(id: 5, name: "t:all", fields: [
            CTFFieldDeclaration(name: "u", type: .unsigned(bits: 32)),
            CTFFieldDeclaration(name: "i", type: .signed(bits: 8)),
            CTFFieldDeclaration(name: "f", type: .float32),
            CTFFieldDeclaration(name: "d", type: .float64),
            CTFFieldDeclaration(name: "b", type: .bool),
            CTFFieldDeclaration(name: "s", type: .string),
            CTFFieldDeclaration(name: "_raw_length", type: .unsigned(bits: 16)),
            CTFFieldDeclaration(name: "raw", type: .bytes(lengthField: 6)),
            CTFFieldDeclaration(name: "e", type: .enumeration(bits: 16, isSigned: true, labels: [-2: "neg", 7: "pos"])),
        ]))
        #expect(metadata.events[9] == CTFEventDeclaration(id: 9, name: "rseqtrace:unknown_9", fields: [
            CTFFieldDeclaration(name: "length", type: .unsigned(bits: 32)),
            CTFFieldDeclaration(name: "payload", type: .bytes(lengthField: 0)),
        ]))
        #expect(metadata.events[UInt32(CTFMetadata.malformedEventID)]?.name == CTFMetadata.malformedEventName)
        #expect(metadata.events.count == 3)
    }

    @Test("the packet layout the writer renders is the one the parser requires")
    func layout() throws {
        #expect(CTFLayout.packetHeaderSize == 32 && CTFLayout.headerSize == 84)
        let text = CTFMetadata.text(CTFTraceDescription(
            uuid: Array(repeating: 1, count: 16), clock: CycleClock(frequency: 1_000_000_000, cycleReference: 0, monotonicReference: 0,
                                                                     realtimeReference: 0),
            bootID: Array(repeating: 2, count: 16), hostname: "h", traceName: "t", procname: "p", pid: 1, cpuRingCount: 1,
            schemas: [:]), unknownIDs: [])
        _ = try CTFMetadataParser.parse(Array(text.utf8), path: "memory")
        // A packet context field the layout does not have is refused.
        let altered = text.replacingOccurrences("uint32_t cpu_id;", "uint16_t cpu_id;")
        #expect(altered != text)
        #expect(throws: TraceError.self) { try CTFMetadataParser.parse(Array(altered.utf8), path: "memory") }
    }
}

private extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
