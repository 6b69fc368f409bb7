import RseqTrace
import RseqTraceFormats

// The demo's typed tracepoints. They are globals, so they are statically initialised and a
// disabled check is one load.

/// `demo:tick` through the typed API (same name and fields as `DemoTick.schema`, so the same id).
let demoTickTracepoint = Tracepoint3<UInt64, UInt64, UInt32>("demo:tick", fields: "seq check thread")

/// `demo:types`: one field of every supported type, so the whole path can be checked from the trace.
let demoTypesTracepoint = Tracepoint17<
    UInt8, UInt16, UInt32, UInt64, Int8, Int16, Int32, Int64, Bool, Float, Double,
    String, TraceString<8>, [UInt8], TraceBytes<4>, DemoColor, DemoLevel
>("demo:types", fields: "u8 u16 u32 u64 i8 i16 i32 i64 flag f32 f64 text short_text bytes short_bytes color level")

/// The largest payload a `demo:types` event can carry: the sum of its fields' largest encodings
/// (the types of `demoTypesTracepoint`, in order).
let demoTypesMaximumPayloadSize: Int = {
    let types: [FieldType] = [
        UInt8.traceFieldType, UInt16.traceFieldType, UInt32.traceFieldType, UInt64.traceFieldType,
        Int8.traceFieldType, Int16.traceFieldType, Int32.traceFieldType, Int64.traceFieldType,
        Bool.traceFieldType, Float.traceFieldType, Double.traceFieldType,
        String.traceFieldType, TraceString<8>.traceFieldType, [UInt8].traceFieldType, TraceBytes<4>.traceFieldType,
        DemoColor.traceFieldType, DemoLevel.traceFieldType,
    ]
    return types.reduce(0) { $0 + $1.maximumByteCount }
}()

/// An unsigned enumeration field.
enum DemoColor: UInt8, TraceEnum, Equatable {
    case red, green, blue
}

/// A signed enumeration field with a negative value.
enum DemoLevel: Int32, TraceEnum, Equatable {
    case debug = -1, info = 0, warning = 10
}

/// The values of one `demo:types` event, derived from (thread, sequence) so a reader can check them.
struct DemoTypes {
    /// Texts cycled through: empty, ASCII, multi-byte UTF-8, and one longer than the 255-byte bound.
    static let texts: [StaticString] = [
        "",
        "hello",
        "héllo wörld ✓",
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
    ]
    /// 10 bytes of UTF-8 ("naïveté!"): the 8-byte bound cuts before the two-byte "é", keeping 7.
    static let shortText: TraceString<8> = "naïveté!"
    static let bytes: [UInt8] = [0, 1, 2, 0x7F, 0x80, 0xFF]

    var thread: UInt32
    var sequence: UInt64

    /// demo:types is emitted once per 1000 sequences: cycle the texts per emission, not per sequence.
    var text: String { DemoTypes.texts[Int((sequence / 1000) % 4)].description }
    var color: DemoColor { DemoColor.allCases[Int(sequence % 3)] }
    var level: DemoLevel { DemoLevel.allCases[Int(sequence % 3)] }

    /// Emits the event through the typed API.
    func emit() {
        let s = sequence
        demoTypesTracepoint.emit(
            UInt8(truncatingIfNeeded: s), UInt16(truncatingIfNeeded: s &* 3), thread, s,
            Int8(truncatingIfNeeded: 0 &- Int64(s)), Int16(truncatingIfNeeded: 0 &- Int64(s) &* 3),
            Int32(truncatingIfNeeded: 0 &- Int64(thread)), 0 &- Int64(s),
            s & 1 == 0, Float(s) / 4, Double(s) * 0.5 + Double(thread),
            text, DemoTypes.shortText, DemoTypes.bytes, TraceBytes(DemoTypes.bytes), color, level)
    }

    /// The field values of this event as emitted, by name, in field order.
    var expectedValues: [(name: String, value: PayloadValue)] {
        let s = sequence
        let keptText = Array(text.utf8.prefix(TextFieldEncoding.defaultMaximumBytes))
        return [
            ("u8", .unsigned(s & 0xFF)), ("u16", .unsigned((s &* 3) & 0xFFFF)),
            ("u32", .unsigned(UInt64(thread))), ("u64", .unsigned(s)),
            ("i8", .signed(Int64(Int8(truncatingIfNeeded: 0 &- Int64(s))))),
            ("i16", .signed(Int64(Int16(truncatingIfNeeded: 0 &- Int64(s) &* 3)))),
            ("i32", .signed(0 &- Int64(thread))), ("i64", .signed(0 &- Int64(s))),
            ("flag", .bool(s & 1 == 0)), ("f32", .float32(Float(s) / 4)),
            ("f64", .float64(Double(s) * 0.5 + Double(thread))),
            ("text", .string(String(decoding: keptText, as: UTF8.self))),
            ("short_text", .string("naïvet")),
            ("bytes", .bytes(DemoTypes.bytes)), ("short_bytes", .bytes(Array(DemoTypes.bytes.prefix(4)))),
            ("color", .enumeration(label: "\(color)", value: Int64(color.rawValue), isSigned: false)),
            ("level", .enumeration(label: "\(level)", value: Int64(level.rawValue), isSigned: true)),
        ]
    }

    /// The values a reader must decode for this event (byte arrays with their length fields, as in
    /// CTF), given the registered schema; nil when the schema's field names are not the expected ones.
    func expectedFields(schema: EventSchema) -> [CTFFieldValue]? {
        let expected = expectedValues
        guard schema.fields.map(\.name) == expected.map(\.name) else { return nil }
        return EventPayloadDecoder.fields(expected.map(\.value), schema: schema)
    }

    /// Writes every event a demo run of `threads` x `eventsPerThread` emits, with its field values
    /// and text rendering, as JSON lines (`EventJSONLines`), so that a check of a trace another
    /// tool recorded (Tools/check-lttng) compares against the demo itself.
    static func writeExpectedEvents(to path: String, threads: Int, eventsPerThread: Int,
                                    typesSchema: EventSchema) throws(TraceError) {
        var out = try EventJSONLines(path: path)
        for thread in 0..<UInt32(threads) {
            for sequence in 0..<UInt64(eventsPerThread) {
                let tick: [PayloadValue] = [.unsigned(sequence), .unsigned(DemoTick.check(thread: thread, sequence: sequence)),
                                            .unsigned(UInt64(thread))]
                try out.append(event: DemoTick.schema.name, fields: EventPayloadDecoder.fields(tick, schema: DemoTick.schema),
                               text: DemoTick.schema.renderText(tick))
                guard sequence % typesInterval == typesInterval - 1 else { continue }
                let types = DemoTypes(thread: thread, sequence: sequence)
                guard let fields = types.expectedFields(schema: typesSchema) else {
                    throw TraceError(.invalidConfiguration, "the registered demo:types schema has fields \(typesSchema.fields.map(\.name)), not the demo's")
                }
                try out.append(event: typesSchema.name, fields: fields, text: typesSchema.renderText(types.expectedValues.map(\.value)))
            }
        }
        try out.finish()
    }
}

/// Disabled by the demo (`TraceRuntime.disable`): shows what a disabled tracepoint costs.
let demoDisabledTracepoint = Tracepoint2<UInt64, UInt32>("demo:disabled", fields: "seq thread")

/// `demo:text`: a text field next to an integer (the fast-path check disassembles its emit).
let demoTextTracepoint = Tracepoint2<UInt64, TraceString<64>>("demo:text", fields: "seq text")
