import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats

/// `CTFTraceReader` on traces laid out and described as LTTng-UST 2.13 writes them (packetized
/// metadata, `ust/uid/<uid>/64-bit/`, large event headers, an event context, `string`, text
/// sequences and arrays), built here byte by byte so that no LTTng installation is needed.
/// Tools/check-lttng reads real LTTng-UST traces.
@Suite("LTTng-UST traces: reader")
struct LTTngReaderTests {
    static let uuid: [UInt8] = [0x70, 0x5B, 0xC8, 0x48, 0xA0, 0x5A, 0x44, 0xF0, 0x84, 0xF8, 0xF4, 0x3E, 0x6A, 0xBF, 0xC6, 0x7E]
    static let offset: Int64 = 1_795_316_274_543_957_083

    /// TSDL as lttng-sessiond 2.13 writes it; `fieldsOverride` replaces the event's fields.
    static func metadata(fields: String? = nil) -> String {
        let eventFields = fields ?? """
            \t\tinteger { size = 32; align = 8; signed = 1; encoding = none; base = 10; } _seq;
            \t\tstring { encoding = UTF8; } _text;
            \t\tinteger { size = 16; align = 8; signed = 0; encoding = none; base = 10; } __path_length;
            \t\tinteger { size = 8; align = 8; signed = 0; encoding = UTF8; base = 10; } _path[ __path_length ];
            \t\tenum : integer { size = 8; align = 8; signed = 0; encoding = none; base = 10; } {
            \t\t\t"red" = 0,
            \t\t\t"green" = 1,
            \t\t} _color;
            """
        return """
            /* CTF 1.8 */

            typealias integer { size = 8; align = 8; signed = false; } := uint8_t;
            typealias integer { size = 16; align = 8; signed = false; } := uint16_t;
            typealias integer { size = 32; align = 8; signed = false; } := uint32_t;
            typealias integer { size = 64; align = 8; signed = false; } := uint64_t;
            typealias integer { size = 64; align = 8; signed = false; } := unsigned long;
            typealias integer { size = 5; align = 1; signed = false; } := uint5_t;
            typealias integer { size = 27; align = 1; signed = false; } := uint27_t;

            trace {
            \tmajor = 1;
            \tminor = 8;
            \tuuid = "705bc848-a05a-44f0-84f8-f43e6abfc67e";
            \tbyte_order = le;
            \tpacket.header := struct {
            \t\tuint32_t magic;
            \t\tuint8_t  uuid[16];
            \t\tuint32_t stream_id;
            \t\tuint64_t stream_instance_id;
            \t};
            };

            env {
            \tdomain = "ust";
            \ttracer_name = "lttng-ust";
            \ttracer_major = 2;
            \ttracer_minor = 13;
            \ttracer_buffering_scheme = "uid";
            \ttracer_buffering_id = 0;
            \tarchitecture_bit_width = 64;
            \ttrace_name = "t";
            \ttrace_creation_datetime = "20261122T051448+0000";
            \thostname = "vm";
            };

            clock {
            \tname = "monotonic";
            \tuuid = "3695137c-2d37-4696-b005-6c7b1478a227";
            \tdescription = "Monotonic Clock";
            \tfreq = 1000000000; /* Frequency, in Hz */
            \t/* clock value offset from Epoch is: offset * (1/freq) */
            \toffset = \(offset);
            };

            typealias integer {
            \tsize = 27; align = 1; signed = false;
            \tmap = clock.monotonic.value;
            } := uint27_clock_monotonic_t;

            typealias integer {
            \tsize = 32; align = 8; signed = false;
            \tmap = clock.monotonic.value;
            } := uint32_clock_monotonic_t;

            typealias integer {
            \tsize = 64; align = 8; signed = false;
            \tmap = clock.monotonic.value;
            } := uint64_clock_monotonic_t;

            struct packet_context {
            \tuint64_clock_monotonic_t timestamp_begin;
            \tuint64_clock_monotonic_t timestamp_end;
            \tuint64_t content_size;
            \tuint64_t packet_size;
            \tuint64_t packet_seq_num;
            \tunsigned long events_discarded;
            \tuint32_t cpu_id;
            };

            struct event_header_compact {
            \tenum : uint5_t { compact = 0 ... 30, extended = 31 } id;
            \tvariant <id> {
            \t\tstruct {
            \t\t\tuint27_clock_monotonic_t timestamp;
            \t\t} compact;
            \t\tstruct {
            \t\t\tuint32_t id;
            \t\t\tuint64_clock_monotonic_t timestamp;
            \t\t} extended;
            \t} v;
            } align(8);

            struct event_header_large {
            \tenum : uint16_t { compact = 0 ... 65534, extended = 65535 } id;
            \tvariant <id> {
            \t\tstruct {
            \t\t\tuint32_clock_monotonic_t timestamp;
            \t\t} compact;
            \t\tstruct {
            \t\t\tuint32_t id;
            \t\t\tuint64_clock_monotonic_t timestamp;
            \t\t} extended;
            \t} v;
            } align(8);

            stream {
            \tid = 0;
            \tevent.header := struct event_header_large;
            \tpacket.context := struct packet_context;
            \tevent.context := struct {
            \t\tinteger { size = 32; align = 8; signed = 1; encoding = none; base = 10; } _vpid;
            \t\tinteger { size = 8; align = 8; signed = 1; encoding = UTF8; base = 10; } _procname[17];
            \t};
            };

            event {
            \tname = "lttng_check:ping";
            \tid = 0;
            \tstream_id = 0;
            \tloglevel = 13;
            \tfields := struct {
            \(eventFields)
            \t};
            };


            """
    }

