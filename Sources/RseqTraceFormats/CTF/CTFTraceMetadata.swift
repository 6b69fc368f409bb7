/// What a reader learned from a trace's `metadata` file: the TSDL dialect `CTFMetadata` writes, or
/// the one lttng-sessiond 2.13 writes for LTTng-UST traces.
public struct CTFTraceMetadata: Sendable, Equatable {
    /// The trace uuid (16 bytes); every packet header must repeat it.
    public var uuid: [UInt8]
    /// The trace clock: frequency and offset from the Unix epoch.
    public var clock: CTFClockDescription
    /// `env` entries in declaration order.
    public var environment: [(key: String, value: CTFEnvironmentValue)]
    /// Event declarations of stream class 0 by id (every event of an rseqtrace trace).
    public var events: [UInt32: CTFEventDeclaration]
    /// Every stream class by id, with its events (LTTng-UST: one per channel; event ids are per
    /// stream class). rseqtrace traces have stream class 0 only.
    package var streams: [UInt32: CTFStreamClass]

    package init(uuid: [UInt8], clock: CTFClockDescription, environment: [(key: String, value: CTFEnvironmentValue)],
                events: [UInt32: CTFEventDeclaration]) {
        self.init(uuid: uuid, clock: clock, environment: environment,
                  streams: [0: CTFStreamClass(id: 0, eventHeader: .compact, eventContext: [], events: events)])
    }

    package init(uuid: [UInt8], clock: CTFClockDescription, environment: [(key: String, value: CTFEnvironmentValue)],
                streams: [UInt32: CTFStreamClass]) {
        self.uuid = uuid
        self.clock = clock
        self.environment = environment
        self.streams = streams
        self.events = streams[0]?.events ?? [:]
    }

    /// Thread names by thread id, from the `thread_name_<tid>` entries of the `env` block.
    package var threadNames: [Int64: String] {
        var names: [Int64: String] = [:]
        for (key, value) in environment where key.hasPrefix(CTFMetadata.threadNamePrefix) {
            if let tid = Int64(key.dropFirst(CTFMetadata.threadNamePrefix.count)), case .string(let name) = value {
                names[tid] = name
            }
        }
        return names
    }

    /// The value of env entry `key`, if present.
    public func environmentValue(_ key: String) -> CTFEnvironmentValue? {
        environment.first { $0.key == key }?.value
    }

    /// Equal when uuid, clock, stream classes (with their events) and environment are equal.
    public static func == (a: CTFTraceMetadata, b: CTFTraceMetadata) -> Bool {
        a.uuid == b.uuid && a.clock == b.clock && a.streams == b.streams
            && a.environment.map(\.key) == b.environment.map(\.key)
            && a.environment.map(\.value) == b.environment.map(\.value)
    }
}

/// One `stream` block: how its events' headers look, the context every event carries, its events.
package struct CTFStreamClass: Sendable, Hashable {
    /// The two event headers of LTTng-UST (rseqtrace writes the compact one).
    package enum EventHeader: Sendable, Hashable {
        /// 5-bit id + 27-bit timestamp in 32 bits; id 31: 32-bit id + 64-bit timestamp follow.
        case compact
        /// 16-bit id + 32-bit timestamp; id 65535: 32-bit id + 64-bit timestamp follow.
        case large
    }

    /// The stream class id (`stream_id` in packet headers).
    package var id: UInt32
    /// The event header layout of this stream class's events.
    package var eventHeader: EventHeader
    /// `event.context` fields (e.g. `vpid`, `procname` added with `lttng add-context`).
    package var eventContext: [CTFFieldDeclaration]
    /// Event declarations of this stream class by id.
    package var events: [UInt32: CTFEventDeclaration]

    package init(id: UInt32, eventHeader: EventHeader, eventContext: [CTFFieldDeclaration],
                events: [UInt32: CTFEventDeclaration]) {
        self.id = id
        self.eventHeader = eventHeader
        self.eventContext = eventContext
        self.events = events
    }
}

