#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RseqTrace
@testable import RseqTraceConsumer
@testable import RseqTraceFormats

/// The recorder writes most events through the CTF writer's batch loop (`appendFixedSize`) and the
/// rest (first record of an id, variable-size, unknown and malformed payloads) one by one; a
/// recorder given a visitor writes every event one by one. Both must write the same trace: here
/// a mixed sequence spanning several packets, written once per path, is read back and compared
/// with what was written.
@Suite("CTF writer: batch and per-record paths write the same events")
struct RecorderBatchTests {
    static let fixedSchema = EventSchema(name: "b:fixed", fields: [EventField("a", .uint64), EventField("b", .uint32)])
    static let textSchema = EventSchema(name: "b:text", fields: [EventField("s", .string(maxBytes: 64))])
    static let unknownID: UInt16 = 999
    static let count = 20_000

    /// What the reader must show for record `i` of the sequence: its name and field values.
    static func expected(_ i: Int) -> (name: String, fields: [CTFValue]) {
        if i % 4_999 == 17 { return (CTFMetadata.malformedEventName, []) }
        if i % 1_009 == 5 { return ("rseqtrace:unknown_\(unknownID)", []) }
        if i % 97 == 3 { return ("b:text", [.string("t\(i)")]) }
        return ("b:fixed", [.unsigned(UInt64(i)), .unsigned(UInt64(i) &* 3 & 0xFFFF_FFFF)])
    }

    /// Writes the sequence on one CPU.
    static func write(_ fixture: UnitTraceFixture) throws {
        let fixed = try fixture.buffer.registerEvent(fixedSchema)
        let text = try fixture.buffer.registerEvent(textSchema)
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for i in 0..<count {
                let ok: Bool
                switch expected(i).name {
                case CTFMetadata.malformedEventName:
                    ok = fixture.producer.write(eventID: fixed, value: (UInt32(1), UInt8(2)))   // 5 bytes, not 12
                case "b:text":
                    let bytes = Array("t\(i)".utf8)
                    var payload: [UInt8] = [UInt8(bytes.count), 0]
                    payload += bytes
                    ok = fixture.producer.write(eventID: text, bytes: payload.span)
                case "b:fixed":
                    let a = UInt64(i), b = UInt64(UInt32(truncatingIfNeeded: i &* 3))
                    let payload = (0..<8).map { UInt8(truncatingIfNeeded: a >> (8 * $0)) }
                        + (0..<4).map { UInt8(truncatingIfNeeded: b >> (8 * $0)) }
                    ok = fixture.producer.write(eventID: fixed, bytes: payload.span)
                default:
                    ok = fixture.producer.write(eventID: unknownID, value: UInt64(i))
                }
                guard ok else { throw TraceError(.invalidConfiguration, "record \(i) was not written") }
            }
        }
    }

    /// Records the fixture's buffer into `output` (batches, or one by one with a visitor) and reads it back.
    static func recordAndRead(_ fixture: UnitTraceFixture, output: String, visiting: Bool) throws -> [CTFEvent] {
        CTFEndToEndTests.removeTree(output)
        try CTFTraceWriter.prepareDirectory(output)
        let recorder = try TraceRecorder(buffer: fixture.buffer, output: output, traceName: "batch", procname: "batch",
                                         pid: getpid())
        var visited = 0
        if visiting {
            try recorder.round(quiescent: true) { _ in visited += 1 }
            #expect(visited == count)
        } else {
            #expect(try recorder.round(quiescent: true) == count)
        }
        let summary = try #require(try recorder.finish())
        #expect(summary.events == UInt64(count))
        #expect(summary.packets >= 2, "the sequence spans packets")
        return try CTFTraceReader(directory: output).readAll().compactMap {
            if case .event(let event) = $0 { return event } else { return nil }
        }
    }

    @Test("a mixed sequence over several packets reads back as written, with non-decreasing timestamps, on both paths")
    func bothPathsMatchTheSequence() throws {
        var traces: [[CTFEvent]] = []
        for visiting in [false, true] {
            let fixture = try UnitTraceFixture("batch-\(visiting)", ringSize: 1 << 21, subbufferSize: 1 << 16)
            try Self.write(fixture)
            let output = CTFEndToEndTests.temporaryDirectory("recorder-batch-\(visiting)")
            defer { CTFEndToEndTests.removeTree(output) }
            let events = try Self.recordAndRead(fixture, output: output, visiting: visiting)
            #expect(events.count == Self.count)
            var previous: UInt64 = 0
            for (i, event) in events.enumerated() {
                let expected = Self.expected(i)
                #expect(event.name == expected.name, "event \(i), visiting \(visiting)")
                if !expected.fields.isEmpty {
                    #expect(event.fields.map(\.value) == expected.fields, "event \(i), visiting \(visiting)")
                }
                #expect(event.timestamp >= previous, "event \(i), visiting \(visiting)")
                previous = event.timestamp
                if event.name != expected.name { break }
            }
            traces.append(events)
        }
        #expect(traces[0].map(\.name) == traces[1].map(\.name))
        #expect(traces[0].map { $0.fields.map(\.value) } == traces[1].map { $0.fields.map(\.value) })
    }
}
