/// What iterating a CTF trace yields: an event, or a count of events the tracer discarded.
public enum CTFRecord: Sendable, Equatable {
    /// A decoded event.
    case event(CTFEvent)
    /// Events the tracer discarded (its buffer was full) before the packet that reported them.
    case discarded(CTFDiscardedEvents)

    /// Monotonic nanoseconds used to order records: the event's timestamp, or the beginning of
    /// the discarded range.
    public var timestamp: UInt64 {
        switch self {
        case .event(let e): return e.timestamp
        case .discarded(let d): return d.begin
        }
    }

    /// The stream file (`channel0_<n>`) the record came from.
    public var stream: String {
        switch self {
        case .event(let e): return e.stream
        case .discarded(let d): return d.stream
        }
    }

    /// `cpu_id` of the packet the record came from.
    public var cpuID: UInt32 {
        switch self {
        case .event(let e): return e.cpuID
        case .discarded(let d): return d.cpuID
        }
    }
}

/// One decoded event.
public struct CTFEvent: Sendable, Equatable {
    /// Stream file name (`channel0_<n>`).
    public var stream: String
    /// `stream_instance_id` of the packet.
    public var streamInstanceID: UInt64
    /// `cpu_id` of the packet.
    public var cpuID: UInt32
    /// The event id within its stream class.
    public var id: UInt32
    /// The event name from the metadata.
    public var name: String
    /// CLOCK_MONOTONIC nanoseconds.
    public var timestamp: UInt64
    /// CLOCK_REALTIME nanoseconds since the epoch (`timestamp` + the clock offset).
    public var realtime: Int64
    /// The payload fields, in declaration order.
    public var fields: [CTFFieldValue]
    /// Byte offset of the event header in the stream file.
    package var offset: Int
    /// The stream's event context fields (LTTng-UST contexts such as `vpid`); empty for rseqtrace traces.
    public var context: [CTFFieldValue] = []

    package init(stream: String, streamInstanceID: UInt64, cpuID: UInt32, id: UInt32, name: String,
                timestamp: UInt64, realtime: Int64, fields: [CTFFieldValue], offset: Int) {
        self.stream = stream
        self.streamInstanceID = streamInstanceID
        self.cpuID = cpuID
        self.id = id
        self.name = name
        self.timestamp = timestamp
        self.realtime = realtime
        self.fields = fields
        self.offset = offset
    }

    /// The value of field `name`, if the event has it.
    public subscript(field name: String) -> CTFValue? {
        fields.first { $0.name == name }?.value
    }
}

/// A named field value of an event.
public struct CTFFieldValue: Sendable, Equatable {
    /// The field name.
    public var name: String
    /// The decoded value.
    public var value: CTFValue

    package init(name: String, value: CTFValue) {
        self.name = name
        self.value = value
    }
}

/// A decoded field value.
public enum CTFValue: Sendable, Equatable, CustomStringConvertible {
    /// An unsigned integer (zero-extended to 64 bits).
    case unsigned(UInt64)
    /// A signed integer (sign-extended to 64 bits).
    case signed(Int64)
    /// A binary32 float.
    case float32(Float)
    /// A binary64 float.
    case float64(Double)
    /// A byte sequence.
    case bytes([UInt8])
    /// Text (invalid UTF-8 is repaired with U+FFFD).
    case string(String)
    /// An enumeration value: its label (nil when no label has this value) and the integer (the bit
    /// pattern for unsigned containers).
    case enumeration(label: String?, value: Int64, isSigned: Bool)
    /// A boolean (declared as a one-byte enumeration with just the labels "false" = 0 and "true" = 1).
    case bool(Bool)

    /// babeltrace2-like rendering.
    public var description: String {
        switch self {
        case .unsigned(let v): return "\(v)"
        case .signed(let v): return "\(v)"
        case .bool(let v): return v ? "true" : "false"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .bytes(let b):
            if b.isEmpty { return "[ ]" }
            return "[ " + b.enumerated().map { "[\($0.offset)] = \($0.element)" }.joined(separator: ", ") + " ]"
        case .string(let text):
            var quoted = "\""
            for c in text.unicodeScalars {
                switch c {
                case "\"": quoted += "\\\""
                case "\\": quoted += "\\\\"
                case "\n": quoted += "\\n"
                default: quoted.unicodeScalars.append(c)
                }
            }
            return quoted + "\""
        case .enumeration(let label, let value, let isSigned):
            let number = isSigned ? "\(value)" : "\(UInt64(bitPattern: value))"
            return "( \"\(label ?? "")\" : container = \(number) )"
        }
    }
}

/// Events a stream's tracer discarded, as the `events_discarded` difference between a packet
/// and the previous packet of its stream (for the first packet: its own count).
public struct CTFDiscardedEvents: Sendable, Equatable {
    /// Stream file name (`channel0_<n>`).
    public var stream: String
    /// `stream_instance_id` of the packet.
    public var streamInstanceID: UInt64
    /// `cpu_id` of the packet.
    public var cpuID: UInt32
    /// How many events were discarded in this range.
    public var count: UInt64
    /// Monotonic ns: the previous packet's `timestamp_end` (first packet: its `timestamp_begin`).
    public var begin: UInt64
    /// Monotonic ns: this packet's `timestamp_end`.
    public var end: UInt64
    /// `begin` as CLOCK_REALTIME nanoseconds since the epoch.
    public var realtimeBegin: Int64
    /// `end` as CLOCK_REALTIME nanoseconds since the epoch.
    public var realtimeEnd: Int64
    /// `packet_seq_num` of the packet that reported the loss.
    public var packetSequence: UInt64

    package init(stream: String, streamInstanceID: UInt64, cpuID: UInt32, count: UInt64, begin: UInt64, end: UInt64,
                realtimeBegin: Int64, realtimeEnd: Int64, packetSequence: UInt64) {
        self.stream = stream
        self.streamInstanceID = streamInstanceID
        self.cpuID = cpuID
        self.count = count
        self.begin = begin
        self.end = end
        self.realtimeBegin = realtimeBegin
        self.realtimeEnd = realtimeEnd
        self.packetSequence = packetSequence
    }
}
