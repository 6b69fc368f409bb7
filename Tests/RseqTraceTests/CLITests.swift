import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

/// `summary: mode=<m> emitted=<n> recorded=<n> lost=<n> ns_per_event=<x>`, parsed strictly.
private struct DemoSummary {
    var mode: String
    var emitted: UInt64
    var recorded: UInt64
    var lost: UInt64
    var nsPerEvent: Double

    init?(_ line: Substring) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0] == "summary:" else { return nil }
        var values: [String: Substring] = [:]
        let keys = ["mode", "emitted", "recorded", "lost", "ns_per_event"]
        for (field, key) in zip(fields.dropFirst(), keys) {
            guard field.hasPrefix(key + "=") else { return nil }
            values[key] = field.dropFirst(key.count + 1)
        }
        guard let mode = values["mode"], ["rseq", "rseq-self", "fallback"].contains(mode),
              let emitted = values["emitted"].flatMap({ UInt64($0) }),
              let recorded = values["recorded"].flatMap({ UInt64($0) }),
              let lost = values["lost"].flatMap({ UInt64($0) }),
              let ns = values["ns_per_event"], !ns.isEmpty,
              ns.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), ns.filter({ $0 == "." }).count <= 1,
              let nsPerEvent = Double(ns) else { return nil }
        self.mode = String(mode)
        self.emitted = emitted
        self.recorded = recorded
        self.lost = lost
        self.nsPerEvent = nsPerEvent
    }
}

