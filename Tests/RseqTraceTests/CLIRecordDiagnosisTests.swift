import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace

/// What `record` says in its own output (standard output, before the summary line) about a recording
/// that is probably not what the user wanted.
@Suite("CLI: record's warnings about empty recordings, unmatched patterns and empty strings",
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"))
struct CLIRecordDiagnosisTests {
    /// Runs `rseqtrace record --output DIR EXTRA -- PROGRAM...` in a fresh directory it removes after.
    static func record(_ tag: String, _ extra: [String], _ program: [String], setting: [String: String] = [:]) throws
        -> (outcome: HelperProcess.Outcome, warnings: [String]) {
        let output = CTFEndToEndTests.temporaryDirectory("diagnosis-\(tag)")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(["record", "--output", output] + extra + ["--"] + program,
                                                 setting: setting, timeout: .seconds(90))
        let warnings = run.stdoutLines.filter { $0.hasPrefix("warning: ") }.map { String($0.dropFirst(9)) }
        // The warnings come before the summary line, which stays last.
        #expect(run.stdoutLines.last.flatMap(RecordSummary.init) != nil, "\(run)")
        return (run, warnings)
    }

    @Test("a program that never attaches (not instrumented): recorded 0 events, never attached, in record's own output",
          .timeLimit(.minutes(1)))
    func neverAttached() throws {
        let (run, warnings) = try Self.record("never", [], ["/bin/true"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(warnings == ["""
            recorded 0 events: /bin/true never attached to the trace buffer. It is not instrumented with RseqTrace, \
            reached no tracepoint, or writes into a buffer of its own: an instrumented program attaches to the buffer \
            named by RSEQTRACE_BUFFER when it first reaches a tracepoint (or calls TraceRuntime.attachFromEnvironment())
            """], "\(run)")
    }

    @Test("a program whose only tracepoint has a declaration error attached but enabled nothing: record says so and points at the program's stderr",
          .timeLimit(.minutes(1)))
    func declarationError() throws {
        let (run, warnings) = try Self.record("declaration", [], [HelperProcess.helperPath, "instrumented", "--scenario", "declaration-error"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stderr.contains("rseqtrace: tracepoint inst:wrong_count stays disabled: it declares 2 field type(s) but 1 field name(s)"), "\(run)")
        #expect(warnings == ["""
            recorded 0 events: \(HelperProcess.helperPath) attached to the trace buffer but enabled no event. The event \
            rules disabled every event it reached, its tracepoints were disabled by a declaration error (reported on its \
            standard error as 'rseqtrace: tracepoint NAME stays disabled: ...'), or it attached a buffer of its own
            """], "\(run)")
    }

    @Test("an --enable pattern that matches no event is named with the events recorded (patterns are case-sensitive)",
          .timeLimit(.minutes(1)))
    func unmatchedEnablePattern() throws {
        let (run, warnings) = try Self.record("unmatched", ["--enable", "HTTP:*,inst:scalars", "--enable", "nothing:*"],
                                              [HelperProcess.helperPath, "instrumented", "--scenario", "env", "--events", "5"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("recorded 5 events, lost 0"), "\(run)")
        #expect(warnings == [
            "--enable pattern 'HTTP:*' matched no event; events recorded: inst:scalars (patterns are case-sensitive)",
            "--enable pattern 'nothing:*' matched no event; events recorded: inst:scalars (patterns are case-sensitive)",
        ], "\(run)")
    }

    @Test("an inherited RSEQTRACE_EVENTS that enables nothing the program has: both the empty recording and the pattern are reported",
          .timeLimit(.minutes(1)))
    func unmatchedEnvironmentPattern() throws {
        let (run, warnings) = try Self.record("envrules", [], [HelperProcess.helperPath, "instrumented", "--scenario", "env", "--events", "5"],
                                              setting: [TraceRuntime.eventsVariable: "Http:*"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(warnings == [
            """
            recorded 0 events: \(HelperProcess.helperPath) attached to the trace buffer but enabled no event. The event \
            rules disabled every event it reached (rules: Http:*), its tracepoints were disabled by a declaration error \
            (reported on its standard error as 'rseqtrace: tracepoint NAME stays disabled: ...'), or it attached a buffer of its own
            """,
            "RSEQTRACE_EVENTS pattern 'Http:*' matched no event; events recorded: none (patterns are case-sensitive)",
        ], "\(run)")
    }

    @Test("record recommends rseqtrace view, and warns about babeltrace2 2.0.x when the trace has empty strings", .timeLimit(.minutes(1)))
    func emptyStrings() throws {
        // emit-types with 6 events: the first inst:text event has three empty strings (s, bounded, sub).
        let (run, warnings) = try Self.record("empty", [], [HelperProcess.helperPath, "instrumented", "--scenario", "emit-types", "--events", "6"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdoutLines.contains { $0.hasPrefix("read it with: rseqtrace view /tmp/") }, "\(run)")
        #expect(warnings == ["""
            3 string field value(s) of this trace are empty: babeltrace2 2.0.x shows an empty string field with the \
            value of an earlier event's field; rseqtrace view shows them as ""
            """], "\(run)")
    }

    @Test("demo's trace has empty strings (demo:types text): demo recommends rseqtrace view and warns about babeltrace2 2.0.x",
          .timeLimit(.minutes(1)))
    func demoEmptyStrings() throws {
        let output = CTFEndToEndTests.temporaryDirectory("diagnosis-demo")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(["demo", "--threads", "1", "--events", "1000", "--output", output], timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdoutLines.contains("read it with: rseqtrace view \(output)   (or rseqtrace stats, rseqtrace export, babeltrace2)"), "\(run)")
        let warnings = run.stdoutLines.filter { $0.hasPrefix("warning: ") }
        #expect(warnings.count == 1 && warnings.allSatisfy {
            $0.hasSuffix(" string field value(s) of this trace are empty: babeltrace2 2.0.x shows an empty string field with the value of an earlier event's field; rseqtrace view shows them as \"\"")
        }, "\(run)")
    }

    @Test("a recording without empty strings or surprises has no warning", .timeLimit(.minutes(1)))
    func noWarnings() throws {
        let example = HelperProcess.buildDirectory + "/rseqtrace-example"
        let (run, warnings) = try Self.record("clean", [], [example, "1", "50"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("recorded 50 events, lost 0"), "\(run)")
        #expect(warnings == [], "\(run)")
    }
}