    /// The metadata in one packet, as LTTng writes its `metadata` file.
    static func packetized(_ text: String) -> [UInt8] {
        let body = Array(text.utf8)
        var out: [UInt8] = []
        out.le(0x75D1_1D57, 4)
        out += uuid
        out.le(0, 4)                                   // checksum
        out.le(UInt64(37 + body.count) * 8, 4)         // content_size (bits)
        out.le(UInt64(37 + body.count + 3) * 8, 4)     // packet_size (bits), with padding
        out += [0, 0, 0, 1, 8]                         // compression, encryption, checksum scheme, major, minor
        return out + body + [0, 0, 0]
    }

    /// Event context (vpid 42, procname) + payload (seq, text, path, color).
    static func eventBody(seq: Int32, text: String, path: String, color: UInt8) -> [UInt8] {
        var out: [UInt8] = []
        out.le(42, 4)
        var procname = Array("swift-test".utf8)
        procname += [UInt8](repeating: 0, count: 17 - procname.count)
        out += procname
        out.le(UInt64(UInt32(bitPattern: seq)), 4)
        out += Array(text.utf8) + [0]
        out.le(UInt64(path.utf8.count), 2)
        out += Array(path.utf8)
        out.append(color)
        return out
    }

    /// One packet of stream 0 on CPU 1: a large-header event with a 32-bit timestamp, then an
    /// extended one (64-bit timestamp), padded to 4096 bytes.
    static func stream() -> [UInt8] {
        var events: [UInt8] = []
        events.le(0, 2)                       // id 0, compact: 32-bit timestamp follows
        events.le(1500, 4)
        events += eventBody(seq: 7, text: "hi", path: "/x", color: 1)
        events.le(65535, 2)                   // extended: 32-bit id, 64-bit timestamp
        events.le(0, 4)
        events.le(5_000_000_000, 8)
        events += eventBody(seq: -1, text: "", path: "", color: 0)
        var out: [UInt8] = []
        out.le(0xC1FC_1FC1, 4)
        out += uuid
        out.le(0, 4)                          // stream_id
        out.le(1, 8)                          // stream_instance_id
        out.le(1000, 8)                       // timestamp_begin
        out.le(5_000_000_100, 8)              // timestamp_end
        out.le(UInt64(84 + events.count) * 8, 8)
        out.le(4096 * 8, 8)
        out.le(0, 8)                          // packet_seq_num
        out.le(0, 8)                          // events_discarded
        out.le(1, 4)                          // cpu_id
        out += events
        return out + [UInt8](repeating: 0, count: 4096 - out.count)
    }

    /// Writes `session/ust/uid/0/64-bit/{metadata, channel0_1, index/}` and returns `session`.
    static func writeSession(_ tag: String, metadata: [UInt8]) -> String {
        let session = "/tmp/rseqtrace-lttngreader-\(getpid())-\(tag)"
        for dir in ["", "/ust", "/ust/uid", "/ust/uid/0", "/ust/uid/0/64-bit", "/ust/uid/0/64-bit/index"] {
            // SAFETY: the path string is passed as a temporary NUL-terminated C string.
            _ = unsafe mkdir(session + dir, 0o755)
        }
        let trace = session + "/ust/uid/0/64-bit"
        write(trace + "/metadata", metadata)
        write(trace + "/channel0_1", stream())
        write(trace + "/index/channel0_1.idx", CTFReaderHostileFilesTests.index(of: stream()))
        return session
    }