@Suite("CLI: the rseqtrace executable", .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"))
struct CLITests {
    @Test("demo --threads 3 --events 3000 exits 0 and its summary balances: emitted 9009 (9000 ticks + 9 demo:types) == recorded + lost")
    func demoDiscardBalances() throws {
        let run = try HelperProcess.runRseqtrace(["demo", "--no-output", "--threads", "3", "--events", "3000"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        let summary = try #require(DemoSummary(last), "last line: \(last)")
        #expect(summary.emitted == 9009)
        // The child inherits this environment, so it makes the same rseq decision as this process
        // (glibc 2.36 registers rseq on this kernel: "rseq").
        #expect(summary.mode == RseqRuntime.mode.rawValue)
        #expect(summary.recorded + summary.lost == summary.emitted)
        #expect(summary.nsPerEvent > 0)
        // 9000 records of 40 bytes cannot fill 4 MiB rings that are drained concurrently.
        #expect(summary.lost == 0)
        #expect(run.stdout.contains("verified: 9000 demo:tick and 9 demo:types records intact, 0 damaged, 0 duplicated, 0 per-CPU timestamp regressions"), "\(run)")
    }

    @Test("demo in overwrite mode with 16K rings loses records, counts every one, and still verifies")
    func demoOverwriteBalances() throws {
        let run = try HelperProcess.runRseqtrace(["demo", "--no-output", "--mode", "overwrite", "--buffer-size", "16K", "--subbuffer-size", "1K",
                                     "--threads", "2", "--events", "5000"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        let summary = try #require(DemoSummary(last), "last line: \(last)")
        #expect(summary.emitted == 10010)
        #expect(summary.lost > 0)
        #expect(summary.recorded > 0)
        #expect(summary.recorded + summary.lost == summary.emitted)
        #expect(run.stdout.contains("overwrite mode, 16 KiB ring per CPU (1 KiB sub-buffers)"))
        #expect(run.stdout.contains(" records intact, 0 damaged, 0 duplicated, 0 per-CPU timestamp regressions"), "\(run)")
    }

    @Test("with RSEQTRACE_FORCE_FALLBACK=1 the demo runs the lock-free protocol and still balances exactly",
          arguments: [["--threads", "2", "--events", "2000"],
                      ["--mode", "overwrite", "--buffer-size", "16K", "--subbuffer-size", "1K", "--threads", "2", "--events", "5000"]])
    func demoFallbackBalances(arguments: [String]) throws {
        let run = try HelperProcess.runRseqtrace(["demo", "--no-output"] + arguments, setting: ["RSEQTRACE_FORCE_FALLBACK": "1"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        #expect(run.stdout.contains("producer mode: fallback (RSEQTRACE_FORCE_FALLBACK is set)"), "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        let summary = try #require(DemoSummary(last), "last line: \(last)")
        #expect(summary.mode == "fallback")
        #expect(summary.emitted == (arguments.contains("overwrite") ? 10010 : 4004))
        #expect(summary.recorded + summary.lost == summary.emitted)
        if !arguments.contains("overwrite") { #expect(summary.lost == 0) }
    }

    @Test("demo --counter: every event counted once in the per-CPU counter, whose final value is the last metrics:counter sample of the trace, in each producer mode",
          arguments: [[:], ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"], ["RSEQTRACE_FORCE_FALLBACK": "1"]])
    func demoCounter(setting: [String: String]) throws {
        let output = CTFEndToEndTests.temporaryDirectory("demo-counter-\(setting.keys.first ?? "rseq")")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(["demo", "--counter", "--threads", "2", "--events", "30000", "--output", output],
                                                 setting: setting)
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("counter demo:events = 60000, expected 60000\n"), "\(run)")
        let stats = try HelperProcess.runRseqtrace(["stats", output])
        #expect(stats.exitCode == 0, "\(stats)")
        let row = stats.stdoutLines.first { $0.hasPrefix("demo:events ") }.map { $0.split(separator: " ") }
        #expect(row?.count == 3 && row?[1] == "60000", "\(stats)")
        #expect(stats.stdout.contains("counters: count=1"), "\(stats)")
        let samples = try HelperProcess.runRseqtrace(["view", output, "--event", "metrics:counter"])
        let lines = samples.stdoutLines.filter { $0.contains(" metrics:counter: ") }
        #expect(lines.last?.hasSuffix("{ value = 60000, name = \"demo:events\" }") == true, "\(lines.suffix(3))")
        // Samples are written when the value changed (and once at the end): values never decrease.
        let values = lines.compactMap { line in line.split(separator: "value = ").last?.split(separator: ",").first.flatMap { Int($0) } }
        #expect(values.count == lines.count && zip(values, values.dropFirst()).allSatisfy { $0 <= $1 }, "\(values)")
    }

    @Test("bad input exits 64 with a single error line (followed only by the usage)",
          arguments: [
            (["demo", "--threads", "0"], "Error: --threads must be between 1 and 1024, got 0"),
            (["demo", "--threads", "1025"], "Error: --threads must be between 1 and 1024, got 1025"),
            (["demo", "--events", "0"], "Error: --events must be between 1 and 100000000, got 0"),
            (["demo", "--mode", "bogus"], "Error: The value 'bogus' is invalid for '--mode <mode>'. Please provide one of 'discard' and 'overwrite'."),
            (["demo", "--buffer-size", "3000"], "Error: --buffer-size 3000 and --subbuffer-size 65536 must be powers of two"),
            (["demo", "--buffer-size", "1M", "--subbuffer-size", "1M"], "Error: --buffer-size 1048576 and --subbuffer-size 1048576 must be powers of two"),
            (["demo", "--buffer-size", "2G"], "Error: --buffer-size 2147483648 and --subbuffer-size 65536 must be powers of two"),
            (["demo", "--buffer-size", "16KiB"], "Error: The value '16KiB' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size=-8K"], "Error: The value '-8K' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size", "1M", "--subbuffer-size", "256"], "Error: --buffer-size 1048576 and --subbuffer-size 256 must be powers of two"),
            (["demo", "--buffer-size", "-8K"], "Error: Missing value for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size", "99999999999G"], "Error: The value '99999999999G' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size", "0"], "Error: The value '0' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--threads", "abc"], "Error: The value 'abc' is invalid for '--threads <threads>'"),
            (["demo", "--no-such-flag"], "Error: Unknown option '--no-such-flag'"),
            (["no-such-command"], "Error: unknown subcommand 'no-such-command'; the subcommands are demo, record, list, attach, snapshot, view, stats, export"),
          ])
    func badInput(arguments: [String], error: String) throws {
        let run = try HelperProcess.runRseqtrace(arguments, timeout: .seconds(60))
        #expect(run.exitCode == 64, "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
        let lines = run.stderrLines
        let errorLines = lines.filter { $0.hasPrefix("Error:") }
        #expect(errorLines.count == 1, "\(run)")
        let first = try #require(lines.first)
        #expect(first.hasPrefix(error), "\(first)")
        // Nothing but the usage (and its Help/See lines) follows the one error line.
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("Usage:") || $0.hasPrefix("Help:") || $0.hasPrefix("  ") }, "\(run)")
        // No trace object was created.
        #expect(!run.stdout.contains("summary:"))
    }

    @Test("without the LTTng trait (as the test suite builds it), demo --backend lttng and both fail with the rebuild hint",
          arguments: ["lttng", "both"])
    func backendWithoutTrait(backend: String) throws {
        let run = try HelperProcess.runRseqtrace(["demo", "--backend", backend, "--events", "10", "--no-output"], timeout: .seconds(60))
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stderrLines == [
            "error: --backend \(backend): this rseqtrace was built without the LTTng trait: rebuild with `swift build --traits LTTng` (needs liblttng-ust-dev)",
        ], "\(run)")
        #expect(!run.stdout.contains("summary:"), "\(run)")
    }

    @Test("demo --expected-events writes every emitted event with its values and text rendering, one JSON line each")
    func demoExpectedEvents() throws {
        let path = "/tmp/rseqtrace-cli-\(getpid())-expected.jsonl"
        defer { _ = try? HelperProcess.run("/bin/rm", ["-f", path], environment: HelperProcess.childEnvironment(), timeout: .seconds(30)) }
        let run = try HelperProcess.runRseqtrace(["demo", "--no-output", "--threads", "1", "--events", "1000", "--expected-events", path])
        #expect(run.exitCode == 0, "\(run)")
        let file = try HelperProcess.run("/bin/cat", [path], environment: HelperProcess.childEnvironment(), timeout: .seconds(30))
        let lines = file.stdout.split(separator: "\n")
        #expect(lines.count == 1001)
        #expect(lines.first == #"{"event":"demo:tick","fields":{"seq":0,"check":15568325403000214897,"thread":0},"text":"seq=0 check=15568325403000214897 thread=0"}"#)
        #expect(lines.last == #"{"event":"demo:types","fields":{"u8":231,"u16":2997,"u32":0,"u64":999,"i8":25,"i16":-2997,"i32":0,"i64":-999,"flag":false,"f32":249.75,"f64":499.5,"text":"","short_text":"naïvet","_bytes_length":6,"bytes":[0,1,2,127,128,255],"_short_bytes_length":4,"short_bytes":[0,1,2,127],"color":["red",0],"level":["debug",-1]},"text":"u8=231 u16=2997 u32=0 u64=999 i8=25 i16=-2997 i32=0 i64=-999 flag=false f32=249.75 f64=499.5 text=\"\" short_text=\"naïvet\" bytes=<00 01 02 7f 80 ff> short_bytes=<00 01 02 7f> color=red(0) level=debug(-1)"}"#)
    }

    @Test("--help exits 0 and lists the demo subcommand", arguments: [["--help"], ["help"], ["demo", "--help"]])
    func help(arguments: [String]) throws {
        let run = try HelperProcess.runRseqtrace(arguments, timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        #expect(run.stdout.contains("demo"))
        #expect(run.stdout.contains("USAGE: rseqtrace"))
        if arguments.first == "demo" {
            for option in ["--threads", "--events", "--mode", "--buffer-size", "--subbuffer-size", "summary: mode="] {
                #expect(run.stdout.contains(option), "\(option)")
            }
        }
    }
}

/// `summary: recorded=<n> lost=<n> dropped=<n> overwritten=<n> too_large=<n> abandoned=<n>
/// quarantined=<n> hidden_bytes=<n> mode=<discard|overwrite> exit_status=<n>`, parsed strictly
/// (keys in this order, nothing else).
struct RecordSummary {
    static let keys = ["recorded", "lost", "dropped", "overwritten", "too_large", "abandoned", "quarantined",
                       "hidden_bytes", "mode", "exit_status"]
    var values: [String: String] = [:]

    init?(_ line: Substring) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == Self.keys.count + 1, fields[0] == "summary:" else { return nil }
        for (field, key) in zip(fields.dropFirst(), Self.keys) {
            guard field.hasPrefix(key + "="), field.count > key.count + 1 else { return nil }
            values[key] = String(field.dropFirst(key.count + 1))
        }
        guard ["discard", "overwrite"].contains(values["mode"]),
              Self.keys.filter({ $0 != "mode" }).allSatisfy({ values[$0].flatMap { UInt64($0) } != nil }) else { return nil }
    }

    func number(_ key: String) -> UInt64 { values[key].flatMap { UInt64($0) } ?? .max }
}

@Suite("CLI: rseqtrace record and the buffer options", .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath),
                                                              "the rseqtrace executable is built next to the tests"))
