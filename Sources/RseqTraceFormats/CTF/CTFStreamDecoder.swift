import RseqTrace

/// Decodes the packets and events of one stream file (`channel0_<n>`), in file order, checking
/// every read against the packet's content and the file's end.
///
/// Yields, per packet, a `.discarded` record first when the packet's `events_discarded` grew
/// (the first packet: when it is not zero), then the packet's events.
public struct CTFStreamDecoder {
    /// The stream file's name (`channel0_<n>`) and full path.
    public let name: String
    /// The stream file's full path.
    public let path: String
    let bytes: [UInt8]
    let metadata: CTFTraceMetadata

    static let headerSize = CTFLayout.headerSize

    // Position.
    private var nextPacket = 0
    private var cursor = 0
    private var contentEnd = 0
    private var packetEnd = 0
    private var inPacket = false

    // Per-packet and per-stream state.
    private var clock: UInt64 = 0
    private var timestampEnd: UInt64 = 0
    private var previousEnd: UInt64?
    private var previousSequence: UInt64?
    private var previousDiscarded: UInt64 = 0
    private var instanceID: UInt64?
    private var cpu: UInt32?
    private var streamClass: CTFStreamClass?

    init(name: String, path: String, bytes: [UInt8], metadata: CTFTraceMetadata) {
        self.name = name
        self.path = path
        self.bytes = bytes
        self.metadata = metadata
    }

    /// `stream_instance_id` and `cpu_id` of the stream, once its first packet was read.
    public var streamInstanceID: UInt64? { instanceID }
    /// `cpu_id` of the stream, once its first packet was read.
    public var cpuID: UInt32? { cpu }

    /// The next record, nil at the end of the file.
    public mutating func next() throws(TraceError) -> CTFRecord? {
        while true {
            if inPacket {
                if cursor < contentEnd { return .event(try decodeEvent()) }
                inPacket = false
                nextPacket = packetEnd
            }
            if nextPacket >= bytes.count { return nil }
            if let discarded = try openPacket() { return .discarded(discarded) }
        }
    }

    // MARK: - Reads

    private func fail(_ offset: Int, _ what: String) -> TraceError {
        TraceError(.corrupted, "\(path): byte offset \(offset): \(what)")
    }

