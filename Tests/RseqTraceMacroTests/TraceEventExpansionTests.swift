import Testing

// Expected expansions follow the shape documented in docs/Instrumentation.md (macros section).
@Suite("@TraceEvent expansion")
struct TraceEventExpansionTests {
    /// The example of docs/Instrumentation.md.
    @Test func httpRequestExample() {
        expectExpansion(
            """
            @TraceEvent("http:request")
            struct HTTPRequest {
                var bytes: UInt64
                var status: Int16
                var path: TraceString<64>
            }
            """,
            expandedSource: """
            struct HTTPRequest {
                var bytes: UInt64
                var status: Int16
                var path: TraceString<64>

                static let tracepoint = RseqTrace.TracepointSite("http:request", fields: "bytes status path")

                static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(UInt64.self), RseqTrace.TraceEventFieldCheck.fieldType(Int16.self), RseqTrace.TraceEventFieldCheck.fieldType(TraceString<64>.self)]
                }

                static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) static func emit(bytes: @autoclosure () -> UInt64, status: @autoclosure () -> Int16, path: @autoclosure () -> TraceString<64>) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let bytes = bytes(), status = status(), path = path()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        bytes.traceEncodedSize &+ status.traceEncodedSize &+ path.traceEncodedSize
                    } encode: {
                        bytes.traceEncode(into: &$0)
                        status.traceEncode(into: &$0)
                        path.traceEncode(into: &$0)
                    }
                }

                @inline(__always) func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.bytes.traceEncodedSize &+ self.status.traceEncodedSize &+ self.path.traceEncodedSize
                    } encode: {
                        self.bytes.traceEncode(into: &$0)
                        self.status.traceEncode(into: &$0)
                        self.path.traceEncode(into: &$0)
                    }
                }
            }

            extension HTTPRequest: RseqTrace.TraceEvent {
            }
            """
        )
    }

    /// Static and computed properties and methods are not fields: an event without fields.
    @Test func noFields() {
        expectExpansion(
            """
            @TraceEvent("app:tick")
            struct Tick {
                static var count = 0
                var computed: Int { 1 }
                func helper() {}
            }
            """,
            expandedSource: """
            struct Tick {
                static var count = 0
                var computed: Int { 1 }
                func helper() {}

                static let tracepoint = RseqTrace.TracepointSite("app:tick", fields: "")

                static func fieldTypes() -> [RseqTrace.FieldType] {
                    []
                }

                static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) static func emit() {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        0
                    } encode: { _ in
                    }
                }

                @inline(__always) func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        0
                    } encode: { _ in
                    }
                }
            }

            extension Tick: RseqTrace.TraceEvent {
            }
            """
        )
    }

    @Test func publicStructGetsPublicMembers() {
        expectExpansion(
            """
            @TraceEvent("db:query")
            public struct Query {
                public var rows: Int
            }
            """,
            expandedSource: """
            public struct Query {
                public var rows: Int

                public static let tracepoint = RseqTrace.TracepointSite("db:query", fields: "rows")

                public static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(Int.self)]
                }

                public static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) public static func emit(rows: @autoclosure () -> Int) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let rows = rows()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        rows.traceEncodedSize
                    } encode: {
                        rows.traceEncode(into: &$0)
                    }
                }

                @inline(__always) public func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.rows.traceEncodedSize
                    } encode: {
                        self.rows.traceEncode(into: &$0)
                    }
                }
            }

            extension Query: RseqTrace.TraceEvent {
            }
            """
        )
    }

    /// A private type's members must be fileprivate to satisfy the conformance.
    @Test func privateStructGetsFileprivateMembers() {
        expectExpansion(
            """
            @TraceEvent("db:row")
            private struct Row {
                let id: UInt32
            }
            """,
            expandedSource: """
            private struct Row {
                let id: UInt32

                fileprivate static let tracepoint = RseqTrace.TracepointSite("db:row", fields: "id")

                fileprivate static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(UInt32.self)]
                }

                fileprivate static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) fileprivate static func emit(id: @autoclosure () -> UInt32) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let id = id()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        id.traceEncodedSize
                    } encode: {
                        id.traceEncode(into: &$0)
                    }
                }

                @inline(__always) fileprivate func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.id.traceEncodedSize
                    } encode: {
                        self.id.traceEncode(into: &$0)
                    }
                }
            }

            extension Row: RseqTrace.TraceEvent {
            }
            """
        )
    }