    static func removeSession(_ session: String) {
        let trace = session + "/ust/uid/0/64-bit"
        for file in ["/index/channel0_1.idx", "/metadata", "/channel0_1"] {
            // SAFETY: the path string is passed as a temporary NUL-terminated C string.
            _ = unsafe unlink(trace + file)
        }
        for dir in ["/ust/uid/0/64-bit/index", "/ust/uid/0/64-bit", "/ust/uid/0", "/ust/uid", "/ust", ""] {
            // SAFETY: as above.
            _ = unsafe rmdir(session + dir)
        }
    }

    static func write(_ path: String, _ bytes: [UInt8]) {
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        let fd = unsafe open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        // SAFETY: the array's bytes are valid for the call.
        let written = unsafe bytes.withUnsafeBytes { unsafe Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(written == bytes.count, "cannot write \(path)")
    }

    @Test("reads an LTTng-UST session directory: packetized metadata, large headers, context, strings")
    func readsLTTngTrace() throws {
        let session = LTTngReaderTests.writeSession("ok", metadata: LTTngReaderTests.packetized(LTTngReaderTests.metadata()))
        defer { LTTngReaderTests.removeSession(session) }
        let reader = try CTFTraceReader(directory: session)
        #expect(reader.directory == session + "/ust/uid/0/64-bit")
        #expect(reader.streamNames == ["channel0_1"])
        #expect(reader.metadata.environmentValue("tracer_name") == .string("lttng-ust"))
        #expect(reader.metadata.streams[0]?.eventHeader == .large)
        let events = try reader.readAll().compactMap { record -> CTFEvent? in
            if case .event(let event) = record { return event }
            return nil
        }
        try #require(events.count == 2)
        let first = events[0], second = events[1]
        #expect(first.name == "lttng_check:ping" && first.cpuID == 1 && first.timestamp == 1500)
        #expect(first.realtime == LTTngReaderTests.offset + 1500)
        #expect(first.context == [CTFFieldValue(name: "vpid", value: .signed(42)),
                                  CTFFieldValue(name: "procname", value: .string("swift-test"))])
        #expect(first.fields == [
            CTFFieldValue(name: "seq", value: .signed(7)), CTFFieldValue(name: "text", value: .string("hi")),
            CTFFieldValue(name: "_path_length", value: .unsigned(2)), CTFFieldValue(name: "path", value: .string("/x")),
            CTFFieldValue(name: "color", value: .enumeration(label: "green", value: 1, isSigned: false)),
        ])
        #expect(second.timestamp == 5_000_000_000)
        #expect(second[field: "seq"] == .signed(-1) && second[field: "text"] == .string(""))
        #expect(second[field: "color"] == .enumeration(label: "red", value: 0, isSigned: false))
    }

    @Test("plain-text LTTng metadata and a trace directory given directly read the same")
    func plainMetadata() throws {
        let session = LTTngReaderTests.writeSession("plain", metadata: Array(LTTngReaderTests.metadata().utf8))
        defer { LTTngReaderTests.removeSession(session) }
        let reader = try CTFTraceReader(directory: session + "/ust/uid/0/64-bit")
        #expect(try reader.readAll().count == 2)
    }

    @Test("what the reader does not support is refused, naming the field and the reason")
    func unsupported() throws {
        let cases: [(String, String)] = [
            ("\t\tinteger { size = 32; align = 8; signed = 1; encoding = none; base = 10; } _values[4];", "field _values: an integer array is not supported"),
            ("\t\tinteger { size = 32; align = 32; signed = 1; encoding = none; base = 10; } _seq;", "integer fields must be byte-aligned (align = 8), _seq has align = 32"),
            ("\t\tstruct { uint32_t a; } _nested;", "field _nested: a nested struct or variant is not supported"),
            ("\t\tinteger { size = 32; align = 8; signed = 1; byte_order = be; } _seq;", "byte_order be is not supported"),
        ]
        for (index, (fields, phrase)) in cases.enumerated() {
            let session = LTTngReaderTests.writeSession("bad\(index)",
                                                        metadata: LTTngReaderTests.packetized(LTTngReaderTests.metadata(fields: fields)))
            defer { LTTngReaderTests.removeSession(session) }
            do {
                _ = try CTFTraceReader(directory: session)
                Issue.record("\(phrase): the metadata was accepted")
            } catch {
                #expect(error.code == .corrupted, "\(error)")
                #expect(error.message.contains("/ust/uid/0/64-bit/metadata: byte offset"), "\(error)")
                #expect(error.message.contains(phrase), "expected '\(phrase)' in: \(error)")
            }
        }
    }
}

private extension Array where Element == UInt8 {
    /// Appends `value` little-endian in `size` bytes.
    mutating func le(_ value: UInt64, _ size: Int) {
        for i in 0..<size { append(UInt8(truncatingIfNeeded: value >> UInt64(8 * i))) }
    }
}
