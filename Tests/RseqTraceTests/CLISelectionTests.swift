import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace

/// `view` and `stats`: --filter, --from/--to, --cpu warnings, traces found below a directory,
/// `stats --field` and the program line. One demo trace (2 threads x 1000 demo:tick, seq 0...999
/// and thread 0 or 1 each, and 2 demo:types) serves every test.
@Suite("CLI: view and stats select events (filter, time range, cpu) and find traces below a directory", .serialized,
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"))
final class CLISelectionTests {
    let home: String
    let trace: String

    init() throws {
        home = CTFEndToEndTests.temporaryDirectory("selection")
        CTFEndToEndTests.removeTree(home)
        // SAFETY: mkdir takes the paths by value.
        let made = unsafe (mkdir(home, 0o755) == 0 && mkdir(home + "/session", 0o755) == 0)
        #expect(made)
        trace = home + "/session/trace"
        let demo = try HelperProcess.runRseqtrace(["demo", "--threads", "2", "--events", "1000", "--output", trace], timeout: .seconds(60))
        #expect(demo.exitCode == 0 && demo.stdout.contains("recorded=2002 lost=0 "), "\(demo)")
    }

    deinit { CTFEndToEndTests.removeTree(home) }

    func view(_ arguments: [String]) throws -> HelperProcess.Outcome {
        try HelperProcess.runRseqtrace(["view", trace] + arguments, timeout: .seconds(60))
    }

    static func eventLines(_ run: HelperProcess.Outcome) -> [Substring] { run.stdoutLines.filter { $0.hasPrefix("[") } }

    @Test("--filter: numbers (exact integers, signed, against a decimal), strings quoted or bare, enumeration labels; repeated filters all hold",
          arguments: [
            (["--filter", "seq < 3"], 6),
            (["--filter", "seq<3", "--filter", "thread == 1"], 3),
            (["--filter", "seq >= 998"], 4),
            (["--filter", "seq != 0", "--filter", "seq <= 1"], 2),
            (["--filter", "i64 <= -999"], 2),
            (["--filter", "u64 > 998.5"], 2),
            (["--filter", "short_text == 'naïvet'"], 2),
            (["--filter", "short_text == \"naïve\""], 0),
            (["--filter", "color == red"], 2),
            (["--filter", "color != red"], 0),
            (["--filter", "level == -1"], 2),
            (["--filter", "no_such_field > 0"], 0),
            (["--filter", "check > 18446744073709551615"], 0),
            (["--filter", "check <= 18446744073709551615"], 2000),
          ])
    func filter(arguments: [String], expected: Int) throws {
        let run = try view(arguments)
        #expect(run.exitCode == 0 && run.stderr.isEmpty, "\(run)")
        #expect(Self.eventLines(run).count == expected, "\(arguments): \(run.stdoutLines.prefix(8))")
        if arguments.contains("seq < 3") {
            #expect(Self.eventLines(run).allSatisfy { $0.contains("seq = 0,") || $0.contains("seq = 1,") || $0.contains("seq = 2,") })
        }
    }

    @Test("a malformed --filter, --from or --to is a usage error (64) naming it", arguments: [
        (["--filter", "seq = 3"], "Error: --filter 'seq = 3' is not 'FIELD OP VALUE'"),
        (["--filter", ">= 3"], "Error: --filter '>= 3' is not 'FIELD OP VALUE'"),
        (["--filter", "seq >="], "Error: --filter 'seq >=' is not 'FIELD OP VALUE'"),
        (["--from", "25:00:00"], "Error: --from '25:00:00' is not a time"),
        (["--to", "2026-13-01 00:00:00"], "Error: --to '2026-13-01 00:00:00' is not a time"),
        (["--from", "+1.0000000001"], "Error: --from '+1.0000000001' is not a time"),
    ])
    func malformedSelection(arguments: [String], error: String) throws {
        for command in ["view", "stats"] {
            let run = try HelperProcess.runRseqtrace([command, trace] + arguments, timeout: .seconds(60))
            #expect(run.exitCode == 64, "\(run)")
            #expect(run.stderrLines.first?.hasPrefix(error) == true, "\(run)")
        }
    }

    @Test("--from/--to: a time of day, a date and time, or +seconds after the first record select exactly the records in range")
    func timeRange() throws {
        let all = try view([])
        let lines = Self.eventLines(all)
        #expect(lines.count == 2002)
        // [HH:MM:SS.nnnnnnnnn]: fixed width, so text order is time order (the trace does not cross midnight).
        let times = lines.map { String($0.dropFirst().prefix(18)) }
        let from = times[500], to = times[1500]
        let inRange = times.filter { $0 >= from && $0 <= to }.count
        let stats = try HelperProcess.runRseqtrace(["stats", trace], timeout: .seconds(60))
        let span = try #require(stats.stdoutLines.first { $0.hasPrefix("span: ") }, "\(stats)")
        let date = String(span.dropFirst(6).prefix(10))
        #expect(date.count == 10 && date.split(separator: "-").count == 3, "\(span)")
        for arguments in [["--from", from, "--to", to], ["--from", "\(date) \(from)", "--to", "\(date)T\(to)"]] {
            let run = try view(arguments)
            #expect(run.exitCode == 0, "\(run)")
            #expect(Self.eventLines(run).count == inRange, "\(arguments)")
            #expect(Self.eventLines(run).first.map { String($0.dropFirst().prefix(18)) } == from, "\(arguments)")
        }
        let first = try view(["--to", "+0"])
        #expect(Self.eventLines(first).count == times.filter { $0 == times[0] }.count, "\(first)")
        let none = try view(["--to", "2001-01-01 00:00:00"])
        #expect(none.exitCode == 0 && Self.eventLines(none).isEmpty, "\(none)")
        let counted = try HelperProcess.runRseqtrace(["stats", trace, "--from", from, "--to", to], timeout: .seconds(60))
        #expect(counted.stdoutLines.last?.hasPrefix("stats: events=\(inRange) discarded=0 ") == true, "\(counted)")
    }

    @Test("--cpu naming a CPU the trace does not have: a warning on stderr listing its CPUs, for view and stats")
    func missingCPU() throws {
        for command in ["view", "stats"] {
            let run = try HelperProcess.runRseqtrace([command, trace, "--cpu", "9999"], timeout: .seconds(60))
            #expect(run.exitCode == 0, "\(run)")
            #expect(run.stderrLines.count == 1 && run.stderrLines[0].hasPrefix("warning: --cpu 9999: the trace has no CPU 9999 (its CPUs: 0, "), "\(run)")
            #expect(Self.eventLines(run).isEmpty, "\(run)")
        }
        let present = try view(["--cpu", "0"])
        #expect(present.stderr.isEmpty, "\(present)")
    }

    @Test("view and stats of a directory holding one trace below it read that trace and say so; two traces are refused, listed")
    func traceBelowDirectory() throws {
        let direct = try view([])
        for (command, directory) in [("view", home), ("view", home + "/session"), ("stats", home)] {
            let run = try HelperProcess.runRseqtrace([command, directory], timeout: .seconds(60))
            #expect(run.exitCode == 0, "\(run)")
            #expect(run.stderrLines == ["rseqtrace: reading the trace in \(trace)"], "\(run)")
            if command == "view" { #expect(run.stdout == direct.stdout) }
        }
        let second = home + "/other"
        let demo = try HelperProcess.runRseqtrace(["demo", "--threads", "1", "--events", "10", "--output", second], timeout: .seconds(60))
        #expect(demo.exitCode == 0, "\(demo)")
        defer { CTFEndToEndTests.removeTree(second) }
        let two = try HelperProcess.runRseqtrace(["view", home], timeout: .seconds(60))
        #expect(two.exitCode == 1, "\(two)")
        #expect(two.stderrLines == ["error: \(home) holds 2 traces; read one of them: \(second), \(trace)"], "\(two)")
    }

    @Test("stats --field: count, min, p50, p90, p99, max and mean of a numeric field over the selected events; the program and pid")
    func fieldDistribution() throws {
        let run = try HelperProcess.runRseqtrace(["stats", trace, "--field", "seq", "--filter", "thread == 1", "--field", "short_text"],
                                                 timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        let lines = run.stdoutLines
        #expect(lines.contains("field seq: 1000 values in demo:tick"), "\(run)")
        #expect(lines.contains("field: name=seq count=1000 min=0 p50=499 p90=899 p99=989 max=999 mean=499.5"), "\(run)")
        #expect(lines.contains("field: name=short_text count=0"), "\(run)")
        #expect(lines.last?.hasPrefix("stats: events=1000 discarded=0 ") == true, "\(run)")
        let program = try #require(lines.first { $0.hasPrefix("program: ") }, "\(run)")
        #expect(program.hasPrefix("program: rseqtrace, pid ") && Int(program.dropFirst("program: rseqtrace, pid ".count)) != nil, "\(program)")
    }
}