/// The `clock` block: timestamps are in cycles of `frequency` Hz since boot; adding
/// `offsetSeconds` s + `offsetCycles` cycles gives the time since the Unix epoch.
public struct CTFClockDescription: Sendable, Equatable {
    /// The clock's name (`monotonic` for rseqtrace and LTTng-UST traces).
    public var name: String
    /// The clock uuid (16 bytes): the boot id, so traces of one boot correlate.
    public var uuid: [UInt8]
    /// Free-form description from the metadata.
    public var description: String
    /// Cycles per second (1,000,000,000: nanoseconds).
    public var frequency: UInt64
    /// Precision in cycles, as declared.
    public var precision: UInt64
    /// Seconds from the Unix epoch to the clock's zero.
    public var offsetSeconds: Int64
    /// Cycles added to `offsetSeconds`.
    public var offsetCycles: Int64
    /// Whether the clock is declared absolute (comparable across traces of different machines).
    public var absolute: Bool

    package init(name: String, uuid: [UInt8], description: String, frequency: UInt64, precision: UInt64,
                offsetSeconds: Int64, offsetCycles: Int64, absolute: Bool) {
        self.name = name
        self.uuid = uuid
        self.description = description
        self.frequency = frequency
        self.precision = precision
        self.offsetSeconds = offsetSeconds
        self.offsetCycles = offsetCycles
        self.absolute = absolute
    }

    /// Nanoseconds to add to a monotonic timestamp to get realtime (ns since the epoch).
    /// The parser checks that this does not overflow.
    public var offsetNanoseconds: Int64 { offsetSeconds &* 1_000_000_000 &+ offsetCycles }
}

/// A value of the `env` block.
public enum CTFEnvironmentValue: Sendable, Hashable, CustomStringConvertible {
    /// A quoted string.
    case string(String)
    /// An integer.
    case integer(Int64)

    /// The value as written in the metadata: an integer, or a string in quotes.
    public var description: String {
        switch self {
        case .string(let s): return s
        case .integer(let i): return "\(i)"
        }
    }
}

/// One `event` block.
public struct CTFEventDeclaration: Sendable, Hashable {
    /// The event id within its stream class.
    public var id: UInt32
    /// The event name, e.g. `http:request`.
    public var name: String
    /// The payload fields, in order.
    public var fields: [CTFFieldDeclaration]

    package init(id: UInt32, name: String, fields: [CTFFieldDeclaration]) {
        self.id = id
        self.name = name
        self.fields = fields
    }
}

/// One field of an event payload. `name` is the TSDL identifier without its leading underscore
/// (as babeltrace2 shows it).
public struct CTFFieldDeclaration: Sendable, Hashable {
    /// The field name.
    public var name: String
    /// The field's type.
    public var type: CTFFieldType

    package init(name: String, type: CTFFieldType) {
        self.name = name
        self.type = type
    }
}

/// Field types of the rseqtrace dialect: byte-aligned little-endian scalars, and byte sequences
/// whose length is an earlier unsigned field.
public enum CTFFieldType: Sendable, Hashable {
    /// An unsigned integer of `bits` (8, 16, 32 or 64) bits.
    case unsigned(bits: Int)
    /// A two's-complement integer of `bits` (8, 16, 32 or 64) bits.
    case signed(bits: Int)
    /// An IEEE 754 binary32 float.
    case float32
    /// An IEEE 754 binary64 float.
    case float64
    /// `uint8_t name[lengthField];` — `lengthField` is the index of an earlier unsigned field.
    case bytes(lengthField: Int)
    /// A sequence of UTF-8 encoded 8-bit integers (text), sized like `bytes`.
    case text(lengthField: Int)
    /// An integer with labels for some of its values.
    case enumeration(bits: Int, isSigned: Bool, labels: [Int64: String])
    /// NUL-terminated UTF-8 text (`string`, LTTng-UST's `lttng_ust_field_string`).
    case string
    /// `count` UTF-8 bytes, shown up to the first NUL (LTTng-UST's text arrays, e.g. `procname`).
    case textArray(count: Int)
    /// One byte, 0 (false) or 1 (true): an unsigned 8-bit enumeration whose labels are exactly
    /// "false" = 0 and "true" = 1.
    case bool

    /// Bytes of a scalar field; nil for sequences.
    package var fixedByteCount: Int? {
        switch self {
        case .unsigned(let bits), .signed(let bits): return bits / 8
        case .float32: return 4
        case .bool: return 1
        case .float64: return 8
        case .enumeration(let bits, _, _): return bits / 8
        case .textArray(let count): return count
        case .bytes, .text, .string: return nil
        }
    }
}
