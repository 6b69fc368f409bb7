import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

/// Spans: `TraceSpan` / `withTraceSpan` in a traced program, and `SpanTable` (`stats --spans`).
@Suite("Spans")
struct SpanTests {
    private static func event(_ name: String, at timestamp: UInt64, _ fields: [(String, CTFValue)]) -> CTFEvent {
        CTFEvent(stream: "channel0_0", streamInstanceID: 0, cpuID: 0, id: 0, name: name, timestamp: timestamp,
                 realtime: Int64(timestamp) + 1_000_000_000, fields: fields.map { CTFFieldValue(name: $0.0, value: $0.1) },
                 offset: 0)
    }

    private static func begin(_ name: String, id: UInt64, at t: UInt64) -> CTFEvent {
        event(SpanTable.beginEventName, at: t, [("name", .string(name)), ("id", .unsigned(id))])
    }

    private static func end(_ name: String, id: UInt64, at t: UInt64, measured: UInt64) -> CTFEvent {
        event(SpanTable.endEventName, at: t, [("name", .string(name)), ("id", .unsigned(id)), ("duration_ns", .unsigned(measured))])
    }

    @Test("SpanTable pairs begins and ends by id, keeps orphan ends and unmatched begins apart, ranks percentiles")
    func spanTablePairs() {
        var table = SpanTable()
        // Five "a" spans of 10, 20, 30, 40, 1000 ns, interleaved with one "b" span enclosing them.
        table.add(Self.begin("b", id: 100, at: 1))
        var t: UInt64 = 10
        for (index, length) in [10, 20, 30, 40, 1000].enumerated() {
            table.add(Self.begin("a", id: UInt64(index + 1), at: t))
            table.add(Self.end("a", id: UInt64(index + 1), at: t + UInt64(length), measured: UInt64(length) - 1))
            t += 2000
        }
        table.add(Self.end("b", id: 100, at: t, measured: 5))
        table.add(Self.end("c", id: 7, at: t + 1, measured: 77))           // its begin is not in the trace
        table.add(Self.begin("d", id: 8, at: t + 2))                       // never ends
        table.add(Self.event("example:work", at: t + 3, [("id", .unsigned(8))]))   // not a span event
        table.add(Self.event(SpanTable.endEventName, at: t + 4, [("name", .string("e"))]))   // no id

        #expect(table.spans.count == 7)
        #expect(table.orphanEnds == 1)
        #expect(table.malformed == 1)
        #expect(table.unmatchedBegins.map(\.id) == [8])
        let summaries = table.summaries()
        #expect(summaries.map(\.name) == ["a", "b", "c"])
        // Durations come from the timestamps when both events are there, from duration_ns otherwise.
        #expect(summaries[0] == SpanTable.NameSummary(name: "a", count: 5, p50: 30, p99: 1000, max: 1000, total: 1100))
        #expect(summaries[1].max == t - 1)
        #expect(summaries[2].max == 77)
        #expect(table.longest(2).map(\.id) == [100, 5])
        let report = table.report(timeOfDay: { "\($0)" })
        #expect(report.last == "spans: spans=7 names=3 unmatched_begins=1 orphan_ends=1")
    }

    /// `(vtid-or-block, begin, end, name, id, duration_ns)` of each span in a trace, from our reader.
    private struct ReadSpan {
        var name: String
        var id: UInt64
        var begin: UInt64
        var end: UInt64
        var measured: UInt64
    }

