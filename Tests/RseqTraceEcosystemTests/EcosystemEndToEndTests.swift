import RseqTraceFormats
import Testing

/// The ecosystem backends end to end: programs that use only swift-log / swift-distributed-tracing,
/// recorded by `rseqtrace record`, every message and span checked in the trace with our reader and
/// with babeltrace2 (its text output and its Python bindings).
@Suite("Ecosystem backends end to end: recorded with rseqtrace record, read by our reader and babeltrace2", .serialized)
struct EcosystemEndToEndTests {
    static let helper = "rseqtrace-ecosystem-testhelper"
    static var hasBabeltrace: Bool { RecordedTrace.isExecutable(RecordedTrace.babeltrace) }

    @Test("logging: every message above the level recorded with its level, label, merged metadata and source; filtered ones not built",
          .timeLimit(.minutes(2)))
    func loggingScenario() throws {
        let output = RecordedTrace.directory("logging")
        defer { RecordedTrace.removeTree(output) }
        let (outcome, events) = try RecordedTrace.record(Self.helper, ["logging"], output: output)
        #expect(outcome.exitCode == 0, "\(outcome)")
        let said = try #require(RecordedTrace.fields(outcome.stdout, "ecosystem:"), "\(outcome)")
        #expect(said["ok"] == "1" && said["evaluated"] == "0" && said["stream"] == "2", "\(said)")
        #expect(events.allSatisfy { $0.name == "log:message" }, "\(events.map(\.name))")

        let base = "handler=h provided=p shared=provider"
        var expected: [(level: String, label: String, message: String, metadata: String)] = [
            ("info", "test.logging", "plain", base),
            ("info", "test.logging", "with metadata", "handler=h n=1 provided=p shared=explicit"),
        ]
        for level in ["trace", "debug", "info", "notice", "warning", "error", "critical"] {
            expected.append((level, "test.logging", "level \(level)", base))
        }
        expected.append(("error", "test.logging", "failed",
                         "error.message=helper failure 7 error.type=rseqtrace_ecosystem_testhelper.HelperError " + base))
        expected.append(("info", "test.logging", "nested", "handler=h list=[\"a\", \"b\"] map=[\"k\": \"v\"] provided=p shared=provider"))
        // 600 two-byte characters cut to the field's 1024 bytes: 512 whole characters.
        expected.append(("notice", "test.logging", String(repeating: "é", count: 512), base))
        // The multiplexed handler records at .warning only; its StreamLogHandler printed both messages.
        expected.append(("warning", "test.multiplex", "to both", "m=1"))

        #expect(events.count == expected.count, "\(events.map { $0.text("message") })")
        for (event, want) in zip(events, expected) {
            #expect(event.label("level") == want.level)
            #expect(event.text("label") == want.label)
            #expect(event.text("message") == want.message)
            #expect(event.text("metadata") == want.metadata)
            #expect(event.text("source") == "rseqtrace_ecosystem_testhelper")
            #expect(event.text("file") == "rseqtrace_ecosystem_testhelper/main.swift")
            #expect(event.text("function") == "logging()")
        }
        // Source lines: in program order, one line for the loop over the levels.
        let lines = events.compactMap { $0.unsigned("line") }
        #expect(lines.count == events.count && lines.allSatisfy { $0 > 0 })
        #expect(Set(lines[2..<9]).count == 1 && lines[1] > lines[0] && lines[9] > lines[2])

        if Self.hasBabeltrace {
            let counts = try RecordedTrace.babeltraceCounts(output)
            #expect(counts == ["log:message": expected.count], "\(counts)")
            let bt2 = try RecordedTrace.bt2Summary(output)
            #expect(bt2["events"] == "\(expected.count)" && bt2["log"] == "\(expected.count)" && bt2["discarded"] == "0", "\(bt2)")
        }
    }

    /// A span read back: its four events' fields.
    struct ReadSpan {
        var name = ""
        var operation = ""
        var traceID = ""
        var parent: UInt64 = 0
        var kind = ""
        var startNanoseconds: UInt64 = 0
        var status = ""
        var statusMessage = ""
        var attributes = ""
        var duration: UInt64?
        var sliceDuration: UInt64?
        var endName = ""
        var begins = 0, starts = 0, ends = 0, sliceEnds = 0
    }

