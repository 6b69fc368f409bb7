import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

/// `export --format perfetto` and the timeline model it shares with the Chrome export, decoded by
/// an independent reader (protoc + python3-protobuf, Tools/python/check_perfetto.py).
@Suite("Perfetto export")
struct PerfettoExportTests {
    /// Tools/python/check_perfetto.py of this source tree.
    static let checker: String = {
        let file = #filePath
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)   // Tests/RseqTraceTests/PerfettoExportTests.swift
        return parts.joined(separator: "/") + "/Tools/python/check_perfetto.py"
    }()
    static var decoderAvailable: Bool {
        // SAFETY: access reads the NUL-terminated copy of the path Swift passes for the call.
        let protobuf = unsafe access("/usr/lib/python3/dist-packages/google/protobuf/__init__.py", R_OK) == 0
        return protobuf && HelperProcess.isExecutable(CTFEndToEndTests.python) && HelperProcess.isExecutable("/usr/bin/protoc")
    }

    @Test("protobuf wire encoding: varints, negative ints, doubles, nested messages")
    func wireEncoding() {
        var varint = ProtobufWriter()
        varint.unsigned(1, 300)
        #expect(varint.bytes == [0x08, 0xAC, 0x02])
        var negative = ProtobufWriter()
        negative.signed(2, -1)
        #expect(negative.bytes == [0x10] + Array(repeating: 0xFF, count: 9) + [0x01])
        var double = ProtobufWriter()
        double.double(5, 1.0)
        #expect(double.bytes == [0x29, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
        var nested = ProtobufWriter()
        nested.message(3) { $0.string(2, "ab") }
        #expect(nested.bytes == [0x1A, 0x04, 0x12, 0x02, 0x61, 0x62])
    }

    private static func event(_ name: String, at t: UInt64, cpu: UInt32 = 0, tid: Int64?, _ fields: [(String, CTFValue)] = []) -> CTFRecord {
        var event = CTFEvent(stream: "channel0_\(cpu)", streamInstanceID: UInt64(cpu), cpuID: cpu, id: 0, name: name,
                             timestamp: t, realtime: Int64(t), fields: fields.map { CTFFieldValue(name: $0.0, value: $0.1) },
                             offset: 0)
        if let tid { event.context = [CTFFieldValue(name: "vtid", value: .signed(tid)), CTFFieldValue(name: "vpid", value: .signed(7))] }
        return .event(event)
    }

    @Test("timeline: thread tracks from vtid, spans as slices (same thread, other thread, unfinished, begin lost)")
    func timelineModel() {
        var timeline = TraceTimeline()
        let process = TraceTimeline.Process(pid: 7, name: "app")
        var items: [TraceTimeline.Item] = []
        let records: [CTFRecord] = [
            Self.event(SpanTable.beginEventName, at: 10, tid: 7, [("name", .string("outer")), ("id", .unsigned(1))]),
            Self.event(SpanTable.beginEventName, at: 11, tid: 7, [("name", .string("inner")), ("id", .unsigned(2))]),
            Self.event("app:tick", at: 12, tid: 7, [("n", .unsigned(1))]),
            Self.event(SpanTable.endEventName, at: 13, tid: 7, [("name", .string("inner")), ("id", .unsigned(2)), ("duration_ns", .unsigned(1))]),
            Self.event(SpanTable.beginEventName, at: 14, tid: 8, [("name", .string("async")), ("id", .unsigned(3))]),
            Self.event(SpanTable.endEventName, at: 20, tid: 9, [("name", .string("async")), ("id", .unsigned(3)), ("duration_ns", .unsigned(5))]),
            Self.event(SpanTable.endEventName, at: 30, tid: 8, [("name", .string("lost")), ("id", .unsigned(4)), ("duration_ns", .unsigned(25))]),
            Self.event("app:tick", at: 31, cpu: 1, tid: nil),
        ]
        for record in records { items += timeline.add(record, process: process) }
        items += timeline.finish()
        var slices: [TraceTimeline.Slice] = []
        var tracks: [TraceTimeline.Track] = []
        var instants = 0
        for item in items {
            switch item {
            case .slice(let slice): slices.append(slice)
            case .track(let info): tracks.append(info.track)
            case .instant: instants += 1
            default: break
            }
        }
        #expect(instants == 2)
        #expect(tracks == [.thread(pid: 7, tid: 7), .thread(pid: 7, tid: 8), .thread(pid: 7, tid: 9),
                           .span(pid: 7, id: 3), .cpu(pid: 7, cpu: 1)])
        #expect(slices.map(\.name) == ["inner", "async", "lost", "outer"])
        #expect(slices[0].track == .thread(pid: 7, tid: 7) && slices[0].begin == 11 && slices[0].end == 13)
        #expect(slices[1].track == .span(pid: 7, id: 3) && slices[1].begin == 14 && slices[1].end == 20)
        #expect(slices[2].beginMissing && slices[2].begin == 5 && slices[2].end == 30)
        #expect(slices[3].end == nil && slices[3].begin == 10)
        #expect(timeline.counts.slices == 3 && timeline.counts.unfinishedSlices == 1 && timeline.counts.threadTracks == 3)
    }

    @Test("a traced program with spans exports to Perfetto: every event, every span, nesting intact, names resolved",
          .enabled(if: decoderAvailable, "needs /usr/bin/protoc and python3-protobuf (apt-get install protobuf-compiler python3-protobuf)"),
          .timeLimit(.minutes(2)))
    func spansExport() throws {
        let output = CTFEndToEndTests.temporaryDirectory("perfetto")
        let file = output + ".pftrace"
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output); CTFEndToEndTests.removeTree(file) }
        let example = HelperProcess.buildDirectory + "/rseqtrace-example"
        let run = try HelperProcess.run(HelperProcess.rseqtracePath,
                                        ["record", "--output", output, "--", example, "2", "500", "--spans"],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        let stats = try HelperProcess.runRseqtrace(["stats", "--spans", output], timeout: .seconds(60))
        let statsLine = try #require(stats.fields(of: "stats:"), "\(stats)")
        let spansLine = try #require(stats.fields(of: "spans:"), "\(stats)")
        let events = try #require(Int(statsLine["events"] ?? ""))
        let spans = try #require(Int(spansLine["spans"] ?? ""))
        #expect(spans == 2 * (5 + 50))
        let named = 2   // each worker names itself: an event that names a track, not an instant
        let export = try HelperProcess.runRseqtrace(["export", output, "--format", "perfetto", "-o", file], timeout: .seconds(60))
        #expect(export.exitCode == 0, "\(export)")
        #expect(export.stdout.hasPrefix("exported \(events - 2 * spans - named) events, \(spans) spans (0 unfinished)"), "\(export.stdout)")
        let check = try HelperProcess.run(CTFEndToEndTests.python, [Self.checker, file],
                                          environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        let fields = try #require(check.fields(of: "perfetto:"), "\(check)")
        #expect(fields["instants"] == "\(events - 2 * spans - named)")
        #expect(fields["slices"] == "\(spans)")
        #expect(fields["unfinished"] == "0")
        #expect(fields["processes"] == "1")
        #expect(fields["unresolved"] == "0" && fields["unknown_tracks"] == "0" && fields["nesting_errors"] == "0", "\(check.stdout)")

        // The Chrome export draws the same timeline: spans as complete events, the rest as instants.
        let json = output + ".json"
        defer { CTFEndToEndTests.removeTree(json) }
        let chrome = try HelperProcess.runRseqtrace(["export", output, "-o", json], timeout: .seconds(60))
        #expect(chrome.stdout.hasPrefix("exported \(events - 2 * spans - named) events, \(spans) spans (0 unfinished)"), "\(chrome.stdout)")
        let script = """
            import json, sys
            ev = json.load(open(sys.argv[1]))["traceEvents"]
            spans = [e for e in ev if e.get("cat") == "span"]
            ok = all(e["ph"] == "X" and e["dur"] >= 0 for e in spans)
            print(f"json: instants={sum(1 for e in ev if e['ph'] == 'i')} spans={len(spans)} well_formed={ok}")
            """
        let parsed = try HelperProcess.run(CTFEndToEndTests.python, ["-c", script, json],
                                           environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(parsed.fields(of: "json:") == ["instants": "\(events - 2 * spans - named)", "spans": "\(spans)", "well_formed": "True"],
                "\(parsed)")
    }

    @Test("discarded events become ranges and a per-CPU counter track",
          .enabled(if: decoderAvailable, "needs /usr/bin/protoc and python3-protobuf"),
          .timeLimit(.minutes(2)))
    func discardedCounter() throws {
        let output = CTFEndToEndTests.temporaryDirectory("perfetto-lost")
        let file = output + ".pftrace"
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output); CTFEndToEndTests.removeTree(file) }
        let demo = try CTFEndToEndTests.runDemo(["--threads", "2", "--events", "4000", "--mode", "overwrite",
                                                 "--buffer-size", "16K", "--subbuffer-size", "1K"], output: output)
        #expect(demo.lost > 0)
        let export = try HelperProcess.runRseqtrace(["export", output, "--format", "perfetto", "-o", file], timeout: .seconds(60))
        #expect(export.exitCode == 0, "\(export)")
        let check = try HelperProcess.run(CTFEndToEndTests.python, [Self.checker, file],
                                          environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        let fields = try #require(check.fields(of: "perfetto:"), "\(check)")
        #expect(fields["instants"] == "\(demo.recorded)")
        #expect(Int(fields["counters"] ?? "") ?? 0 > 0)
        #expect(Int(fields["counter_tracks"] ?? "") ?? 0 >= 1)
        #expect(fields["unresolved"] == "0" && fields["unknown_tracks"] == "0" && fields["nesting_errors"] == "0", "\(check.stdout)")
    }
}