    @Test("a traced program's nested spans pair up, nest per thread, and measure within their events",
          .timeLimit(.minutes(2)))
    func tracedSpansNest() throws {
        let output = CTFEndToEndTests.temporaryDirectory("spans")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let example = HelperProcess.buildDirectory + "/rseqtrace-example"
        let threads = 3, events = 1050
        let run = try HelperProcess.run(HelperProcess.rseqtracePath,
                                        ["record", "--output", output, "--", example, "\(threads)", "\(events)", "--spans"],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        // Per worker: 1 rseqtrace:thread_name, 1 example:worker, `events` example:work, 11 batches
        // (100 x 10 + 50), 105 steps.
        let batches = (events + 99) / 100, steps = (events + 9) / 10
        let perWorker = 2 + events + 2 * (batches + steps)
        #expect(run.stdout.contains("recorded \(threads * perWorker) events, lost 0"), "\(run.stdout)")

        var begins: [UInt64: (name: String, at: UInt64)] = [:]
        var spans: [ReadSpan] = []
        for record in try CTFTraceReader(directory: output).readAll() {
            guard case .event(let event) = record else { continue }
            guard case .unsigned(let id)? = event[field: "id"], case .string(let name)? = event[field: "name"] else { continue }
            if event.name == SpanTable.beginEventName {
                #expect(begins[id] == nil, "span id \(id) began twice")
                begins[id] = (name, event.timestamp)
            } else if event.name == SpanTable.endEventName, case .unsigned(let measured)? = event[field: "duration_ns"] {
                guard let begun = begins.removeValue(forKey: id) else {
                    Issue.record("span id \(id) ended without a begin")
                    continue
                }
                #expect(begun.name == name)
                spans.append(ReadSpan(name: name, id: id, begin: begun.at, end: event.timestamp, measured: measured))
            }
        }
        #expect(begins.isEmpty, "unmatched begins: \(begins)")
        #expect(spans.count == threads * (batches + steps))
        #expect(spans.filter { $0.name == "example:batch" }.count == threads * batches)
        for span in spans {
            #expect(span.end >= span.begin)
            // The span measures itself between its two events' timestamps (1 ns for rounding).
            #expect(span.measured <= span.end - span.begin + 1, "\(span)")
        }
        // A thread's spans carry its id block (the high 32 bits): within one block, every step lies
        // inside exactly one batch, and batches do not overlap.
        let byThread = Dictionary(grouping: spans, by: { $0.id >> 32 })
        #expect(byThread.count == threads)
        for (_, own) in byThread {
            let ownBatches = own.filter { $0.name == "example:batch" }.sorted { $0.begin < $1.begin }
            #expect(ownBatches.count == batches)
            for (earlier, later) in zip(ownBatches, ownBatches.dropFirst()) { #expect(earlier.end <= later.begin) }
            for step in own where step.name == "example:step" {
                let parents = ownBatches.filter { $0.begin <= step.begin && step.end <= $0.end }
                #expect(parents.count == 1, "step \(step.id) is not inside one batch")
            }
        }

        // stats --spans reports the same spans.
        let stats = try HelperProcess.runRseqtrace(["stats", "--spans", output], timeout: .seconds(60))
        #expect(stats.exitCode == 0, "\(stats)")
        let line = stats.fields(of: "spans:")
        #expect(line == ["spans": "\(spans.count)", "names": "2", "unmatched_begins": "0", "orphan_ends": "0"],
                "\(stats.stdout)")
    }

    /// Tools/python/check_thread_context.py of this source tree.
    static let threadChecker: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)   // Tests/RseqTraceTests/SpanTests.swift
        return parts.joined(separator: "/") + "/Tools/python/check_thread_context.py"
    }()

    @Test("every event names its thread: bt2 sees each worker's own tid as vtid and the program's pid as vpid; view --tid, stats and the Perfetto export agree",
          .enabled(if: HelperProcess.isExecutable(CTFEndToEndTests.python), "needs /usr/bin/python3 with bt2 (python3-bt2)"),
          .timeLimit(.minutes(2)))
    func eventsNameTheirThread() throws {
        let output = CTFEndToEndTests.temporaryDirectory("threads")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let example = HelperProcess.buildDirectory + "/rseqtrace-example"
        let threads = 3, events = 500
        let run = try HelperProcess.run(HelperProcess.rseqtracePath,
                                        ["record", "--output", output, "--", example, "\(threads)", "\(events)", "--spans"],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        let spans = threads * (5 + 50)
        let total = threads * (2 + events) + 2 * spans   // each worker also names itself
        let check = try HelperProcess.run(CTFEndToEndTests.python, [Self.threadChecker, output],
                                          environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(check.fields(of: "threads:") == ["events": "\(total)", "workers": "\(threads)",
                                                  "work_checked": "\(threads * (1 + events))", "span_checked": "\(2 * spans)",
                                                  "mismatched": "0", "missing_context": "0"], "\(check)")

        // stats: one row per thread, each with its worker's events and spans.
        let stats = try HelperProcess.runRseqtrace(["stats", output], timeout: .seconds(60))
        #expect(stats.fields(of: "threads:") == ["count": "\(threads)"], "\(stats.stdout)")
        for worker in 0..<threads {
            #expect(stats.stdoutLines.contains { $0.hasSuffix("  example-w\(worker)") }, "each worker's row carries its name: \(stats.stdout)")
        }
        // view --tid: exactly one worker's events, each line naming that thread.
        let first = try HelperProcess.runRseqtrace(["view", output, "--event", "example:worker", "--limit", "1"], timeout: .seconds(60))
        let line = try #require(first.stdoutLines.first, "\(first)")
        let parts = line.split(separator: " ")
        let tidIndex = try #require(parts.firstIndex(of: "tid"), "\(line)")
        let tid = try #require(Int32(parts[tidIndex + 1]), "\(line)")
        #expect(line.contains("tid = \(tid) "), "the worker's own tid field equals the line's tid: \(line)")
        let own = try HelperProcess.runRseqtrace(["view", output, "--tid", "\(tid)"], timeout: .seconds(60))
        #expect(own.stdoutLines.count == 2 + events + 2 * (spans / threads), "\(own.stdoutLines.count) lines")
        #expect(own.stdoutLines.allSatisfy { $0.contains(" tid \(tid) ") })

        // Perfetto: one track per worker thread, holding its events and its spans.
        guard PerfettoExportTests.decoderAvailable else { return }
        let file = output + "/../threads.pftrace"
        defer { CTFEndToEndTests.removeTree(file) }
        let export = try HelperProcess.runRseqtrace(["export", output, "--format", "perfetto", "-o", file], timeout: .seconds(60))
        #expect(export.exitCode == 0, "\(export)")
        let decoded = try HelperProcess.run(CTFEndToEndTests.python, [PerfettoExportTests.checker, file],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(decoded.fields(of: "perfetto:")?["thread_tracks"] == "\(threads)", "\(decoded)")
        let rows = decoded.stdoutLines.filter { $0.hasPrefix("thread: ") }.map { HelperProcess.parseFields($0.dropFirst(8)) }
        #expect(rows.count == threads && rows.allSatisfy { $0["instants"] == "\(1 + events)" && $0["slices"] == "\(spans / threads)" },
                "\(decoded.stdout)")
        #expect(rows.contains { $0["tid"] == "\(tid)" }, "\(decoded.stdout)")
        #expect(rows.allSatisfy { $0["name"]?.hasPrefix("example-w") == true }, "threads carry their names: \(decoded.stdout)")
    }

    @Test("a thread name that is not plain text is kept readable: quotes, backslashes and control characters do not break the metadata")
    func hostileThreadNames() throws {
        let directory = CTFEndToEndTests.temporaryDirectory("thread-names")
        CTFEndToEndTests.removeTree(directory)
        defer { CTFEndToEndTests.removeTree(directory) }
        let clock = CycleClock(frequency: 1_000_000_000, cycleReference: 0, monotonicReference: 0, realtimeReference: 0)
        let description = CTFTraceDescription(uuid: Array(repeating: 3, count: 16), clock: clock, bootID: Array(repeating: 7, count: 16),
                                              hostname: "host", traceName: "names", procname: "p", pid: 9, cpuRingCount: 1, schemas: [:])
        let writer = try CTFTraceWriter(directory: directory, description: description)
        writer.nameThread(10, "a\"b\\c};\nenv")
        writer.nameThread(11, "plain")
        try writer.append(ring: 0, eventID: 5, cycles: 1, processID: 9, threadID: 10, payload: [1])
        _ = try writer.finish()
        let reader = try CTFTraceReader(directory: directory)
        #expect(reader.metadata.threadNames == [10: "a\"b\\c};_env", 11: "plain"])
        #expect(reader.metadata.environmentValue("procname") == .string("p"))
        let events = try reader.readAll().compactMap { record -> CTFEvent? in
            if case .event(let event) = record { return event }
            return nil
        }
        #expect(events.count == 1 && TraceTimeline.thread(of: events[0])?.tid == 10 && TraceTimeline.thread(of: events[0])?.pid == 9)
    }
}