struct CLIRecordTests {
    @Test("record --interval-ms 1000 sleeps between rounds: the recorder's CPU time stays far below the program's 3 s",
          .timeLimit(.minutes(1)))
    func longIntervalSleeps() throws {
        let output = CTFEndToEndTests.temporaryDirectory("cli-interval")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(["record", "--interval-ms", "1000", "--output", output, "--", "/bin/sleep", "3"],
                                                 timeout: .seconds(50))
        #expect(run.exitCode == 0, "\(run)")
        let wall = Double(run.duration.components.seconds) + Double(run.duration.components.attoseconds) / 1e18
        let cpu = Double(run.cpuNanoseconds) / 1e9
        #expect(wall >= 3, "\(run)")
        // A recorder that spins (nanosleep refusing tv_nsec >= 1e9) burns about as much CPU as
        // the program runs; one that sleeps needs a small fraction of it.
        #expect(cpu < wall / 3, "recorder CPU \(cpu) s over \(wall) s wall\n\(run)")
    }

    @Test("record notices the program's exit at once, even with --interval-ms 10000", .timeLimit(.minutes(1)))
    func exitEndsTheWait() throws {
        let output = CTFEndToEndTests.temporaryDirectory("cli-exit")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(["record", "--interval-ms", "10000", "--output", output, "--",
                                                  "/bin/sh", "-c", "sleep 0.3; exit 5"], timeout: .seconds(50))
        #expect(run.exitCode == 5, "\(run)")
        // Waiting out the interval would take 10 s or more.
        #expect(run.duration < .seconds(5), "\(run)")
        let summary = try #require(run.stdoutLines.last.flatMap(RecordSummary.init), "\(run)")
        #expect(summary.number("exit_status") == 5)
    }

