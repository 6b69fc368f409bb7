import RseqTrace

/// What the CTF metadata of a trace says about it.
public struct CTFTraceDescription: Sendable {
    /// Random per trace; every packet header repeats it.
    public var uuid: [UInt8]
    /// Clock conversion of the source buffer (cycle counter → CLOCK_MONOTONIC / CLOCK_REALTIME).
    public var clock: CycleClock
    /// Boot id: the clock UUID, so traces of the same boot (LTTng's too) correlate.
    public var bootID: [UInt8]
    /// Host name, in the `env` block.
    public var hostname: String
    /// Trace name, in the `env` block.
    public var traceName: String
    /// Name of the traced process, in the `env` block.
    public var procname: String
    /// Process id of the traced process, in the `env` block.
    public var pid: Int32
    /// Per-CPU rings; the slow lane is written as one more stream with cpu_id = cpuRingCount.
    public var cpuRingCount: Int
    /// Event schemas by id. Ids without a schema are written as `rseqtrace:unknown_<id>` events
    /// carrying their raw payload as a byte sequence.
    public var schemas: [UInt16: EventSchema]
    /// Names of the threads that wrote events, by thread id (`vtid`), in the `env` block as
    /// `thread_name_<tid>` (what the consumer read in `/proc/<pid>/task/<tid>/comm`).
    package var threadNames: [Int32: String] = [:]

    /// A description of a trace to write; pass it to `CTFTraceWriter.init(directory:description:packetCapacity:)`.
    public init(uuid: [UInt8], clock: CycleClock, bootID: [UInt8], hostname: String, traceName: String,
                procname: String, pid: Int32, cpuRingCount: Int, schemas: [UInt16: EventSchema]) {
        self.uuid = uuid
        self.clock = clock
        self.bootID = bootID
        self.hostname = hostname
        self.traceName = traceName
        self.procname = procname
        self.pid = pid
        self.cpuRingCount = cpuRingCount
        self.schemas = schemas
    }
}

/// Generates the TSDL (CTF 1.8) metadata text.
///
/// Event header, as LTTng-UST's compact header: a 5-bit id and a 27-bit timestamp in one 32-bit
/// word (ids 0...30, less than 2^27 ns since the stream's previous timestamp), or id 31 followed by
/// a 32-bit id and a 64-bit timestamp. Fields are byte-aligned little-endian, so record payloads
/// are copied verbatim.
package enum CTFMetadata {
    package static let packetMagic: UInt32 = 0xC1FC_1FC1
    /// First line of every metadata file.
    package static let signature = "/* CTF 1.8 */"
    package static let extendedID: UInt32 = CTFLayout.extendedID

    /// Records whose payload does not match their event's schema are written as this event (id 0,
    /// which the registry never assigns), keeping the original id and bytes.
    package static let malformedEventName = "rseqtrace:malformed_payload"
    package static let malformedEventID: UInt16 = 0
    /// Prefix of the `env` entries naming threads (`thread_name_<tid> = "name";`).
    package static let threadNamePrefix = "thread_name_"

    package static func text(_ d: CTFTraceDescription, unknownIDs: Set<UInt16>, malformedSeen: Bool = false) -> String {
        let offsetNs = Int64(bitPattern: d.clock.realtimeReference) - Int64(bitPattern: d.clock.monotonicReference)
        let offsetSeconds = offsetNs >= 0 ? offsetNs / 1_000_000_000 : (offsetNs - 999_999_999) / 1_000_000_000
        let offsetRemainder = offsetNs - offsetSeconds * 1_000_000_000
        let environmentAndClock = """
            env {
            \tdomain = "ust";
            \ttracer_name = "rseqtrace";
            \ttracer_major = 0;
            \ttracer_minor = 1;
            \ttracer_buffering_scheme = "pid";
            \ttracer_buffering_id = \(d.pid);
            \tarchitecture_bit_width = \(Int.bitWidth);
            \ttrace_name = "\(escape(d.traceName))";
            \ttrace_creation_datetime = "\(lttngDatetime(nanoseconds: d.clock.realtimeReference))";
            \thostname = "\(escape(d.hostname))";
            \tvpid = \(d.pid);
            \tprocname = "\(escape(d.procname))";
            \tvpid_datetime = "\(lttngDatetime(nanoseconds: d.clock.realtimeReference))";
            \tcycle_counter = "\(CycleClock.sourceName)";
            \tcycle_counter_frequency = \(d.clock.frequency);
            \(d.threadNames.keys.sorted().map { "\t\(threadNamePrefix)\($0) = \"\(escape(d.threadNames[$0]!))\";\n" }.joined())};

            clock {
            \tname = "monotonic";
            \tuuid = "\(uuidString(d.bootID))";
            \tdescription = "Monotonic Clock";
            \tfreq = 1000000000;
            \tprecision = 1;
            \toffset_s = \(offsetSeconds);
            \toffset = \(offsetRemainder);
            \tabsolute = TRUE;
            };


            """
        var out = signature + "\n\n" + CTFLayout.preamble(uuid: uuidString(d.uuid), environmentAndClock: environmentAndClock)
        for id in d.schemas.keys.sorted() {
            let schema = d.schemas[id]!
            out += "event {\n\tname = \"\(escape(schema.name))\";\n\tid = \(id);\n\tstream_id = 0;\n\tfields := struct {\n"
            for field in schema.fields {
                for line in field.type.tsdlDeclarations(name: field.name, escape: escape) { out += "\t\t\(line)\n" }
            }
            out += "\t};\n};\n\n"
        }
        if malformedSeen {
            out += """
                event {
                \tname = "\(malformedEventName)";
                \tid = \(malformedEventID);
                \tstream_id = 0;
                \tfields := struct {
                \t\tuint16_t _event_id;
                \t\tuint32_t _length;
                \t\tuint8_t _payload[_length];
                \t};
                };


                """
        }
        for id in unknownIDs.sorted() where d.schemas[id] == nil {
            out += """
                event {
                \tname = "rseqtrace:unknown_\(id)";
                \tid = \(id);
                \tstream_id = 0;
                \tfields := struct {
                \t\tuint32_t _length;
                \t\tuint8_t _payload[_length];
                \t};
                };


                """
        }
        return out
    }

    package static func uuidString(_ bytes: [UInt8]) -> String {
        let hex = bytes.prefix(16).map { b -> String in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined()
        guard hex.count == 32 else { return "00000000-0000-0000-0000-000000000000" }
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-"
            + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where c.value < 0x20 || c.value > 0x7E: out += "_"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// "20261122T032521+0000" (what LTTng writes in `trace_creation_datetime`), from nanoseconds
    /// since the epoch, UTC.
    static func lttngDatetime(nanoseconds: UInt64) -> String {
        iso8601(nanoseconds: nanoseconds).filter { $0 != "-" && $0 != ":" }.replacingLast("Z", with: "+0000")
    }

    /// "2026-11-22T03:25:21Z" from nanoseconds since the epoch (UTC).
    static func iso8601(nanoseconds: UInt64) -> String {
        let seconds = Int64(nanoseconds / 1_000_000_000)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = CivilDate.date(daysSinceEpoch: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60))Z"
    }
}

private extension String {
    func replacingLast(_ suffix: Character, with replacement: String) -> String {
        last == suffix ? String(dropLast()) + replacement : self
    }
}
