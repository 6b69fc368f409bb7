/// The fixed part of every trace: the packet header, the packet context and the compact event
/// header, laid out as LTTng-UST lays them out.
///
/// One structure for the three users: `CTFMetadata` renders it as TSDL, `CTFTraceWriter` writes
/// packet headers in this order, and `CTFMetadataParser` checks a trace's declarations against it
/// (`CTFStreamDecoder` reads with its sizes), so the writer and the reader cannot drift apart.
enum CTFLayout {
    /// An unsigned, byte-aligned, little-endian field of a packet header or context: `bits` wide,
    /// or an array of `count` bytes; `isTimestamp` maps it to the trace's clock.
    struct Field: Equatable {
        let name: String
        let bits: Int
        let count: Int?
        let isTimestamp: Bool

        init(_ name: String, bits: Int, count: Int? = nil, isTimestamp: Bool = false) {
            self.name = name
            self.bits = bits
            self.count = count
            self.isTimestamp = isTimestamp
        }

        /// Bytes the field occupies.
        var byteCount: Int { (count ?? 1) * bits / 8 }

        /// The TSDL declaration, e.g. `uint8_t uuid[16];`.
        var declaration: String {
            let type = isTimestamp ? "uint\(bits)_clock_monotonic_t" : "uint\(bits)_t"
            return "\(type) \(name)\(count.map { "[\($0)]" } ?? "");"
        }
    }

    /// `trace.packet.header`.
    static let packetHeader: [Field] = [
        Field("magic", bits: 32),
        Field("uuid", bits: 8, count: 16),
        Field("stream_id", bits: 32),
        Field("stream_instance_id", bits: 64),
    ]

    /// `stream.packet.context` (LTTng-UST's, without its optional fields).
    static let packetContext: [Field] = [
        Field("timestamp_begin", bits: 64, isTimestamp: true),
        Field("timestamp_end", bits: 64, isTimestamp: true),
        Field("content_size", bits: 64),
        Field("packet_size", bits: 64),
        Field("packet_seq_num", bits: 64),
        Field("events_discarded", bits: 64),
        Field("cpu_id", bits: 32),
    ]

    /// Byte offset from the packet's start and size of each packet header and context field.
    static let positions: [String: (offset: Int, size: Int)] = {
        var out: [String: (offset: Int, size: Int)] = [:]
        var offset = 0
        for field in packetHeader + packetContext {
            out[field.name] = (offset, field.byteCount)
            offset += field.byteCount
        }
        return out
    }()

    /// Byte offset of field `name` (of `packetHeader` or `packetContext`) from the packet's start.
    static func offset(_ name: String) -> Int { positions[name]!.offset }

    static let packetHeaderSize = packetHeader.reduce(0) { $0 + $1.byteCount }
    static let packetContextSize = packetContext.reduce(0) { $0 + $1.byteCount }
    /// Bytes before a packet's first event.
    static let headerSize = packetHeaderSize + packetContextSize

    /// Event context after each event header: the writer's process and thread ids (`_vpid`,
    /// `_vtid`: LTTng-UST's context fields of those names, so babeltrace2 and Trace Compass show
    /// them as they show LTTng's), 32-bit signed little-endian each.
    static let eventContextSize = 8

    /// Compact event header: an id of `compactIDBits` and a timestamp of `compactTimestampBits` in
    /// one 32-bit word; id `extendedID` is followed by a 32-bit id and a 64-bit timestamp.
    static let compactIDBits = 5
    static let compactTimestampBits = 27
    static let extendedID: UInt32 = (1 << compactIDBits) - 1

    /// The type aliases, trace block (with `uuid`), and the packet context and event header
    /// structs; `environmentAndClock` is inserted after the trace block.
    static func preamble(uuid: String, environmentAndClock: String) -> String {
        var out = ""
        for bits in [8, 16, 32, 64] {
            out += "typealias integer { size = \(bits); align = 8; signed = false; } := uint\(bits)_t;\n"
        }
        out += "typealias integer { size = \(compactIDBits); align = 1; signed = false; } := uint\(compactIDBits)_t;\n\n"
        out += "trace {\n\tmajor = 1;\n\tminor = 8;\n\tuuid = \"\(uuid)\";\n\tbyte_order = le;\n"
        out += "\tpacket.header := struct {\n"
        for field in packetHeader { out += "\t\t\(field.declaration)\n" }
        out += "\t} align(8);\n};\n\n"
        out += environmentAndClock
        for bits in [compactTimestampBits, 64] {
            out += "typealias integer { size = \(bits); align = \(bits % 8 == 0 ? 8 : 1); signed = false; map = clock.monotonic.value; } := uint\(bits)_clock_monotonic_t;\n"
        }
        out += "\nstruct packet_context {\n"
        for field in packetContext { out += "\t\(field.declaration)\n" }
        out += "} align(8);\n\n"
        out += """
            struct event_header {
            \tenum : uint\(compactIDBits)_t { compact = 0 ... \(extendedID - 1), extended = \(extendedID) } id;
            \tvariant <id> {
            \t\tstruct { uint\(compactTimestampBits)_clock_monotonic_t timestamp; } compact;
            \t\tstruct { uint32_t id; uint64_clock_monotonic_t timestamp; } extended;
            \t} v;
            } align(8);

            stream {
            \tid = 0;
            \tevent.header := struct event_header;
            \tpacket.context := struct packet_context;
            \tevent.context := struct {
            \t\tinteger { size = 32; align = 8; signed = 1; encoding = none; base = 10; } _vpid;
            \t\tinteger { size = 32; align = 8; signed = 1; encoding = none; base = 10; } _vtid;
            \t};
            };


            """
        return out
    }
}
