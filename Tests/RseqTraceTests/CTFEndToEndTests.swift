import Glibc
import RseqTrace
import RseqTraceConsumer
import Testing

/// `rseqtrace demo --output` traces read by stock babeltrace2 and by its Python bindings (bt2):
/// every event and every lost event must be accounted for, exactly as the demo reported.
@Suite("CTF end to end: demo traces read by babeltrace2 and bt2", .serialized)
struct CTFEndToEndTests {
    static let babeltrace = "/usr/bin/babeltrace2"
    static let python = "/usr/bin/python3"
    static var rseqtrace: String { HelperProcess.rseqtracePath }

    /// Counts events and discarded events through bt2, and checks (thread, seq) pairs.
    static let bt2Script = """
        import bt2, sys, collections
        seen = collections.defaultdict(set)
        events = discarded = duplicates = regressions = types = 0
        last = {}
        for m in bt2.TraceCollectionMessageIterator(sys.argv[1]):
            if type(m) is bt2._EventMessageConst:
                e = m.event
                if e.name == "demo:types":
                    types += 1
                    continue
                if e.name != "demo:tick":
                    print("unexpected event", e.name); sys.exit(2)
                t, s = int(e.payload_field["thread"]), int(e.payload_field["seq"])
                duplicates += s in seen[t]
                seen[t].add(s)
                events += 1
                cpu = int(e.packet.context_field["cpu_id"])
                ts = m.default_clock_snapshot.ns_from_origin
                regressions += ts < last.get(cpu, ts)
                last[cpu] = ts
            elif type(m) is bt2._DiscardedEventsMessageConst:
                discarded += m.count
        complete = sum(1 for t in seen if seen[t] == set(range(int(sys.argv[2]))))
        print(f"bt2: events={events} types={types} discarded={discarded} duplicates={duplicates} regressions={regressions} complete_threads={complete}")
        """

    static func temporaryDirectory(_ tag: String) -> String {
        "/tmp/rseqtrace-ctf-\(getpid())-\(tag)"
    }

    static func removeTree(_ path: String) {
        _ = try? HelperProcess.run("/bin/rm", ["-rf", path], environment: HelperProcess.childEnvironment(),
                                   timeout: .seconds(30))
    }

    struct DemoRun {
        var emitted: Int
        var recorded: Int
        var lost: Int
    }