    /// Spans by id, from the `rseqtrace:span_*` and `tracing:span_*` events of `events`.
    static func spans(_ events: [CTFEvent]) -> [UInt64: ReadSpan] {
        var spans: [UInt64: ReadSpan] = [:]
        for event in events {
            switch event.name {
            case "rseqtrace:span_begin":
                guard let id = event.unsigned("id") else { continue }
                spans[id, default: ReadSpan()].name = event.text("name")
                spans[id, default: ReadSpan()].begins += 1
            case "rseqtrace:span_end":
                guard let id = event.unsigned("id") else { continue }
                spans[id, default: ReadSpan()].endName = event.text("name")
                spans[id, default: ReadSpan()].sliceDuration = event.unsigned("duration_ns")
                spans[id, default: ReadSpan()].sliceEnds += 1
            case "tracing:span_start":
                guard let id = event.unsigned("span_id") else { continue }
                var span = spans[id, default: ReadSpan()]
                span.operation = event.text("operation")
                span.traceID = event.text("trace_id")
                span.parent = event.unsigned("parent_span_id") ?? 0
                span.kind = event.label("kind") ?? ""
                span.startNanoseconds = event.unsigned("start_ns") ?? 0
                span.starts += 1
                spans[id] = span
            case "tracing:span_end":
                guard let id = event.unsigned("span_id") else { continue }
                var span = spans[id, default: ReadSpan()]
                span.status = event.label("status") ?? ""
                span.statusMessage = event.text("status_message")
                span.attributes = event.text("attributes")
                span.duration = event.unsigned("duration_ns")
                span.ends += 1
                spans[id] = span
            default:
                continue
            }
        }
        return spans
    }

