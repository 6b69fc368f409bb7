#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import SystemPackage

/// Writes a CTF 1.8 trace directory: a text `metadata` file and one stream file per ring
/// (`channel0_<ring>`, the slow lane last), readable by babeltrace2 and Trace Compass.
///
/// Feed it records in ring order (as a `TraceDrainer` delivers them), report each ring's
/// cumulative loss with `noteLost(ring:total:)`, then call `finish()`. Packets close when they
/// reach `packetCapacity` bytes or when a ring's loss count changes, so that babeltrace2 reports
/// discarded events near where they happened and its totals equal ours.
public final class CTFTraceWriter {
    public let directory: String
    public private(set) var description: CTFTraceDescription
    public let packetCapacity: Int

    /// What was written.
    public struct Summary: Sendable {
        public var events: UInt64
        public var discarded: UInt64
        public var packets: UInt64
        public var streamBytes: UInt64
        public var metadataBytes: UInt64
        /// Stream bytes (packet headers included) per event.
        public var bytesPerEvent: Double { events == 0 ? 0 : Double(streamBytes) / Double(events) }
    }

    private var streams: [CTFStream]
    private var unknownIDs = Set<UInt16>()
    private var malformedSeen = false
    private var finished = false

    /// Creates `directory` (which must not exist yet, or be an empty directory).
    public init(directory: String, description: CTFTraceDescription, packetCapacity: Int = 256 << 10) throws(TraceError) {
        self.directory = directory
        self.description = description
        self.packetCapacity = max(4096, packetCapacity)
        try CTFTraceWriter.prepareDirectory(directory)
        var streams: [CTFStream] = []
        for ring in 0...description.cpuRingCount {
            let path = directory + "/channel0_\(ring)"
            do {
                let fd = try FileDescriptor.open(FilePath(path), .writeOnly,
                                                 options: [.create, .truncate, .closeOnExec],
                                                 permissions: [.ownerReadWrite, .groupRead, .otherRead])
                streams.append(CTFStream(fd: fd, path: path, cpu: UInt32(ring)))
            } catch {
                for s in streams { try? s.fd.close() }
                throw TraceError(.systemCallFailed, "cannot create \(path): \(error)")
            }
        }
        self.streams = streams
    }

    deinit {
        for s in streams { try? s.fd.close() }
    }

    /// Creates `path` as the output directory, or accepts it if it exists and is empty: a trace is
    /// never mixed with or written over other files. With `replacingPreviousTrace`, a directory
    /// holding only a trace rseqtrace wrote (its `metadata` and `channel0_<n>` files) is emptied
    /// first — anything else in it is refused. Call early to fail before doing any work.
    public static func prepareDirectory(_ path: String, replacingPreviousTrace: Bool = false) throws(TraceError) {
        // SAFETY: mkdir takes the path by value.
        if unsafe mkdir(path, 0o755) != 0 {
            let errno = Errno(rawValue: Glibc.errno)
            guard errno == .fileExists else {
                throw TraceError(.systemCallFailed, "cannot create output directory \(path)", errno: errno)
            }
            // Accept an existing empty directory only: never mix or overwrite traces.
            guard let entries = SystemInfo.directoryEntries(path) else {
                throw TraceError(.alreadyExists, "\(path) exists and is not a directory: choose another output directory")
            }
            guard !entries.isEmpty else { return }
            let isOurTrace = entries.allSatisfy { $0 == "metadata" || ($0.hasPrefix("channel0_") && Int($0.dropFirst(9)) != nil) }
                && (SystemInfo.readSmallFile(path + "/metadata")).map {
                    $0.hasPrefix(CTFMetadata.signature) && $0.contains("tracer_name = \"rseqtrace\";")
                } == true
            guard replacingPreviousTrace && isOurTrace else {
                throw TraceError(.alreadyExists, "output directory \(path) is not empty: choose another output directory or remove it")
            }
            for entry in entries {
                // SAFETY: unlink takes the path by value; only the trace files listed above.
                if unsafe unlink(path + "/" + entry) != 0 {
                    throw TraceError(.systemCallFailed, "cannot replace the previous trace in \(path)",
                                     errno: Errno(rawValue: Glibc.errno))
                }
            }
        }
    }