    /// `var x, y: Int32` declares two Int32 fields; an observed property is stored, a computed one is not.
    @Test func multipleBindingsAndObservers() {
        expectExpansion(
            """
            @TraceEvent("geo:point")
            struct Point {
                var x, y: Int32
                var label: String, weight: Double
                var z: Float = 0 {
                    didSet {}
                }
                var sum: Int64 { Int64(x) + Int64(y) }
            }
            """,
            expandedSource: """
            struct Point {
                var x, y: Int32
                var label: String, weight: Double
                var z: Float = 0 {
                    didSet {}
                }
                var sum: Int64 { Int64(x) + Int64(y) }

                static let tracepoint = RseqTrace.TracepointSite("geo:point", fields: "x y label weight z")

                static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(Int32.self), RseqTrace.TraceEventFieldCheck.fieldType(Int32.self), RseqTrace.TraceEventFieldCheck.fieldType(String.self), RseqTrace.TraceEventFieldCheck.fieldType(Double.self), RseqTrace.TraceEventFieldCheck.fieldType(Float.self)]
                }

                static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) static func emit(x: @autoclosure () -> Int32, y: @autoclosure () -> Int32, label: @autoclosure () -> String, weight: @autoclosure () -> Double, z: @autoclosure () -> Float) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let x = x(), y = y(), label = label(), weight = weight(), z = z()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        x.traceEncodedSize &+ y.traceEncodedSize &+ label.traceEncodedSize &+ weight.traceEncodedSize &+ z.traceEncodedSize
                    } encode: {
                        x.traceEncode(into: &$0)
                        y.traceEncode(into: &$0)
                        label.traceEncode(into: &$0)
                        weight.traceEncode(into: &$0)
                        z.traceEncode(into: &$0)
                    }
                }

                @inline(__always) func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.x.traceEncodedSize &+ self.y.traceEncodedSize &+ self.label.traceEncodedSize &+ self.weight.traceEncodedSize &+ self.z.traceEncodedSize
                    } encode: {
                        self.x.traceEncode(into: &$0)
                        self.y.traceEncode(into: &$0)
                        self.label.traceEncode(into: &$0)
                        self.weight.traceEncode(into: &$0)
                        self.z.traceEncode(into: &$0)
                    }
                }
            }

            extension Point: RseqTrace.TraceEvent {
            }
            """
        )
    }

    /// Qualified types, byte fields, enum-typed fields (presumed TraceEnum) and a backticked name.
    @Test func qualifiedTypesBytesAndEnum() {
        expectExpansion(
            """
            @TraceEvent("net:packet")
            struct Packet {
                var size: Swift.UInt16
                var payload: RseqTrace.TraceBytes<128>
                var raw: [UInt8]
                var name: RseqTrace.TraceString<32>
                var method: Method
                var kind: Packet.Kind
                var `class`: Int8
            }
            """,
            expandedSource: """
            struct Packet {
                var size: Swift.UInt16
                var payload: RseqTrace.TraceBytes<128>
                var raw: [UInt8]
                var name: RseqTrace.TraceString<32>
                var method: Method
                var kind: Packet.Kind
                var `class`: Int8

                static let tracepoint = RseqTrace.TracepointSite("net:packet", fields: "size payload raw name method kind class")

                static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(Swift.UInt16.self), RseqTrace.TraceEventFieldCheck.fieldType(RseqTrace.TraceBytes<128>.self), RseqTrace.TraceEventFieldCheck.fieldType([UInt8].self), RseqTrace.TraceEventFieldCheck.fieldType(RseqTrace.TraceString<32>.self), RseqTrace.TraceEventFieldCheck.fieldType(Method.self), RseqTrace.TraceEventFieldCheck.fieldType(Packet.Kind.self), RseqTrace.TraceEventFieldCheck.fieldType(Int8.self)]
                }

                static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) static func emit(size: @autoclosure () -> Swift.UInt16, payload: @autoclosure () -> RseqTrace.TraceBytes<128>, raw: @autoclosure () -> [UInt8], name: @autoclosure () -> RseqTrace.TraceString<32>, method: @autoclosure () -> Method, kind: @autoclosure () -> Packet.Kind, `class`: @autoclosure () -> Int8) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let size = size(), payload = payload(), raw = raw(), name = name(), method = method(), kind = kind(), `class` = `class`()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        size.traceEncodedSize &+ payload.traceEncodedSize &+ raw.traceEncodedSize &+ name.traceEncodedSize &+ method.traceEncodedSize &+ kind.traceEncodedSize &+ `class`.traceEncodedSize
                    } encode: {
                        size.traceEncode(into: &$0)
                        payload.traceEncode(into: &$0)
                        raw.traceEncode(into: &$0)
                        name.traceEncode(into: &$0)
                        method.traceEncode(into: &$0)
                        kind.traceEncode(into: &$0)
                        `class`.traceEncode(into: &$0)
                    }
                }

                @inline(__always) func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.size.traceEncodedSize &+ self.payload.traceEncodedSize &+ self.raw.traceEncodedSize &+ self.name.traceEncodedSize &+ self.method.traceEncodedSize &+ self.kind.traceEncodedSize &+ self.`class`.traceEncodedSize
                    } encode: {
                        self.size.traceEncode(into: &$0)
                        self.payload.traceEncode(into: &$0)
                        self.raw.traceEncode(into: &$0)
                        self.name.traceEncode(into: &$0)
                        self.method.traceEncode(into: &$0)
                        self.kind.traceEncode(into: &$0)
                        self.`class`.traceEncode(into: &$0)
                    }
                }
            }

            extension Packet: RseqTrace.TraceEvent {
            }
            """
        )
    }

