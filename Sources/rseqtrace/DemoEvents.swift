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

    /// The values a reader must decode for this event (byte arrays with their length fields, as in CTF).
    var expectedFields: [CTFFieldValue] {
        let s = sequence
        func field(_ name: String, _ value: CTFValue) -> CTFFieldValue { CTFFieldValue(name: name, value: value) }
        let keptText = Array(text.utf8.prefix(TextFieldEncoding.defaultMaximumBytes))
        let shortText = Array("naïvet".utf8)
        return [
            field("u8", .unsigned(s & 0xFF)), field("u16", .unsigned((s &* 3) & 0xFFFF)),
            field("u32", .unsigned(UInt64(thread))), field("u64", .unsigned(s)),
            field("i8", .signed(Int64(Int8(truncatingIfNeeded: 0 &- Int64(s))))),
            field("i16", .signed(Int64(Int16(truncatingIfNeeded: 0 &- Int64(s) &* 3)))),
            field("i32", .signed(0 &- Int64(thread))), field("i64", .signed(0 &- Int64(s))),
            field("flag", .unsigned(s & 1 == 0 ? 1 : 0)), field("f32", .float32(Float(s) / 4)),
            field("f64", .float64(Double(s) * 0.5 + Double(thread))),
            field("text", .string(String(decoding: keptText, as: UTF8.self))),
            field("short_text", .string(String(decoding: shortText, as: UTF8.self))),
            field("_bytes_length", .unsigned(UInt64(DemoTypes.bytes.count))), field("bytes", .bytes(DemoTypes.bytes)),
            field("_short_bytes_length", .unsigned(4)), field("short_bytes", .bytes(Array(DemoTypes.bytes.prefix(4)))),
            field("color", .enumeration(label: "\(color)", value: Int64(color.rawValue), isSigned: false)),
            field("level", .enumeration(label: "\(level)", value: Int64(level.rawValue), isSigned: true)),
        ]
    }
}

/// Disabled by the demo (`TraceRuntime.disable`): shows what a disabled tracepoint costs.
let demoDisabledTracepoint = Tracepoint2<UInt64, UInt32>("demo:disabled", fields: "seq thread")

/// `demo:text`: a text field next to an integer (the fast-path check disassembles its emit).
let demoTextTracepoint = Tracepoint2<UInt64, TraceString<64>>("demo:text", fields: "seq text")