    /// Adds schemas registered since the writer was created. Ids already known keep their schema,
    /// and an id already written without a schema (as `rseqtrace:unknown_<id>`) stays so: its
    /// events in the streams are encoded that way.
    public func updateSchemas(_ schemas: [UInt16: EventSchema]) {
        description.schemas.merge(schemas.filter { !unknownIDs.contains($0.key) }) { current, _ in current }
    }

    /// Whether events of `id` are written with a schema (or were already written without one).
    public func hasDecided(_ id: UInt16) -> Bool {
        description.schemas[id] != nil || unknownIDs.contains(id)
    }

    /// Appends one event to its ring's stream. `cycles` is the record's cycle-counter timestamp.
    public func append(ring: Int, eventID: UInt16, cycles: UInt64, payload: [UInt8]) throws(TraceError) {
        precondition(!finished, "append after finish")
        let stream = streams[ring]
        let timestamp = description.clock.monotonicNanoseconds(cycles)
        if stream.events.isEmpty { stream.begin = max(timestamp, stream.end) }
        let schema = description.schemas[eventID]
        if schema == nil { unknownIDs.insert(eventID) }
        // A payload that does not match its schema would make the whole stream unreadable: keep
        // it, with its id, as a malformed-payload event instead.
        let malformed = schema.map { !$0.matches(payload) } ?? false
        if malformed { malformedSeen = true }
        let writtenID = malformed ? CTFMetadata.malformedEventID : eventID
        let previous = stream.events.isEmpty ? stream.begin : stream.last
        let stamp = max(timestamp, previous)   // a stream's clock never goes back
        if UInt32(writtenID) < CTFMetadata.extendedID && stamp - previous < (1 << 27) {
            stream.events.appendLittleEndian(UInt32(writtenID) | UInt32(truncatingIfNeeded: stamp & 0x7FF_FFFF) << 5)
        } else {
            stream.events.append(UInt8(CTFMetadata.extendedID))
            stream.events.appendLittleEndian(UInt32(writtenID))
            stream.events.appendLittleEndian(stamp)
        }
        if malformed { stream.events.appendLittleEndian(eventID) }
        if schema == nil || malformed { stream.events.appendLittleEndian(UInt32(payload.count)) }
        if let schema, !malformed, schema.hasStringField {
            Self.appendConvertingText(payload, schema: schema, to: &stream.events)
        } else {
            stream.events.append(contentsOf: payload)
        }
        stream.last = stamp
        stream.eventCount += 1
        if stream.events.count >= packetCapacity { try flush(ring) }
    }

    /// Copies a payload (which matches `schema`), writing each counted text field as CTF wants it:
    /// its bytes up to the first NUL, then a NUL.
    static func appendConvertingText(_ payload: [UInt8], schema: EventSchema, to out: inout [UInt8]) {
        var offset = 0
        for field in schema.fields {
            if let size = field.type.fixedByteCount {
                out.append(contentsOf: payload[offset..<(offset + size)])
                offset += size
                continue
            }
            let count = Int(payload[offset]) | Int(payload[offset + 1]) << 8
            let content = payload[(offset + 2)..<(offset + 2 + count)]
            if case .string = field.type {
                out.append(contentsOf: content.prefix { $0 != 0 })
                out.append(0)
            } else {
                out.append(contentsOf: payload[offset..<(offset + 2 + count)])
            }
            offset += 2 + count
        }
    }

    /// Records that `total` events were lost so far on `ring` (a cumulative, never decreasing
    /// count). Closes the current packet first if the count changed, so that the loss is reported
    /// after the events that preceded it.
    public func noteLost(ring: Int, total: UInt64) throws(TraceError) {
        let stream = streams[ring]
        guard total != stream.lostReported && total != stream.lostPending else { return }
        if !stream.events.isEmpty { try flush(ring) }
        stream.lostPending = max(stream.lostPending, total)
    }