    @Test("record ends with a machine-readable summary: every event of the program recorded, the mode, its exit status",
          arguments: ["discard", "overwrite"])
    func recordSummary(mode: String) throws {
        let output = CTFEndToEndTests.temporaryDirectory("cli-summary-\(mode)")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let example = HelperProcess.buildDirectory + "/rseqtrace-example"
        try #require(HelperProcess.isExecutable(example), "\(example) is built next to the tests")
        let run = try HelperProcess.runRseqtrace(["record", "--mode", mode, "--output", output, "--", example, "2", "500"],
                                                 setting: [:], timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        let summary = try #require(RecordSummary(last), "last line: \(last)")
        #expect(summary.values["mode"] == mode)
        #expect(summary.number("exit_status") == 0)
        // 2 workers x 500 example:work events in 16 MiB rings: nothing is lost.
        #expect(summary.number("recorded") == 1000, "\(last)")
        #expect(summary.number("lost") == 0, "\(last)")
        #expect(summary.number("dropped") + summary.number("overwritten") + summary.number("too_large")
                + summary.number("abandoned") == summary.number("lost"), "\(last)")
        #expect(run.stdout.contains("recorded 1000 events, lost 0"), "\(run)")
    }

    @Test("--help shows the defaults as written on the command line (discard, 16M), and the sub-buffer rule",
          arguments: ["demo", "record"])
    func helpDefaults(command: String) throws {
        let run = try HelperProcess.runRseqtrace([command, "--help"], timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        let text = run.stdout.split(whereSeparator: { $0 == "\n" || $0 == " " }).joined(separator: " ")
        #expect(text.contains("values: discard, overwrite; default: discard)"), "\(run)")
        #expect(text.contains("(e.g. 256K, 16M). (default: 16M)"), "\(run)")
        #expect(text.contains("Default: 64K, but at most a quarter of --buffer-size and at least 1/256 of it"), "\(run)")
        #expect(!text.contains("ByteSize("), "\(run)")
        #expect(!text.contains("default: 0)"), "\(run)")
    }

    @Test("--buffer-size alone derives the sub-buffer size from it", arguments: [
        ("8K", "8 KiB ring per CPU (2 KiB sub-buffers)"),
        ("64K", "64 KiB ring per CPU (16 KiB sub-buffers)"),
        ("256K", "256 KiB ring per CPU (64 KiB sub-buffers)"),
        ("16M", "16 MiB ring per CPU (64 KiB sub-buffers)"),
        ("64M", "64 MiB ring per CPU (256 KiB sub-buffers)"),
    ])
    func derivedSubbufferSize(bufferSize: String, expected: String) throws {
        let run = try HelperProcess.runRseqtrace(["demo", "--no-output", "--buffer-size", bufferSize, "--threads", "1",
                                                  "--events", "2000"], timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains(expected), "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        #expect(last.hasPrefix("summary: mode="), "\(run)")
    }

    @Test("record --buffer-size 64K alone is accepted and records", .timeLimit(.minutes(1)))
    func recordSmallBuffer() throws {
        let output = CTFEndToEndTests.temporaryDirectory("cli-small")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(["record", "--buffer-size", "64K", "--output", output, "--", "/bin/true"],
                                                 timeout: .seconds(50))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        let summary = try #require(run.stdoutLines.last.flatMap(RecordSummary.init), "\(run)")
        #expect(summary.number("exit_status") == 0)
    }
}