    @Test("tracing: spans nest by context (sync, async, detached, remote), carry attributes, events, errors, status, links and exact durations",
          .timeLimit(.minutes(2)))
    func tracingScenario() throws {
        let output = RecordedTrace.directory("tracing")
        defer { RecordedTrace.removeTree(output) }
        let (outcome, events) = try RecordedTrace.record(Self.helper, ["tracing"], output: output)
        #expect(outcome.exitCode == 0, "\(outcome)")
        let said = try #require(RecordedTrace.fields(outcome.stdout, "ecosystem:"), "\(outcome)")
        #expect(said["ok"] == "1", "\(said)")
        func id(_ key: String) throws -> UInt64 { try #require(said[key].flatMap { UInt64($0) }, "\(key) in \(said)") }
        let root = try id("root"), child = try id("child"), failing = try id("failing")
        let asyncParent = try id("async_parent"), asyncChild = try id("async_child"), detached = try id("detached")
        let timed = try id("timed"), remoteChild = try id("remote_child")

        let spans = Self.spans(events)
        #expect(Set(spans.keys) == [root, child, failing, asyncParent, asyncChild, detached, timed, remoteChild])
        for (spanID, span) in spans {
            // Every span has its four events once, and the two durations agree.
            #expect(span.begins == 1 && span.starts == 1 && span.ends == 1 && span.sliceEnds == 1, "\(spanID): \(span)")
            #expect(span.duration != nil && span.duration == span.sliceDuration, "\(spanID): \(span)")
            #expect(span.name == span.operation, "\(spanID): \(span)")
        }
        let traceID = try #require(said["trace"])
        #expect(traceID.utf8.count == 32 && spans[root]?.traceID == traceID)
        #expect(traceID.hasSuffix(String(root, radix: 16).leftPadded(to: 16)), "a root's trace id ends with its span id")

        // Synchronous nesting.
        #expect(spans[root]?.parent == 0 && spans[root]?.kind == "server")
        #expect(spans[child]?.parent == root && spans[child]?.traceID == traceID && spans[child]?.kind == "internal")
        #expect(spans[failing]?.parent == root && spans[failing]?.traceID == traceID && spans[failing]?.kind == "client")
        #expect(spans[root]?.attributes == "a=1 b=x list=[1, 2]")
        #expect(spans[root]?.status == "ok" && spans[root]?.statusMessage == "", "ok is final")
        #expect(spans[failing]?.status == "error" && spans[child]?.status == "unset")

        // Async: the child task inherits the context; a detached task starts a new trace.
        #expect(spans[asyncParent]?.parent == 0 && spans[asyncParent]?.traceID != traceID)
        #expect(spans[asyncChild]?.parent == asyncParent && spans[asyncChild]?.traceID == spans[asyncParent]?.traceID)
        #expect(spans[detached]?.parent == 0 && spans[detached]?.traceID != spans[asyncParent]?.traceID)

        // Explicit instants and a rename.
        #expect(spans[timed]?.startNanoseconds == 1_000_000_000_000 && spans[timed]?.duration == 12_345)
        #expect(spans[timed]?.name == "timed" && spans[timed]?.endName == "timed renamed")

        // A remote parent continues its trace; inject writes the local span.
        #expect(spans[remoteChild]?.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(spans[remoteChild]?.parent == 0xb7ad_6b71_6920_3331 && spans[remoteChild]?.kind == "consumer")
        #expect(said["injected"] == "00-0af7651916cd43dd8448eb211c80319c-\(String(remoteChild, radix: 16).leftPadded(to: 16))-01")

        // Events, errors and links.
        let spanEvents = events.filter { $0.name == "tracing:span_event" }
        #expect(spanEvents.count == 1)
        #expect(spanEvents.first?.unsigned("span_id") == child && spanEvents.first?.text("name") == "checkpoint")
        #expect(spanEvents.first?.text("attributes") == "ok=true" && spanEvents.first?.unsigned("time_ns") == 42)
        let errors = events.filter { $0.name == "tracing:span_error" }
        #expect(errors.count == 1)
        #expect(errors.first?.unsigned("span_id") == failing && errors.first?.text("message") == "helper failure 3")
        #expect(errors.first?.text("type") == "rseqtrace_ecosystem_testhelper.HelperError")
        let links = events.filter { $0.name == "tracing:span_link" }
        #expect(links.count == 1)
        #expect(links.first?.unsigned("span_id") == remoteChild && links.first?.unsigned("linked_span_id") == timed)
        #expect(links.first?.text("trace_id") == spans[timed]?.traceID)

        // The slices are what stats --spans and the viewers read.
        let stats = try RecordedTrace.run(RecordedTrace.buildDirectory + "/rseqtrace", ["stats", "--spans", output])
        #expect(RecordedTrace.fields(stats.stdout, "spans:") == ["spans": "8", "names": "8", "unmatched_begins": "0",
                                                                "orphan_ends": "0"], "\(stats)")
        if Self.hasBabeltrace {
            let counts = try RecordedTrace.babeltraceCounts(output)
            #expect(counts == ["rseqtrace:span_begin": 8, "rseqtrace:span_end": 8, "tracing:span_start": 8,
                               "tracing:span_end": 8, "tracing:span_event": 1, "tracing:span_error": 1,
                               "tracing:span_link": 1], "\(counts)")
            let bt2 = try RecordedTrace.bt2Summary(output)
            #expect(bt2 == ["events": "35", "log": "0", "starts": "8", "ends": "8", "begins": "8", "slice_ends": "8",
                            "span_events": "1", "errors": "1", "links": "1", "unmatched": "0", "name_mismatch": "0",
                            "bad_parent": "0", "bad_trace": "0", "duration_mismatch": "0", "discarded": "0"], "\(bt2)")
        }
    }

    @Test("--disable chooses the events: only slices, only the tracing events, or no log messages",
          .timeLimit(.minutes(2)))
    func disabledEvents() throws {
        let output = RecordedTrace.directory("disabled")
        defer { RecordedTrace.removeTree(output) }
        // Without the tracing:* events, each span is its slice pair, and nothing else is recorded.
        var (outcome, events) = try RecordedTrace.record(Self.helper, ["tracing"], options: ["--disable", "tracing:*"], output: output)
        #expect(outcome.exitCode == 0, "\(outcome)")
        var counts: [String: Int] = [:]
        for event in events { counts[event.name, default: 0] += 1 }
        #expect(counts == ["rseqtrace:span_begin": 8, "rseqtrace:span_end": 8], "\(counts)")
        // Without the slices, every tracing event is still there.
        (outcome, events) = try RecordedTrace.record(Self.helper, ["tracing"], options: ["--disable", "rseqtrace:span_*"], output: output)
        #expect(outcome.exitCode == 0, "\(outcome)")
        counts = [:]
        for event in events { counts[event.name, default: 0] += 1 }
        #expect(counts == ["tracing:span_start": 8, "tracing:span_end": 8, "tracing:span_event": 1, "tracing:span_error": 1,
                           "tracing:span_link": 1], "\(counts)")
        // A disabled log:message records nothing (and the program still runs its multiplexed stream).
        (outcome, events) = try RecordedTrace.record(Self.helper, ["logging"], options: ["--disable", "log:*"], output: output)
        #expect(outcome.exitCode == 0 && events.isEmpty, "\(outcome)")
        #expect(RecordedTrace.fields(outcome.stdout, "ecosystem:")?["stream"] == "2", "\(outcome)")
    }

    @Test("RseqTraceBootstrap: both systems bootstrapped, a second handler gets every message, span ids in the metadata",
          .timeLimit(.minutes(2)))
    func bootstrapScenario() throws {
        let output = RecordedTrace.directory("bootstrap")
        defer { RecordedTrace.removeTree(output) }
        let (outcome, events) = try RecordedTrace.record(Self.helper, ["bootstrap"], output: output)
        #expect(outcome.exitCode == 0, "\(outcome)")
        let said = try #require(RecordedTrace.fields(outcome.stdout, "ecosystem:"), "\(outcome)")
        let span = try #require(said["span"]), trace = try #require(said["trace"])
        #expect(span.utf8.count == 16 && trace.utf8.count == 32, "\(said)")
        let messages = events.filter { $0.name == "log:message" }
        #expect(messages.map { $0.text("message") } == ["outside", "inside"])
        #expect(messages.map { $0.label("level") } == ["debug", "info"])
        #expect(messages.map { $0.text("metadata") } == ["", "span_id=\(span) trace_id=\(trace)"])
        #expect(messages.allSatisfy { $0.text("label") == "test.bootstrap" })
        // The span went through the bootstrapped InstrumentationSystem.
        let spans = Self.spans(events)
        #expect(spans.count == 1 && spans[UInt64(span, radix: 16) ?? 0]?.name == "outer", "\(spans)")
        // The second handler (StreamLogHandler on standard output) printed the same two messages.
        let printed = outcome.stdout.split(separator: "\n").filter { $0.contains("test.bootstrap") }
        #expect(printed.count == 2 && printed[0].hasSuffix("outside") && printed[1].hasSuffix("inside")
                && printed[1].contains("span_id=\(span)"), "\(printed)")
        // The bootstrapped MetricsSystem: a per-CPU counter whose final sample is in the trace.
        #expect(Self.finalCounterValues(events) == ["test.bootstrap": 7], "\(events.map(\.name))")
    }

    /// The value of each counter's last `metrics:counter` sample.
    static func finalCounterValues(_ events: [CTFEvent]) -> [String: Int64] {
        var values: [String: Int64] = [:]
        for event in events where event.name == "metrics:counter" {
            if case .signed(let value)? = event[field: "value"] { values[event.text("name")] = value }
        }
        return values
    }

    @Test("metrics: per-CPU counters exact in the trace (final samples, never decreasing), the other metrics as events",
          .timeLimit(.minutes(2)))
    func metricsScenario() throws {
        let output = RecordedTrace.directory("metrics")
        defer { RecordedTrace.removeTree(output) }
        let (outcome, events) = try RecordedTrace.record(Self.helper, ["metrics"], output: output)
        #expect(outcome.exitCode == 0, "\(outcome)")
        let said = try #require(RecordedTrace.fields(outcome.stdout, "ecosystem:"), "\(outcome)")
        #expect(said["ok"] == "1" && said["problems"] == "0" && said["requests_handler"] == "percpu:slot", "\(said)")
        let expectedCounters: [String: Int64] = ["test.requests": 40000, "test.bytes{kind=body}": 35, "test.reset": 3]
        #expect(Self.finalCounterValues(events) == expectedCounters)
        // Samples of one counter never decrease (test.reset excepted: it was reset).
        var last: [String: Int64] = [:]
        for event in events where event.name == "metrics:counter" {
            guard case .signed(let value)? = event[field: "value"] else { Issue.record("\(event)"); continue }
            let name = event.text("name")
            if name != "test.reset", let previous = last[name] { #expect(value >= previous, "\(name): \(previous) then \(value)") }
            last[name] = value
        }
        func doubles(_ name: String, _ field: String) -> [Double] {
            events.filter { $0.name == name }.compactMap {
                if case .float64(let value)? = $0[field: field] { return value }
                return nil
            }
        }
        #expect(doubles("metrics:fp_counter", "amount") == [0.5, 0.5, 0.5, 0.5])
        #expect(events.filter { $0.name == "metrics:fp_counter" }.allSatisfy { $0.text("name") == "test.fp" })
        #expect(doubles("metrics:recorder", "value") == [42.5, 7, 3, 4.25])
        #expect(events.filter { $0.name == "metrics:recorder" }.map { $0.text("name") }
                == ["test.gauge", "test.gauge", "test.recorder", "test.recorder"])
        #expect(doubles("metrics:meter", "value") == [10, 2.5, 1])
        #expect(events.filter { $0.name == "metrics:meter" }.compactMap { $0.label("change") } == ["set", "increment", "decrement"])
        let timers = events.filter { $0.name == "metrics:timer" }.compactMap { event -> Int64? in
            if case .signed(let value)? = event[field: "duration_ns"] { return value }
            return nil
        }
        #expect(timers == [1500, 2500])
        let samples = events.filter { $0.name == "metrics:counter" }.count

        // stats lists each counter with its last sample; the exports draw one counter track each.
        let rseqtrace = RecordedTrace.buildDirectory + "/rseqtrace"
        let stats = try RecordedTrace.run(rseqtrace, ["stats", output])
        #expect(stats.exitCode == 0, "\(stats)")
        let rows = stats.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        for (name, value) in expectedCounters {
            #expect(rows.contains { $0.count == 3 && $0[0] == name && $0[1] == "\(value)" }, "\(name): \(stats.stdout)")
        }
        #expect(stats.stdout.contains("counters: count=3"), "\(stats.stdout)")
        let perfetto = output + ".perfetto-trace"
        defer { RecordedTrace.removeTree(perfetto) }
        let export = try RecordedTrace.run(rseqtrace, ["export", "--format", "perfetto", output, "--output", perfetto])
        #expect(export.exitCode == 0, "\(export)")
        // The independent decoder needs protoc (its Python modules are checked by the decoder itself).
        if RecordedTrace.isExecutable("/usr/bin/protoc") {
            let decoded = try RecordedTrace.run(RecordedTrace.python, [RecordedTrace.packageRoot + "/Tools/python/check_perfetto.py", perfetto])
            #expect(decoded.exitCode == 0, "\(decoded)")
            let summary = try #require(RecordedTrace.fields(decoded.stdout, "perfetto:"), "\(decoded)")
            #expect(summary["counters"] == "\(samples)" && summary["counter_tracks"] == "3" && summary["unknown_tracks"] == "0"
                    && summary["unresolved"] == "0", "\(decoded.stdout)")
        }
        let chrome = output + ".json"
        defer { RecordedTrace.removeTree(chrome) }
        let chromeExport = try RecordedTrace.run(rseqtrace, ["export", output, "--output", chrome])
        #expect(chromeExport.exitCode == 0, "\(chromeExport)")

        if Self.hasBabeltrace {
            let counts = try RecordedTrace.babeltraceCounts(output)
            #expect(counts == ["metrics:counter": samples, "metrics:fp_counter": 4, "metrics:recorder": 4, "metrics:meter": 3,
                               "metrics:timer": 2], "\(counts)")
            let script = RecordedTrace.packageRoot + "/Tools/python/check_metrics_trace.py"
            let bt2Run = try RecordedTrace.run(RecordedTrace.python, [script, output])
            #expect(bt2Run.exitCode == 0, "\(bt2Run)")
            let bt2 = try #require(RecordedTrace.fields(bt2Run.stdout, "bt2:"), "\(bt2Run)")
            #expect(bt2["samples"] == "\(samples)" && bt2["fp_counter"] == "4" && bt2["recorder"] == "4"
                    && bt2["meter"] == "3" && bt2["timer"] == "2" && bt2["timer_ns"] == "4000" && bt2["discarded"] == "0", "\(bt2)")
            let counters = bt2Run.stdout.split(separator: "\n").filter { $0.hasPrefix("bt2-counter: ") }
                .map { $0.dropFirst("bt2-counter: ".count).split(separator: " ", maxSplits: 1) }
            #expect(Dictionary(uniqueKeysWithValues: counters.map { (String($0.last ?? ""), Int64($0.first ?? "") ?? -1) })
                    == expectedCounters, "\(bt2Run.stdout)")
        }
    }

    @Test("example server: every request's three spans, parent links across the injected traceparent, and every log message",
          .timeLimit(.minutes(3)))
    func exampleServer() throws {
        let output = RecordedTrace.directory("server")
        defer { RecordedTrace.removeTree(output) }
        let requests = 90, failEvery = 7
        let (outcome, events) = try RecordedTrace.record(
            "rseqtrace-example-server", ["\(requests)", "--concurrency", "3", "--fail-every", "\(failEvery)"], output: output)
        #expect(outcome.exitCode == 0, "\(outcome)")
        let failures = (0..<requests).filter { $0 % failEvery == failEvery - 1 }
        #expect(outcome.stdout.contains("rseqtrace-example-server: requests=\(requests) failed=\(failures.count) concurrency=3"),
                "\(outcome.stdout)")
        // Per request: 3 spans of 4 events, 1 span event, 2 messages; a failure adds 2 span errors.
        // Plus the start and stop messages.
        let total = requests * (3 * 4 + 1 + 2) + 2 * failures.count + 2
        // Each query is timed (a metrics:timer event); the counters are samples the recorder writes.
        #expect(outcome.stdout.contains("recorded \(total + requests) events, lost 0"), "\(outcome.stdout)")
        let samples = events.filter { $0.name == "metrics:counter" }.count
        #expect(events.filter { $0.name == "metrics:timer" }.count == requests)
        #expect(events.count == total + requests + samples)
        #expect(Self.finalCounterValues(events) == ["items.requests": Int64(requests),
                                                   "items.requests{status=404}": Int64(failures.count)])

        // Every message, by request.
        let messages = events.filter { $0.name == "log:message" }
        #expect(messages.count == 2 * requests + 2)
        #expect(messages.first?.text("message") == "server started"
                && messages.first?.text("metadata") == "concurrency=3 requests=\(requests) service=items")
        #expect(messages.last?.text("message") == "server stopped"
                && messages.last?.text("metadata") == "failed=\(failures.count) service=items")
        var byRequest: [String: [String]] = [:]
        for message in messages.dropFirst().dropLast() {
            #expect(message.text("label") == "example.server")
            byRequest[message.text("metadata"), default: []].append("\(message.label("level") ?? "?") \(message.text("message"))")
        }
        for request in 0..<requests {
            #expect(byRequest["request=\(request) service=items"] == ["info request received"], "request \(request)")
            if failures.contains(request) {
                let metadata = "error.message=item \(request) not found error.type=rseqtrace_example_server.ItemNotFound request=\(request) service=items status=404"
                #expect(byRequest[metadata] == ["warning request failed"], "request \(request)")
            } else {
                #expect(byRequest["request=\(request) service=items status=200"] == ["info request handled"], "request \(request)")
            }
        }
        #expect(!messages.contains { $0.label("level") == "debug" })

        // Every request's spans: client -> server (through the injected header) -> db.query, one trace.
        let spans = Self.spans(events)
        #expect(spans.count == 3 * requests)
        var clients: [String: UInt64] = [:]   // request id -> client span id
        for (spanID, span) in spans {
            #expect(span.begins == 1 && span.starts == 1 && span.ends == 1 && span.sliceEnds == 1, "\(spanID): \(span)")
            #expect(span.duration == span.sliceDuration && span.name == span.operation)
            if span.name == "client GET /items" {
                #expect(span.parent == 0 && span.kind == "client")
                clients[span.attributes] = spanID
            }
        }
        for request in 0..<requests {
            let failed = failures.contains(request)
            let client = try #require(clients["request.id=\(request)"], "request \(request)")
            let servers = spans.filter { $0.value.parent == client }
            #expect(servers.count == 1)
            guard let (serverID, server) = servers.first else { continue }
            #expect(server.name == "GET /items" && server.kind == "server" && server.traceID == spans[client]?.traceID)
            #expect(server.status == (failed ? "error" : "ok"))
            #expect(server.attributes == "http.method=GET http.status_code=\(failed ? 404 : 200) http.target=/items/\(request)"
                    + (failed ? "" : " items.count=\(request % 7)"))
            let queries = spans.filter { $0.value.parent == serverID }
            #expect(queries.count == 1 && queries.first?.value.name == "db.query" && queries.first?.value.kind == "client")
            #expect(queries.first?.value.traceID == server.traceID)
            #expect(queries.first?.value.status == (failed ? "error" : "unset"))
            #expect(queries.first?.value.attributes == "db.id=\(request) db.statement=SELECT * FROM items WHERE id = ?")
        }
        let errors = events.filter { $0.name == "tracing:span_error" }
        #expect(errors.count == 2 * failures.count && errors.allSatisfy { $0.text("type") == "rseqtrace_example_server.ItemNotFound" })

        // The slices: stats --spans, and the Perfetto export draws them.
        let stats = try RecordedTrace.run(RecordedTrace.buildDirectory + "/rseqtrace", ["stats", "--spans", output])
        #expect(RecordedTrace.fields(stats.stdout, "spans:") == ["spans": "\(3 * requests)", "names": "3",
                                                                "unmatched_begins": "0", "orphan_ends": "0"], "\(stats)")
        let perfetto = output + ".perfetto-trace"
        defer { RecordedTrace.removeTree(perfetto) }
        let export = try RecordedTrace.run(RecordedTrace.buildDirectory + "/rseqtrace",
                                           ["export", "--format", "perfetto", output, "--output", perfetto])
        #expect(export.exitCode == 0, "\(export)")
        #expect(export.stdout.contains("\(3 * requests) spans (0 unfinished)"), "\(export)")

        if Self.hasBabeltrace {
            let counts = try RecordedTrace.babeltraceCounts(output)
            #expect(counts == ["log:message": 2 * requests + 2, "rseqtrace:span_begin": 3 * requests,
                               "rseqtrace:span_end": 3 * requests, "tracing:span_start": 3 * requests,
                               "tracing:span_end": 3 * requests, "tracing:span_event": requests,
                               "tracing:span_error": 2 * failures.count, "metrics:timer": requests,
                               "metrics:counter": samples], "\(counts)")
            let bt2 = try RecordedTrace.bt2Summary(output)
            #expect(bt2["events"] == "\(total + requests + samples)" && bt2["unmatched"] == "0" && bt2["name_mismatch"] == "0"
                    && bt2["bad_parent"] == "0" && bt2["bad_trace"] == "0" && bt2["duration_mismatch"] == "0"
                    && bt2["discarded"] == "0", "\(bt2)")
        }
    }
}

extension String {
    /// The string with zeros in front up to `count` characters.
    func leftPadded(to count: Int) -> String { String(repeating: "0", count: Swift.max(0, count - self.count)) + self }
}