    /// Writes the remaining packets and the metadata file.
    @discardableResult
    public func finish() throws(TraceError) -> Summary {
        precondition(!finished, "finish called twice")
        for ring in streams.indices {
            let stream = streams[ring]
            if !stream.events.isEmpty || stream.lostPending != stream.lostReported { try flush(ring) }
        }
        finished = true
        let metadata = Array(CTFMetadata.text(description, unknownIDs: unknownIDs, malformedSeen: malformedSeen).utf8)
        let path = directory + "/metadata"
        do {
            let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: [.ownerReadWrite, .groupRead, .otherRead])
            defer { try? fd.close() }
            _ = try unsafe metadata.withUnsafeBytes { try unsafe fd.writeAll($0) }  // SAFETY: the array's own bytes
        } catch {
            throw TraceError(.systemCallFailed, "cannot write \(path): \(error)")
        }
        var summary = Summary(events: 0, discarded: 0, packets: 0, streamBytes: 0, metadataBytes: UInt64(metadata.count))
        for s in streams {
            summary.events += s.eventCount
            summary.discarded += s.lostReported
            summary.packets += s.sequence
            summary.streamBytes += s.bytesWritten
        }
        return summary
    }

    // MARK: - Packets

    private static let headerSize = 4 + 16 + 4 + 8 + 8 * 6 + 4

    private func flush(_ ring: Int) throws(TraceError) {
        let stream = streams[ring]
        let begin = stream.events.isEmpty ? max(stream.end, stream.begin, description.clock.monotonicReference) : stream.begin
        let end = stream.events.isEmpty ? begin : stream.last
        if stream.sequence == 0 && stream.lostPending > 0 {
            // A reader cannot know where a stream's discarded-events counter started, so it only
            // reports a count between two packets: open every stream with a packet saying 0.
            try writePacket(stream, ring: ring, events: [], begin: begin, end: begin, discarded: 0)
        }
        try writePacket(stream, ring: ring, events: stream.events, begin: begin, end: end, discarded: stream.lostPending)
        stream.lostReported = stream.lostPending
        stream.end = end
        stream.begin = end
        stream.events.removeAll(keepingCapacity: true)
    }

    private func writePacket(_ stream: CTFStream, ring: Int, events: [UInt8], begin: UInt64, end: UInt64,
                             discarded: UInt64) throws(TraceError) {
        var packet: [UInt8] = []
        packet.reserveCapacity(CTFTraceWriter.headerSize + events.count)
        packet.appendLittleEndian(CTFMetadata.packetMagic)
        packet.append(contentsOf: description.uuid.prefix(16))
        packet.appendLittleEndian(UInt32(0))                  // stream_id
        packet.appendLittleEndian(UInt64(ring))               // stream_instance_id
        let bits = UInt64(CTFTraceWriter.headerSize + events.count) * 8
        packet.appendLittleEndian(begin)                      // timestamp_begin
        packet.appendLittleEndian(end)                        // timestamp_end
        packet.appendLittleEndian(bits)                       // content_size
        packet.appendLittleEndian(bits)                       // packet_size
        packet.appendLittleEndian(stream.sequence)            // packet_seq_num
        packet.appendLittleEndian(discarded)                  // events_discarded
        packet.appendLittleEndian(stream.cpu)                 // cpu_id
        packet.append(contentsOf: events)
        do {
            _ = try unsafe packet.withUnsafeBytes { try unsafe stream.fd.writeAll($0) }  // SAFETY: the array's own bytes
        } catch {
            throw TraceError(.systemCallFailed, "cannot write \(stream.path): \(error)")
        }
        stream.bytesWritten += UInt64(packet.count)
        stream.sequence += 1
    }
}

/// Per-ring state of a stream being written.
final class CTFStream {
    let fd: FileDescriptor
    let path: String
    let cpu: UInt32
    var events: [UInt8] = []
    var begin: UInt64 = 0
    var end: UInt64 = 0
    var last: UInt64 = 0
    var sequence: UInt64 = 0
    var lostPending: UInt64 = 0
    var lostReported: UInt64 = 0
    var eventCount: UInt64 = 0
    var bytesWritten: UInt64 = 0

    init(fd: FileDescriptor, path: String, cpu: UInt32) {
        self.fd = fd
        self.path = path
        self.cpu = cpu
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        for _ in 0..<MemoryLayout<T>.size {
            append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }
}
