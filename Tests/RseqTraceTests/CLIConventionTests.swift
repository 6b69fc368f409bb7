import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace

/// Command-line conventions of `rseqtrace`: subcommand suggestions, `--version`, the `--` before
/// the program, default output directories, `export`'s defaults and standard output.
@Suite("CLI: conventions (did you mean, --version, --, default directories, export)",
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"))
struct CLIConventionTests {
    static var rseqtrace: String { HelperProcess.rseqtracePath }

    /// Runs `/bin/sh -c SCRIPT` in `directory` with the rseqtrace path as `$0`.
    static func shell(_ script: String, in directory: String) throws -> HelperProcess.Outcome {
        try HelperProcess.run("/bin/sh", ["-c", "cd '\(directory)' && \(script)", rseqtrace],
                              environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
    }

    /// A fresh empty directory, removed by the caller.
    static func emptyDirectory(_ tag: String) -> String {
        let path = CTFEndToEndTests.temporaryDirectory("conventions-\(tag)")
        CTFEndToEndTests.removeTree(path)
        // SAFETY: mkdir takes the path by value.
        let made = unsafe mkdir(path, 0o755)
        #expect(made == 0, "mkdir \(path)")
        return path
    }

    @Test("a mistyped subcommand exits 64 with the nearest subcommand", arguments: [
        ("recrod", "Error: unknown subcommand 'recrod': did you mean 'record'?"),
        ("veiw", "Error: unknown subcommand 'veiw': did you mean 'view'?"),
        ("stat", "Error: unknown subcommand 'stat': did you mean 'stats'?"),
        ("exprot", "Error: unknown subcommand 'exprot': did you mean 'export'?"),
        ("rec", "Error: unknown subcommand 'rec': did you mean 'record'?"),
        ("frobnicate", "Error: unknown subcommand 'frobnicate'; the subcommands are demo, record, list, attach, snapshot, view, stats, export"),
    ])
    func didYouMean(word: String, error: String) throws {
        let run = try HelperProcess.runRseqtrace([word, "x"], timeout: .seconds(30))
        #expect(run.exitCode == 64, "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
        #expect(run.stderrLines == [Substring(error), "Usage: rseqtrace <subcommand>", "  See 'rseqtrace --help' for more information."], "\(run)")
    }

    @Test("--version prints the version and exits 0")
    func version() throws {
        let run = try HelperProcess.runRseqtrace(["--version"], timeout: .seconds(30))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout == "0.1.0\n", "\(run)")
    }

    @Test("record with the program but without `--` says to put the program after `--`, quoting it", arguments: [
        (["./server", "--port", "8080"], "./server --port 8080"),
        (["--output", "/tmp/x", "--mode", "discard", "--enable=http:*", "server"], "server"),
        (["-o", "/tmp/x", "--interval-ms", "5", "server", "a"], "server a"),
    ])
    func programWithoutTerminator(arguments: [String], program: String) throws {
        let run = try HelperProcess.runRseqtrace(["record"] + arguments, timeout: .seconds(30))
        #expect(run.exitCode == 64, "\(run)")
        #expect(run.stderrLines.first == "Error: put the program after `--`: rseqtrace record [options] -- \(program)", "\(run)")
        let bare = try HelperProcess.runRseqtrace(["record"], timeout: .seconds(30))
        #expect(bare.stderrLines.first == "Error: missing the program to run: rseqtrace record [options] -- CMD [ARGS...]", "\(bare)")
    }

    @Test("record without --output writes a new timestamped directory each run, and a program not found leaves nothing",
          .timeLimit(.minutes(1)))
    func defaultOutputDirectories() throws {
        let home = Self.emptyDirectory("default")
        defer { CTFEndToEndTests.removeTree(home) }
        let nothing = try Self.shell("exec \"$0\" view", in: home)
        #expect(nothing.exitCode == 1, "\(nothing)")
        #expect(nothing.stderrLines == ["error: no trace given and no rseqtrace-record-* directory here: name the trace directory"], "\(nothing)")
        var traces: [String] = []
        for _ in 0..<2 {
            let run = try Self.shell("exec \"$0\" record -- /bin/true", in: home)
            #expect(run.exitCode == 0, "\(run)")
            let line = try #require(run.stdoutLines.first { $0.hasPrefix("trace: ") }, "\(run)")
            let name = String(line.dropFirst(7).prefix { $0 != " " })
            traces.append(name)
        }
        let entries = (SystemInfo.directoryEntries(home) ?? []).sorted()
        #expect(entries == traces.sorted() && Set(traces).count == 2, "\(entries) \(traces)")
        for name in traces {
            // rseqtrace-record-YYYYMMDD-HHMMSS, and -2 when the first name was taken in the same second.
            let parts = name.split(separator: "-")
            #expect(name.hasPrefix("rseqtrace-record-") && (parts.count == 4 || parts.count == 5), "\(name)")
            #expect(parts.count > 3 && parts[2].count == 8 && parts[3].count == 6 && parts[2].allSatisfy(\.isNumber)
                    && parts[3].allSatisfy(\.isNumber), "\(name)")
            let year = Int(parts[2].prefix(4)) ?? 0
            #expect((2025...2100).contains(year), "\(name)")
        }
        // view and stats without a directory read the newest of them.
        for command in ["view", "stats"] {
            let newest = try Self.shell("exec \"$0\" \(command)", in: home)
            #expect(newest.exitCode == 0, "\(newest)")
            #expect(newest.stderrLines == ["rseqtrace: reading \(traces[1])"], "\(newest)")
        }
        // Names of one second in creation order (-2 ... -10), then the next second.
        let order = try Self.shell("""
            mkdir order && cd order && for name in 20260101-000000 20260101-000000-2 20260101-000000-10; do \
            cp -r "../\(traces[0])" "rseqtrace-record-$name"; done && "$0" view >/dev/null && \
            cp -r "../\(traces[0])" rseqtrace-record-20260101-000001 && exec "$0" view >/dev/null
            """, in: home)
        #expect(order.exitCode == 0, "\(order)")
        #expect(order.stderrLines == ["rseqtrace: reading rseqtrace-record-20260101-000000-10",
                                      "rseqtrace: reading rseqtrace-record-20260101-000001"], "\(order)")
        CTFEndToEndTests.removeTree(home + "/order")
        let missing = try Self.shell("exec \"$0\" record -- ./no-such-program", in: home)
        #expect(missing.exitCode == 1, "\(missing)")
        #expect(missing.stderr.contains("error: cannot run ./no-such-program"), "\(missing)")
        #expect((SystemInfo.directoryEntries(home) ?? []).sorted() == entries, "no directory is left behind")
    }

    @Test("on a terminal, record draws no progress line into the program's output unless asked with --progress",
          .enabled(if: HelperProcess.isExecutable("/usr/bin/script")), .timeLimit(.minutes(1)))
    func progressOnlyWhenAsked() throws {
        let home = Self.emptyDirectory("progress")
        defer { CTFEndToEndTests.removeTree(home) }
        for (flag, shown) in [("", false), ("--progress", true)] {
            // script(1) runs the command on a pseudo-terminal and copies what it shows to its stdout.
            let command = "'\(Self.rseqtrace)' record \(flag) -o '\(home)/trace\(flag)' -- /bin/sh -c 'sleep 0.3; echo program-output'"
            let run = try HelperProcess.run("/usr/bin/script", ["-qec", command, "/dev/null"],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
            #expect(run.exitCode == 0, "\(run)")
            #expect(run.stdout.contains("program-output"), "\(run)")
            #expect(run.stdout.contains("\u{1B}[2Krecording: ") == shown, "\(flag): \(run)")
        }
    }

    @Test("export: --format defaults to chrome, -o names the file, --output - writes the JSON to standard output",
          .enabled(if: HelperProcess.isExecutable(CTFEndToEndTests.python)), .timeLimit(.minutes(1)))
    func exportDefaults() throws {
        let home = Self.emptyDirectory("export")
        defer { CTFEndToEndTests.removeTree(home) }
        let demo = try Self.shell("exec \"$0\" demo --threads 1 --events 3000 --output trace", in: home)
        #expect(demo.exitCode == 0, "\(demo)")
        let file = try Self.shell("exec \"$0\" export trace -o trace.json", in: home)
        #expect(file.exitCode == 0, "\(file)")
        #expect(file.stdout.hasPrefix("exported 3003 events and 0 discarded-event ranges to trace.json ("), "\(file)")
        // The same JSON on standard output; the report goes to standard error.
        let piped = try Self.shell("exec \"$0\" export trace --output - > piped.json", in: home)
        #expect(piped.exitCode == 0 && piped.stdout.isEmpty, "\(piped)")
        #expect(piped.stderr.hasPrefix("exported 3003 events and 0 discarded-event ranges to standard output ("), "\(piped)")
        let same = try HelperProcess.run("/usr/bin/cmp", [home + "/trace.json", home + "/piped.json"],
                                         environment: HelperProcess.childEnvironment(), timeout: .seconds(30))
        #expect(same.exitCode == 0, "\(same)")
    }

    @Test("export: every field keeps one JSON type across events (demo:tick's UInt64 check is a string even when it is small)",
          .enabled(if: HelperProcess.isExecutable(CTFEndToEndTests.python)), .timeLimit(.minutes(1)))
    func exportFieldTypes() throws {
        let home = Self.emptyDirectory("types")
        defer { CTFEndToEndTests.removeTree(home) }
        let demo = try Self.shell("\"$0\" demo --threads 1 --events 3000 --output trace && exec \"$0\" export trace -o trace.json", in: home)
        #expect(demo.exitCode == 0, "\(demo)")
        let script = """
            import json, sys
            d = json.load(open(sys.argv[1]))
            types = {}
            for e in d["traceEvents"]:
                for k, v in e.get("args", {}).items():
                    types.setdefault(e["name"] + "." + k, set()).add(type(v).__name__)
            mixed = sorted(k for k, v in types.items() if len(v) > 1)
            checks = [int(e["args"]["check"]) for e in d["traceEvents"] if e["name"] == "demo:tick"]
            print("json: mixed=%s check=%s small_checks=%d seq=%s" % (",".join(mixed) or "none", ",".join(sorted(types["demo:tick.check"])),
                  sum(1 for c in checks if c <= 2 ** 53), ",".join(sorted(types["demo:tick.seq"]))))
            """
        let check = try HelperProcess.run(CTFEndToEndTests.python, ["-c", script, home + "/trace.json"],
                                          environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        let fields = try #require(check.fields(of: "json:"), "\(check)")
        #expect(fields["mixed"] == "none" && fields["check"] == "str" && fields["seq"] == "int", "\(check)")
        // The case that used to mix types: some checks fit a JSON number exactly, most do not.
        #expect((Int(fields["small_checks"] ?? "") ?? 0) > 0, "\(check)")
    }
}