    /// Nested in a non-generic type: allowed; the extension names the qualified type.
    @Test func nestedInNonGenericType() {
        expectExpansion(
            """
            enum Events {
                @TraceEvent("app:start")
                struct Start {
                    var pid: Int32
                }
            }
            """,
            expandedSource: """
            enum Events {
                struct Start {
                    var pid: Int32

                    static let tracepoint = RseqTrace.TracepointSite("app:start", fields: "pid")

                    static func fieldTypes() -> [RseqTrace.FieldType] {
                        [RseqTrace.TraceEventFieldCheck.fieldType(Int32.self)]
                    }

                    static var isEnabled: Bool {
                        Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                    }

                    @inline(__always) static func emit(pid: @autoclosure () -> Int32) {
                        guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                            return
                        }
                        let pid = pid()
                        Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                            pid.traceEncodedSize
                        } encode: {
                            pid.traceEncode(into: &$0)
                        }
                    }

                    @inline(__always) func emit() {
                        Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                            self.pid.traceEncodedSize
                        } encode: {
                            self.pid.traceEncode(into: &$0)
                        }
                    }
                }
            }

            extension Events.Start: RseqTrace.TraceEvent {
            }
            """
        )
    }

    /// A type that already conforms gets no second conformance (the compiler then passes no protocols).
    @Test func existingConformanceIsNotRepeated() {
        expectExpansionWithoutConformance(
            """
            @TraceEvent("a:b")
            struct E: TraceEvent {
                var v: Bool
            }
            """,
            expandedSource: """
            struct E: TraceEvent {
                var v: Bool

                static let tracepoint = RseqTrace.TracepointSite("a:b", fields: "v")

                static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(Bool.self)]
                }

                static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) static func emit(v: @autoclosure () -> Bool) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let v = v()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        v.traceEncodedSize
                    } encode: {
                        v.traceEncode(into: &$0)
                    }
                }

                @inline(__always) func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.v.traceEncodedSize
                    } encode: {
                        self.v.traceEncode(into: &$0)
                    }
                }
            }
            """
        )
    }

    /// `path_length` next to `path` does not collide (the format's length field is `_path_length`).
    @Test func similarNameWithoutCollisionIsAllowed() {
        expectExpansion(
            """
            @TraceEvent("a:b")
            struct E {
                var path: String
                var path_length: Int
            }
            """,
            expandedSource: """
            struct E {
                var path: String
                var path_length: Int

                static let tracepoint = RseqTrace.TracepointSite("a:b", fields: "path path_length")

                static func fieldTypes() -> [RseqTrace.FieldType] {
                    [RseqTrace.TraceEventFieldCheck.fieldType(String.self), RseqTrace.TraceEventFieldCheck.fieldType(Int.self)]
                }

                static var isEnabled: Bool {
                    Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes)
                }

                @inline(__always) static func emit(path: @autoclosure () -> String, path_length: @autoclosure () -> Int) {
                    guard Self.tracepoint.isEnabled(fieldTypes: Self.fieldTypes) else {
                        return
                    }
                    let path = path(), path_length = path_length()
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        path.traceEncodedSize &+ path_length.traceEncodedSize
                    } encode: {
                        path.traceEncode(into: &$0)
                        path_length.traceEncode(into: &$0)
                    }
                }

                @inline(__always) func emit() {
                    Self.tracepoint.emit(fieldTypes: Self.fieldTypes) {
                        self.path.traceEncodedSize &+ self.path_length.traceEncodedSize
                    } encode: {
                        self.path.traceEncode(into: &$0)
                        self.path_length.traceEncode(into: &$0)
                    }
                }
            }

            extension E: RseqTrace.TraceEvent {
            }
            """
        )
    }
}