    /// Little-endian unsigned integer of `size` bytes at `offset`, which must end at or before `limit`.
    private func load(_ offset: Int, _ size: Int, limit: Int, _ what: String) throws(TraceError) -> UInt64 {
        guard offset >= 0, size <= limit - offset, limit <= bytes.count else {
            throw fail(offset, "\(what) (\(size) bytes) runs past \(limit == contentEnd && inPacket ? "the packet's content_size" : "the end of the file") at byte offset \(limit)")
        }
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    private func realtime(_ ns: UInt64) -> Int64 { Int64(bitPattern: ns) &+ metadata.clock.offsetNanoseconds }

    // MARK: - Packets

    private mutating func openPacket() throws(TraceError) -> CTFDiscardedEvents? {
        let start = nextPacket
        let remaining = bytes.count - start
        guard remaining >= CTFStreamDecoder.headerSize else {
            throw fail(start, "truncated packet header: \(remaining) bytes left, a packet header and context take \(CTFStreamDecoder.headerSize)")
        }
        let end = bytes.count
        /// The value of packet header or context field `name`, where `CTFLayout` places it.
        func field(_ name: String) throws(TraceError) -> UInt64 {
            let (offset, size) = CTFLayout.positions[name]!
            return try load(start + offset, size, limit: end, name)
        }
        /// The byte offset of field `name` in the file.
        func at(_ name: String) -> Int { start + CTFLayout.offset(name) }
        let magic = try field("magic")
        guard magic == UInt64(CTFMetadata.packetMagic) else {
            throw fail(at("magic"), "bad packet magic 0x\(String(magic, radix: 16)), expected 0x\(String(CTFMetadata.packetMagic, radix: 16))")
        }
        let uuidAt = at("uuid")
        let uuid = Array(bytes[uuidAt..<(uuidAt + 16)])
        guard uuid == metadata.uuid else {
            throw fail(uuidAt, "packet uuid \(CTFMetadata.uuidString(uuid)) does not match the trace uuid \(CTFMetadata.uuidString(metadata.uuid)) of the metadata")
        }
        let streamID = try field("stream_id")
        guard let declared = metadata.streams[UInt32(truncatingIfNeeded: streamID)], streamID <= UInt64(UInt32.max) else {
            throw fail(at("stream_id"), "stream_id \(streamID) is not declared (the metadata declares stream \(metadata.streams.keys.sorted().map(String.init).joined(separator: ", ")))")
        }
        if let streamClass, streamClass.id != declared.id {
            throw fail(at("stream_id"), "stream_id \(streamID) differs from \(streamClass.id) in the earlier packets of this file")
        }
        let instance = try field("stream_instance_id")
        let begin = try field("timestamp_begin")
        let packetTimestampEnd = try field("timestamp_end")
        let contentBits = try field("content_size")
        let packetBits = try field("packet_size")
        let sequence = try field("packet_seq_num")
        let discarded = try field("events_discarded")
        let cpuID = UInt32(truncatingIfNeeded: try field("cpu_id"))
        let o = start + CTFStreamDecoder.headerSize

        if let instanceID, instance != instanceID {
            throw fail(at("stream_instance_id"), "stream_instance_id \(instance) differs from \(instanceID) in the earlier packets of this file")
        }
        if let cpu, cpuID != cpu {
            throw fail(at("cpu_id"), "cpu_id \(cpuID) differs from \(cpu) in the earlier packets of this file")
        }
        if let previousSequence {
            guard sequence == previousSequence &+ 1 else {
                if sequence > previousSequence {
                    throw fail(at("packet_seq_num"), "packet_seq_num \(sequence) does not follow \(previousSequence): \(sequence - previousSequence - 1) missing packet(s) (removed from the stream file, or discarded by the tracer); the trace is incomplete")
                }
                throw fail(at("packet_seq_num"), "packet_seq_num \(sequence) does not follow \(previousSequence): a duplicated packet (the stream file repeats packet \(sequence)); the trace is corrupted")
            }
        } else if sequence != 0 {
            throw fail(at("packet_seq_num"), "the first packet's packet_seq_num is \(sequence), expected 0")
        }
        guard contentBits % 8 == 0, packetBits % 8 == 0 else {
            throw fail(at("content_size"), "content_size \(contentBits) or packet_size \(packetBits) bits is not a whole number of bytes")
        }
        guard contentBits <= packetBits else {
            throw fail(at("content_size"), "content_size \(contentBits) bits exceeds packet_size \(packetBits) bits")
        }
        guard contentBits / 8 >= UInt64(CTFStreamDecoder.headerSize) else {
            throw fail(at("content_size"), "content_size \(contentBits) bits is smaller than the packet header and context (\(CTFStreamDecoder.headerSize * 8) bits)")
        }
        guard packetBits / 8 <= UInt64(remaining) else {
            throw fail(at("packet_size"), "packet_size \(packetBits / 8) bytes exceeds the \(remaining) bytes left in the file (truncated stream?)")
        }
        guard begin <= packetTimestampEnd else {
            throw fail(at("timestamp_begin"), "timestamp_begin \(begin) is after timestamp_end \(packetTimestampEnd)")
        }
        if let previousEnd, begin < previousEnd {
            throw fail(at("timestamp_begin"), "timestamp_begin \(begin) goes back before the previous packet's timestamp_end \(previousEnd)")
        }
        guard discarded >= previousDiscarded else {
            throw fail(at("events_discarded"), "events_discarded \(discarded) is lower than the previous packet's \(previousDiscarded) (it is cumulative)")
        }

        let delta = discarded - previousDiscarded
        let rangeBegin = previousEnd ?? begin
        instanceID = instance
        cpu = cpuID
        streamClass = declared
        previousSequence = sequence
        previousDiscarded = discarded
        previousEnd = packetTimestampEnd
        timestampEnd = packetTimestampEnd
        clock = begin
        cursor = o
        contentEnd = start + Int(contentBits / 8)
        packetEnd = start + Int(packetBits / 8)
        inPacket = true
        guard delta > 0 else { return nil }
        return CTFDiscardedEvents(
            stream: name, streamInstanceID: instance, cpuID: cpuID, count: delta, begin: rangeBegin,
            end: packetTimestampEnd, realtimeBegin: realtime(rangeBegin), realtimeEnd: realtime(packetTimestampEnd),
            packetSequence: sequence)
    }

    // MARK: - Events

    private mutating func decodeEvent() throws(TraceError) -> CTFEvent {
        let start = cursor
        let header = streamClass?.eventHeader ?? .compact
        var id: UInt32
        var timestamp: UInt64
        switch header {
        case .compact:
            let first = try load(start, 1, limit: contentEnd, "event header")
            let idMask = UInt64(CTFLayout.extendedID)
            if first & idMask < idMask {
                let word = try load(start, 4, limit: contentEnd, "compact event header")
                id = UInt32(word & idMask)
                timestamp = try advanceClock(low: word >> UInt64(CTFLayout.compactIDBits),
                                             bits: UInt64(CTFLayout.compactTimestampBits), at: start)
                cursor = start + 4
            } else {
                id = UInt32(try load(start + 1, 4, limit: contentEnd, "extended event header id"))
                timestamp = try load(start + 5, 8, limit: contentEnd, "extended event header timestamp")
                cursor = start + 13
            }
        case .large:
            let shortID = try load(start, 2, limit: contentEnd, "large event header id")
            if shortID < 65535 {
                id = UInt32(shortID)
                timestamp = try advanceClock(low: try load(start + 2, 4, limit: contentEnd, "large event header timestamp"),
                                             bits: 32, at: start)
                cursor = start + 6
            } else {
                id = UInt32(try load(start + 2, 4, limit: contentEnd, "extended event header id"))
                timestamp = try load(start + 6, 8, limit: contentEnd, "extended event header timestamp")
                cursor = start + 14
            }
        }
        guard timestamp >= clock else {
            throw fail(start, "event timestamp \(timestamp) goes backwards (the stream's clock is at \(clock))")
        }
        guard timestamp <= timestampEnd else {
            throw fail(start, "event timestamp \(timestamp) is after the packet's timestamp_end \(timestampEnd)")
        }
        clock = timestamp
        guard let declaration = (streamClass?.events ?? metadata.events)[id] else {
            throw fail(start, "unknown event id \(id) (not declared in the metadata)")
        }
        let context = try decodeFields(streamClass?.eventContext ?? [], of: "the event context of \(declaration.name)")
        let values = try decodeFields(declaration.fields, of: declaration.name)
        var event = CTFEvent(stream: name, streamInstanceID: instanceID ?? 0, cpuID: cpu ?? 0, id: id, name: declaration.name,
                             timestamp: timestamp, realtime: realtime(timestamp), fields: values, offset: start)
        event.context = context
        return event
    }

    /// The full timestamp of a header carrying its low `bits` bits: the stream's clock with those
    /// bits replaced, one wrap later when they went down.
    private func advanceClock(low: UInt64, bits: UInt64, at offset: Int) throws(TraceError) -> UInt64 {
        let mask: UInt64 = (1 << bits) - 1
        var timestamp = (clock & ~mask) | low
        if low < clock & mask {
            let (wrapped, overflow) = timestamp.addingReportingOverflow(1 << bits)
            guard !overflow else { throw fail(offset, "compact timestamp wraps the 64-bit clock") }
            timestamp = wrapped
        }
        return timestamp
    }

    /// Decodes `fields` at the cursor, which it advances.
    private mutating func decodeFields(_ fields: [CTFFieldDeclaration], of owner: String) throws(TraceError) -> [CTFFieldValue] {
        var values: [CTFFieldValue] = []
        values.reserveCapacity(fields.count)
        for field in fields {
            let what = "field \(field.name) of \(owner)"
            let value: CTFValue
            switch field.type {
            case .unsigned(let bits):
                value = .unsigned(try load(cursor, bits / 8, limit: contentEnd, what))
            case .signed(let bits):
                value = .signed(FieldType.signExtended(try load(cursor, bits / 8, limit: contentEnd, what), bits: bits))
            case .bool:
                value = .bool(try load(cursor, 1, limit: contentEnd, what) != 0)
            case .float32:
                value = .float32(Float(bitPattern: UInt32(truncatingIfNeeded: try load(cursor, 4, limit: contentEnd, what))))
            case .float64:
                value = .float64(Double(bitPattern: try load(cursor, 8, limit: contentEnd, what)))
            case .enumeration(let bits, let isSigned, let labels):
                let raw = try load(cursor, bits / 8, limit: contentEnd, what)
                let number = isSigned ? FieldType.signExtended(raw, bits: bits) : Int64(bitPattern: raw)
                value = .enumeration(label: labels[number], value: number, isSigned: isSigned)
            case .textArray(let count):
                guard count <= contentEnd - cursor else {
                    throw fail(cursor, "\(what): \(count) bytes run past the packet's content_size at byte offset \(contentEnd)")
                }
                let content = bytes[cursor..<(cursor + count)].prefix { $0 != 0 }
                value = .string(String(decoding: content, as: UTF8.self))
            case .string:
                guard let end = bytes[cursor..<contentEnd].firstIndex(of: 0) else {
                    throw fail(cursor, "\(what): the string has no terminating NUL before the packet's content_size at byte offset \(contentEnd)")
                }
                value = .string(String(decoding: bytes[cursor..<end], as: UTF8.self))
                values.append(CTFFieldValue(name: field.name, value: value))
                cursor = end + 1
                continue
            case .bytes(let lengthField), .text(let lengthField):
                guard lengthField < values.count, case .unsigned(let length) = values[lengthField].value else {
                    throw fail(cursor, "\(what): its length field is not an unsigned integer")
                }
                guard length <= UInt64(contentEnd - cursor) else {
                    throw fail(cursor, "\(what): \(length) bytes run past the packet's content_size at byte offset \(contentEnd)")
                }
                let content = bytes[cursor..<(cursor + Int(length))]
                if case .text = field.type {
                    value = .string(String(decoding: content, as: UTF8.self))
                } else {
                    value = .bytes(Array(content))
                }
                values.append(CTFFieldValue(name: field.name, value: value))
                cursor += Int(length)
                continue
            }
            values.append(CTFFieldValue(name: field.name, value: value))
            cursor += field.type.fixedByteCount ?? 0
        }
        return values
    }
}