    static func runDemo(_ arguments: [String], output: String) throws -> DemoRun {
        let outcome = try HelperProcess.run(rseqtrace, ["demo"] + arguments + ["--output", output],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(120))
        #expect(outcome.exitCode == 0, "\(outcome)")
        #expect(outcome.stdout.contains("read it with: rseqtrace view \(output)   (or rseqtrace stats, rseqtrace export, babeltrace2)"), "\(outcome.stdout)")
        let fields = try #require(outcome.fields(of: "summary:"), "\(outcome)")
        return DemoRun(emitted: try #require(Int(fields["emitted"] ?? "")),
                       recorded: try #require(Int(fields["recorded"] ?? "")),
                       lost: try #require(Int(fields["lost"] ?? "")))
    }

    @Test("babeltrace2 prints every recorded event, reports exactly the lost ones, and nothing else on stderr",
          .enabled(if: HelperProcess.isExecutable(babeltrace)),
          .timeLimit(.minutes(3)),
          arguments: [["--mode", "discard"], ["--mode", "overwrite"]])
    func babeltraceCountsMatch(mode: [String]) throws {
        let output = Self.temporaryDirectory("bt-\(mode[1])")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        let demo = try Self.runDemo(mode + ["--threads", "3", "--events", "20000", "--buffer-size", "16K",
                                            "--subbuffer-size", "1K"], output: output)
        #expect(demo.recorded + demo.lost == demo.emitted)
        #expect(demo.lost > 0, "a 16 KiB ring must lose events in this run")
        let read = try HelperProcess.run(Self.babeltrace, [output], environment: HelperProcess.childEnvironment(),
                                         timeout: .seconds(120))
        #expect(read.exitCode == 0, "\(read.stderr)")
        let lines = read.stdout.split(separator: "\n")
        #expect(lines.count == demo.recorded)
        #expect(lines.allSatisfy { ($0.contains(" demo:tick: { cpu_id = ") && $0.contains("thread = ") && $0.contains("seq = "))
            || ($0.contains(" demo:types: { cpu_id = ") && $0.contains("color = ( \"")) })
        var discarded = 0
        for line in read.stderr.split(separator: "\n") {
            // The only messages allowed: babeltrace2's discarded-events reports with a count
            // ("discarded 1 event" / "discarded 7 events"; never "may have discarded").
            let words = line.split(separator: " ")
            guard line.hasPrefix("WARNING: Tracer discarded "), words.count > 4, let count = Int(words[3]),
                  words[4] == (count == 1 ? "event" : "events") else {
                Issue.record("unexpected babeltrace2 message: \(line)")
                continue
            }
            discarded += count
        }
        #expect(discarded == demo.lost)
    }

    @Test("bt2 sees every (thread, seq) exactly once in a lossless run, and exact counts in a lossy one",
          .enabled(if: HelperProcess.isExecutable(python) && HelperProcess.isExecutable(babeltrace)),
          .timeLimit(.minutes(3)))
    func bt2SeesEverySequence() throws {
        let events = 5000
        let lossless = Self.temporaryDirectory("bt2-full")
        let lossy = Self.temporaryDirectory("bt2-lossy")
        for dir in [lossless, lossy] { Self.removeTree(dir) }
        defer { for dir in [lossless, lossy] { Self.removeTree(dir) } }

        let full = try Self.runDemo(["--threads", "3", "--events", "\(events)"], output: lossless)
        #expect(full.lost == 0 && full.recorded == 3 * events + 3 * (events / 1000))
        let fullRead = try HelperProcess.run(Self.python, ["-c", Self.bt2Script, lossless, "\(events)"],
                                             environment: HelperProcess.childEnvironment(), timeout: .seconds(120))
        let fullFields = try #require(fullRead.fields(of: "bt2:"), "\(fullRead)")
        #expect(fullFields == ["events": "\(3 * events)", "types": "\(3 * (events / 1000))", "discarded": "0", "duplicates": "0",
                               "regressions": "0", "complete_threads": "3"])

        let partial = try Self.runDemo(["--threads", "4", "--events", "\(events)", "--mode", "overwrite",
                                        "--buffer-size", "16K", "--subbuffer-size", "1K"], output: lossy)
        let lossyRead = try HelperProcess.run(Self.python, ["-c", Self.bt2Script, lossy, "\(events)"],
                                              environment: HelperProcess.childEnvironment(), timeout: .seconds(120))
        let lossyFields = try #require(lossyRead.fields(of: "bt2:"), "\(lossyRead)")
        #expect(Int(lossyFields["events"] ?? "").map { $0 + Int(lossyFields["types"] ?? "0")! } == partial.recorded)
        #expect(lossyFields["discarded"] == "\(partial.lost)")
        #expect(lossyFields["duplicates"] == "0")
        #expect(lossyFields["regressions"] == "0")
    }

    @Test("an output directory that is not empty is refused with a clear error, and nothing is written into it",
          .timeLimit(.minutes(1)))
    func nonEmptyOutputIsRefused() throws {
        let output = Self.temporaryDirectory("busy")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        // SAFETY: mkdir and open take the paths by value.
        let made = unsafe mkdir(output, 0o755)
        #expect(made == 0)
        // SAFETY: as above.
        let fd = unsafe open(output + "/keep.txt", O_CREAT | O_WRONLY, 0o644)
        #expect(fd >= 0)
        close(fd)
        let outcome = try HelperProcess.run(Self.rseqtrace, ["demo", "--events", "100", "--output", output],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(outcome.exitCode == 1)
        #expect(outcome.stderr.contains("error: output directory \(output) is not empty"), "\(outcome.stderr)")
        // SAFETY: access takes the path by value.
        let traceWritten = unsafe access(output + "/metadata", F_OK) == 0
        #expect(!traceWritten)
    }

    @Test("record runs the example program, drains it from this separate process and exits with its status",
          .enabled(if: HelperProcess.isExecutable(babeltrace)),
          .timeLimit(.minutes(2)))
    func recordTracesAnotherProcess() throws {
        let output = Self.temporaryDirectory("record")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        let example = HelperProcess.buildDirectory + "/rseqtrace-example"
        let run = try HelperProcess.run(Self.rseqtrace, ["record", "--output", output, "--", example, "3", "4000"],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("rseqtrace-example: 3 threads x 4000 events, traced: true"), "\(run.stdout)")
        #expect(run.stdout.contains("recorded 12000 events, lost 0"), "\(run.stdout)")
        let read = try HelperProcess.run(Self.babeltrace, [output], environment: HelperProcess.childEnvironment(),
                                         timeout: .seconds(60))
        #expect(read.exitCode == 0 && read.stderr.isEmpty, "\(read.stderr)")
        let lines = read.stdout.split(separator: "\n")
        #expect(lines.count == 12000)
        // Every (worker, iteration) pair arrives exactly once.
        var seen = Set<String>()
        for line in lines {
            // "... example:work: { cpu_id = 0 }, { worker = 0, iteration = 1, value = 42 }"
            var fields: [String: String] = [:]
            for pair in (line.split(separator: "{").last ?? "").split(separator: ",") {
                let parts = pair.split(separator: "=").map { $0.filter { $0 != " " && $0 != "}" } }
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            guard let worker = fields["worker"], let iteration = fields["iteration"], fields["value"] != nil else {
                Issue.record("unexpected line: \(line)")
                continue
            }
            seen.insert(worker + "/" + iteration)
        }
        #expect(seen.count == 12000)
    }

    @Test("record passes the program's exit status through, and reports a program it cannot run",
          .timeLimit(.minutes(1)))
    func recordExitStatus() throws {
        let output = Self.temporaryDirectory("record-status")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        let failing = try HelperProcess.run(Self.rseqtrace, ["record", "--output", output, "--", "/bin/sh", "-c", "exit 7"],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(failing.exitCode == 7, "\(failing)")
        Self.removeTree(output)
        let missing = try HelperProcess.run(Self.rseqtrace, ["record", "--output", output, "--", "/nonexistent/program"],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(missing.exitCode == 1)
        #expect(missing.stderr.hasPrefix("error: cannot run /nonexistent/program"), "\(missing.stderr)")
        let usage = try HelperProcess.run(Self.rseqtrace, ["record", "--output", output],
                                          environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(usage.exitCode == 64, "\(usage)")
    }

    @Test("a producer killed between reserve and commit blocks live drains only: the quiescent drain skips its record and counts it",
          .timeLimit(.minutes(1)))
    func deadProducerIsSkippedAndCounted() throws {
        let name = "rseqtrace-test-dead-\(getpid())"
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 1 << 16, subbufferSize: 4096))
        let outcome = try HelperProcess.runHelper(["die-mid-record", "--name", name, "--events", "50"], timeout: .seconds(30))
        #expect(outcome.signal == SIGKILL, "\(outcome)")
        #expect(outcome.stdout.contains("die-mid-record: committed=50 reserved=1"), "\(outcome)")
        let drainer = TraceDrainer(buffer: buffer)
        // The quiescent path alone: live recovery of the record (AbandonedRecordTests) never starts here.
        drainer.abandonmentDelay = .seconds(3600)
        var sequences: [UInt64] = []
        // Live drains deliver what precedes the abandoned record and stop there, every time.
        for _ in 0..<3 {
            try drainer.drainOnce { sequences.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        }
        #expect(sequences == Array(0..<50))
        #expect(drainer.totals.abandoned == 0)
        // The producer is gone: the quiescent drain skips and counts its half-written record.
        try drainer.drainOnce(quiescent: true) { sequences.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        #expect(sequences == Array(0..<50))
        #expect(drainer.totals.recorded == 50)
        #expect(drainer.totals.abandoned == 1)
        #expect(drainer.totals.lost == 1)
        // And the ring is usable again past it.
        #expect(buffer.makeProducer().write(eventID: 7, value: UInt64(99)))
        try drainer.drainOnce(quiescent: true) { sequences.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        #expect(sequences.last == 99)
    }

    @Test("record of a program SIGKILLed mid-record: exit status 137, the abandoned record is counted, babeltrace2 reports it",
          .enabled(if: HelperProcess.isExecutable(babeltrace)),
          .timeLimit(.minutes(1)))
    func recordSurvivesKilledProducer() throws {
        let output = Self.temporaryDirectory("record-killed")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        let run = try HelperProcess.run(Self.rseqtrace, ["record", "--output", output, "--", HelperProcess.helperPath,
                                                         "die-mid-record", "--events", "30"],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(run.exitCode == 128 + SIGKILL, "\(run)")
        #expect(run.stdout.contains("recorded 30 events, lost 1 (dropped 0, overwritten 0, too large 0, abandoned by dead producers 1)"),
                "\(run.stdout)")
        let read = try HelperProcess.run(Self.babeltrace, [output], environment: HelperProcess.childEnvironment(),
                                         timeout: .seconds(60))
        #expect(read.stdout.split(separator: "\n").count == 30)
        #expect(read.stdout.contains("rseqtrace:unknown_7"), "unregistered id 7 is written with its raw payload")
        #expect(read.stderr.contains("WARNING: Tracer discarded 1 event between"), "\(read.stderr)")
    }

    @Test("export --format chrome writes JSON that accounts for every event and every lost event",
          .enabled(if: HelperProcess.isExecutable(python)),
          .timeLimit(.minutes(1)))
    func chromeExport() throws {
        let output = Self.temporaryDirectory("export")
        let json = output + ".json"
        Self.removeTree(output)
        defer { Self.removeTree(output); Self.removeTree(json) }
        let demo = try Self.runDemo(["--threads", "2", "--events", "4000", "--mode", "overwrite", "--buffer-size", "16K",
                                     "--subbuffer-size", "1K"], output: output)
        let export = try HelperProcess.run(Self.rseqtrace, ["export", output, "--format", "chrome", "--output", json],
                                           environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(export.exitCode == 0, "\(export)")
        #expect(export.stdout.hasPrefix("exported \(demo.recorded) events"), "\(export.stdout)")
        let script = """
            import json, sys
            d = json.load(open(sys.argv[1]))
            ev = d["traceEvents"]
            inst = [e for e in ev if e["ph"] == "i"]
            lost = sum(e["args"]["count"] for e in ev if e["ph"] == "X" and e["name"] == "discarded events")
            pairs = {(e["args"]["thread"], e["args"]["seq"]) for e in inst if e["name"] == "demo:tick"}
            types = {(e["args"]["u32"], e["args"]["u64"], e["args"]["color"]) for e in inst if e["name"] == "demo:types"}
            print(f"json: events={len(inst)} unique={len(pairs) + len(types)} lost={lost} unit={d['displayTimeUnit']}")
            """
        let check = try HelperProcess.run(Self.python, ["-c", script, json], environment: HelperProcess.childEnvironment(),
                                          timeout: .seconds(60))
        let fields = try #require(check.fields(of: "json:"), "\(check)")
        #expect(fields == ["events": "\(demo.recorded)", "unique": "\(demo.recorded)", "lost": "\(demo.lost)", "unit": "ns"])
        let bad = try HelperProcess.run(Self.rseqtrace, ["export", output, "--format", "pdf", "--output", json],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(bad.exitCode == 64)
        let missing = try HelperProcess.run(Self.rseqtrace, ["export", output + "-missing", "--format", "chrome", "--output", json],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(missing.exitCode == 1 && missing.stderr.hasPrefix("error: "), "\(missing)")
    }

    @Test("demo writes ./rseqtrace-demo by default, replaces it on the next run, and refuses it once it holds other files",
          .enabled(if: HelperProcess.isExecutable(babeltrace)),
          .timeLimit(.minutes(1)))
    func demoDefaultOutput() throws {
        let home = Self.temporaryDirectory("default-home")
        Self.removeTree(home)
        defer { Self.removeTree(home) }
        // SAFETY: mkdir takes the path by value.
        let made = unsafe mkdir(home, 0o755)
        #expect(made == 0)
        func demo(_ events: Int) throws -> HelperProcess.Outcome {
            try HelperProcess.run("/bin/sh", ["-c", "cd '\(home)' && exec '\(Self.rseqtrace)' demo --threads 2 --events \(events)"],
                                  environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        }
        for events in [700, 300] {
            let run = try demo(events)
            #expect(run.exitCode == 0, "\(run)")
            #expect(run.stdout.contains("read it with: rseqtrace view rseqtrace-demo "), "\(run.stdout)")
            let read = try HelperProcess.run(Self.babeltrace, [home + "/rseqtrace-demo"],
                                             environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
            #expect(read.stdout.split(separator: "\n").count == 2 * events, "the previous run's trace was replaced")  // fewer than 1000 per thread: no demo:types
        }
        // SAFETY: open takes the path by value.
        let fd = unsafe open(home + "/rseqtrace-demo/notes.txt", O_CREAT | O_WRONLY, 0o644)
        #expect(fd >= 0)
        close(fd)
        let refused = try demo(100)
        #expect(refused.exitCode == 1)
        #expect(refused.stderr.contains("error: output directory rseqtrace-demo is not empty"), "\(refused.stderr)")
        // SAFETY: access takes the path by value.
        #expect(unsafe access(home + "/rseqtrace-demo/notes.txt", F_OK) == 0, "nothing of the user's is removed")
    }

    @Test("record across processes is exact in both modes: recorded + lost equals what the program emitted",
          .timeLimit(.minutes(2)),
          arguments: ["discard", "overwrite"])
    func recordIsExactUnderLoad(mode: String) throws {
        let output = Self.temporaryDirectory("record-\(mode)")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        let example = HelperProcess.buildDirectory + "/rseqtrace-example"
        let run = try HelperProcess.run(Self.rseqtrace, ["record", "--output", output, "--mode", mode, "--buffer-size", "16K",
                                                         "--subbuffer-size", "1K", "--interval-ms", "1", "--", example, "4", "30000"],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        let line = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("recorded ") }, "\(run.stdout)")
        let words = line.split(separator: " ")
        let recorded = try #require(Int(words[1]))
        let lost = try #require(Int(words[4]))
        #expect(recorded + lost == 4 * 30_000, "\(line)")
        #expect(lost > 0, "a 16 KiB ring must lose events here: \(line)")
        let stats = try HelperProcess.run(Self.rseqtrace, ["stats", output], environment: HelperProcess.childEnvironment(),
                                          timeout: .seconds(60))
        let fields = try #require(stats.fields(of: "stats:"), "\(stats)")
        #expect(fields["events"] == "\(recorded)" && fields["discarded"] == "\(lost)", "\(stats.stdout)")
    }
}
