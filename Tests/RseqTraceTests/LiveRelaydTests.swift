import Glibc
import RseqTrace
@testable import RseqTraceFormats
import RseqTraceSupport
import Testing

/// Live relay sessions read with stock babeltrace2's `lttng-live` source while `record --relayd`
/// still runs, against a private `lttng-relayd` on loopback (`RelayDaemon`).
@Suite("record --relayd live sessions: babeltrace2 -i lttng-live reads them while they are recorded",
       .serialized,
       .enabled(if: RelayDaemon.isInstalled, "lttng-relayd is not installed (apt-get install lttng-tools)"),
       .enabled(if: HelperProcess.isExecutable(CTFEndToEndTests.babeltrace), "babeltrace2 is not installed"),
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"))
struct LiveRelaydTests {
    /// The live URL of `record`'s session as babeltrace2 lists it at the relay's live port
    /// (`net://127.0.0.1:PORT/host/HOST/rseqtrace-PROGRAM-PID (timer = ..., N client(s) connected)`),
    /// with the listing's line; nil when the listing does not show it.
    static func listedSession(_ relay: RelayDaemon, program: String, recorderPID: pid_t) throws -> (url: String, line: String)? {
        let listing = try HelperProcess.run(CTFEndToEndTests.babeltrace, ["-i", "lttng-live", "net://127.0.0.1:\(relay.livePort)"],
                                            environment: HelperProcess.childEnvironment(), timeout: .seconds(30))
        guard listing.exitCode == 0 else { return nil }
        for line in listing.stdoutLines where line.contains("/rseqtrace-\(program)-\(recorderPID) ") {
            guard let url = line.split(separator: " ").first, url.hasPrefix("net://127.0.0.1:\(relay.livePort)/host/") else { continue }
            return (String(url), String(line))
        }
        return nil
    }

    /// Creates the empty file at `path`; whether it could.
    static func touch(_ path: String) -> Bool {
        // SAFETY: creat takes the path by value; the descriptor is closed at once.
        let made = unsafe creat(path, 0o644)
        if made >= 0 { close(made) }
        return made >= 0
    }

    /// `sh -c` script that waits (at most 60 s) for the file named by its first argument, then runs
    /// `rseqtrace-example` (`$0`) with `arguments`.
    static func startScript(_ arguments: String) -> String {
        "i=0; while [ ! -e \"$1\" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exec \"$0\" \(arguments)"
    }

    /// Lines in the file at `path` (0 when it cannot be read).
    static func lineCount(_ path: String) -> Int {
        (SystemInfo.readSmallFile(path, limit: 64 << 20) ?? "").utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }

    @Test("a live viewer sees events while the program runs, then every recorded event; the listing shows the session",
          .timeLimit(.minutes(3)))
    func viewerReadsWhileRecording() throws {
        let relay = try RelayDaemon(tag: "live")
        let printed = CTFEndToEndTests.temporaryDirectory("relayd-live-viewer.txt")
        CTFEndToEndTests.removeTree(printed)
        defer { CTFEndToEndTests.removeTree(printed) }
        let marker = CTFEndToEndTests.temporaryDirectory("relayd-live-attached")
        CTFEndToEndTests.removeTree(marker)
        defer { CTFEndToEndTests.removeTree(marker) }
        // A viewer attached to a live session reads from the packets the relay has then on: the
        // program starts emitting (two workers, 300 events per second each for 3 s) once the test
        // has seen the viewer attached (the marker file; at most 60 s).
        let script = Self.startScript("2 --duration 3 --rate 300")
        let recorder = try HelperProcess.startRseqtrace(["record", "--relayd", relay.url, "--live-timer-ms", "200", "--",
                                                        "/bin/sh", "-c", script, RelaydTests.example, marker])
        var viewer: ChildProcess?
        defer {
            _ = Self.touch(marker)   // the program's shell stops waiting (it outlives a killed record)
            recorder.signal(SIGKILL)
            _ = recorder.wait(timeout: .seconds(10))
            viewer?.signal(SIGKILL)
            _ = viewer?.wait(timeout: .seconds(10))
        }
        // The session is listed once record has created it (at most 15 s).
        var session: (url: String, line: String)?
        for _ in 0..<60 where session == nil && !recorder.hasExited {
            session = try Self.listedSession(relay, program: "sh", recorderPID: recorder.pid)
            if session == nil { SystemClock.sleep(milliseconds: 250) }
        }
        let listed = try #require(session, "the live listing never showed the session")
        #expect(listed.line.contains(" (timer = 200000, ") && listed.line.hasSuffix(" 0 client(s) connected)"), "\(listed.line)")
        viewer = try ChildProcess.spawn([CTFEndToEndTests.babeltrace, "-i", "lttng-live", listed.url],
                                        environment: HelperProcess.childEnvironment(), stdin: .null, stdout: .file(printed),
                                        stderr: .capture)
        // The listing counts the viewer once it has attached (at most 30 s).
        var attached = false
        for _ in 0..<120 where !attached {
            viewer?.pump()   // its stderr pipe is read while it runs, so that warnings cannot fill it
            attached = try Self.listedSession(relay, program: "sh", recorderPID: recorder.pid)?.line.contains(" 1 client(s) connected)") == true
            if !attached { SystemClock.sleep(milliseconds: 250) }
        }
        #expect(attached, "the listing never showed the viewer attached")
        #expect(Self.touch(marker))
        // Events printed while record (and so the program) still runs: the viewer does not wait
        // for the end of the recording.
        var seenWhileRunning = 0
        while seenWhileRunning == 0 {
            recorder.pump(milliseconds: 50)
            viewer?.pump()
            let lines = Self.lineCount(printed)
            guard !recorder.hasExited else { break }
            seenWhileRunning = lines
        }
        #expect(seenWhileRunning > 0, "the viewer printed nothing while the program ran")
        let run = recorder.wait(timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        // record named the session's live URL (at lttng-relayd's default live port).
        let printedURL = listed.url.replacing(":\(relay.livePort)/", with: ":5344/")
        #expect(run.stderr.contains("rseqtrace: live viewing: rseqtrace view --live \(printedURL) (or babeltrace2 -i lttng-live; 5344 is lttng-relayd's default live port)"),
                "\(run)")
        let summary = try #require(run.stdoutLines.last.flatMap(RecordSummary.init), "\(run)")
        let recorded = try #require(summary.number("recorded"), "\(run)")
        #expect(recorded > 0 && summary.number("lost") == 0, "\(run)")
        // The viewer ends once the relay has closed the session's streams.
        let viewed = try #require(viewer).wait(timeout: .seconds(60))
        #expect(!viewed.timedOut && viewed.exitCode == 0, "\(viewed)")
        #expect(!viewed.stderr.contains(" E ") && !viewed.stderr.contains("ERROR"), "\(viewed)")
        #expect(Self.lineCount(printed) == Int(recorded), "viewer \(viewed); record \(run)")
        // The relay's files hold the same events.
        let directory = try #require(relay.sessionDirectory(run), "\(run)")
        relay.stop()
        #expect(try BabeltraceCount(directory) == BabeltraceCount(events: Int(recorded), discarded: 0))
    }

    @Test("a session recorded with --live-timer-ms 0 is listed with live timer 0 (not live)", .timeLimit(.minutes(2)))
    func notLive() throws {
        let relay = try RelayDaemon(tag: "not-live")
        let marker = CTFEndToEndTests.temporaryDirectory("relayd-not-live-listed")
        CTFEndToEndTests.removeTree(marker)
        defer { CTFEndToEndTests.removeTree(marker) }
        // The program starts (and the recording can end) only once both listings below are done
        // (the marker file; at most 60 s), however slowly babeltrace2 starts on a loaded machine.
        let recorder = try HelperProcess.startRseqtrace(["record", "--relayd", relay.url, "--live-timer-ms", "0", "--",
                                                        "/bin/sh", "-c", Self.startScript("1 --duration 1 --rate 100"),
                                                        RelaydTests.example, marker])
        defer {
            _ = Self.touch(marker)
            recorder.signal(SIGKILL)
            _ = recorder.wait(timeout: .seconds(10))
        }
        var session: (url: String, line: String)?
        for _ in 0..<60 where session == nil && !recorder.hasExited {
            session = try Self.listedSession(relay, program: "sh", recorderPID: recorder.pid)
            if session == nil { SystemClock.sleep(milliseconds: 250) }
        }
        let listed = try #require(session, "the live listing never showed the session")
        #expect(listed.line.contains(" (timer = 0, "), "\(listed.line)")
        // rseqtrace view --live lists the sessions as babeltrace2 does (it runs it).
        let viewed = try HelperProcess.runRseqtrace(["view", "--live", "net://127.0.0.1:\(relay.livePort)"], timeout: .seconds(30))
        #expect(viewed.exitCode == 0, "\(viewed)")
        #expect(viewed.stdoutLines.contains { $0 == listed.line }, "\(viewed)")
        #expect(Self.touch(marker))
        let run = recorder.wait(timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        #expect(!run.stderr.contains("live viewing"), "\(run)")
    }

    @Test("view --live takes a net:// URL and neither a trace directory nor an event selection")
    func viewLiveValidation() throws {
        for arguments in [["--live", "http://h"], ["--live", "net://h", "trace"], ["--live", "net://h", "--limit", "3"],
                          ["--live", "net://h", "--event", "x"]] {
            let run = try HelperProcess.runRseqtrace(["view"] + arguments, timeout: .seconds(30))
            #expect(run.exitCode == 64, "\(arguments): \(run)")
            #expect(run.stderr.contains("--live"), "\(arguments): \(run)")
        }
    }

    @Test("a program written without -- after the relay options is named in the error, without their values")
    func programWithoutTerminator() throws {
        let run = try HelperProcess.runRseqtrace(["record", "--relayd", "net://127.0.0.1", "--relayd-timeout-ms", "500",
                                                  "--live-timer-ms", "200", "./my-program", "1"], timeout: .seconds(30))
        #expect(run.exitCode == 64, "\(run)")
        #expect(run.stderr.contains("put the program after `--`: rseqtrace record [options] -- ./my-program 1"), "\(run)")
    }

    @Test("--live-timer-ms accepts 0 or 100...60000")
    func liveTimerValidation() throws {
        for bad in ["-1", "50", "60001", "x"] {
            let run = try HelperProcess.runRseqtrace(["record", "--relayd", "net://127.0.0.1", "--live-timer-ms", bad, "--", "/bin/true"],
                                                     timeout: .seconds(30))
            #expect(run.exitCode == 64, "\(bad): \(run)")
            #expect(run.stderr.contains("--live-timer-ms"), "\(bad): \(run)")
        }
    }

    @Test("relay settings without --relayd are refused before the program starts, naming the flag",
          arguments: [["--live-timer-ms", "200"], ["--relayd-timeout-ms", "1000"], ["--relayd-optional"]])
    func relaySettingsNeedARelay(_ flag: [String]) throws {
        let marker = "/tmp/rseqtrace-relay-flag-\(getpid())-\(flag[0].dropFirst(2))"
        for command in [["record"] + flag + ["--", "/usr/bin/touch", marker], ["attach", "1"] + flag] {
            let run = try HelperProcess.runRseqtrace(command, timeout: .seconds(30))
            #expect(run.exitCode == 64, "\(command): \(run)")
            #expect(run.stderr.contains("\(flag[0]) needs --relayd URL"), "\(command): \(run)")
        }
        // SAFETY: access reads the NUL-terminated copy of the path Swift passes for the call.
        #expect(unsafe access(marker, F_OK) != 0, "the program must not have run")
    }

    @Test("a live session's metadata grows by additions that open with the CTF signature: new env entries, then new event declarations")
    func liveMetadataAdditions() {
        let event = { (name: String, id: Int) in "event {\n\tname = \"\(name)\";\n\tid = \(id);\n\tfields := struct {\n\t};\n};\n" }
        let sent = Array(("/* CTF 1.8 */\n\nenv {\n\tvpid = 1;\n};\n\n" + event("a", 1) + "\n" + event("b", 3) + "\n").utf8)
        let changed = Array(("/* CTF 1.8 */\n\nenv {\n\tvpid = 2;\n\tthread_name_7 = \"w\";\n};\n\n" + event("a", 1) + "\n" + event("c", 2)
                             + "\n" + event("b", 3) + "\n" + event("d", 4) + "\n").utf8)
        let addition = RelayTraceSink.liveAddition(sent: sent, changed)
        #expect(String(decoding: addition, as: UTF8.self)
                == "/* CTF 1.8 */\n\nenv {\n\tthread_name_7 = \"w\";\n};\n\n" + event("c", 2) + "\n" + event("d", 4) + "\n")
        #expect(RelayTraceSink.liveAddition(sent: sent + addition, changed) == [])
        #expect(RelayTraceSink.liveAddition(sent: sent, sent) == [])
        #expect(RelayTraceSink.eventDeclarations(sent + addition).map { String(decoding: $0, as: UTF8.self) }
                == [event("a", 1), event("b", 3), event("c", 2), event("d", 4)])
    }

    @Test("a live session's metadata with its additions reads as the whole text: thread names, schemas, the first env values")
    func liveMetadataReads() throws {
        let clock = CycleClock(frequency: 1_000_000_000, cycleReference: 0, monotonicReference: 5_000_000_000,
                               realtimeReference: 1_700_000_000_123_456_789)
        var description = CTFTraceDescription(
            uuid: Array(0..<16), clock: clock, bootID: Array(repeating: 0xAB, count: 16), hostname: "h",
            traceName: "t", procname: "first", pid: 77, cpuRingCount: 1,
            schemas: [3: EventSchema(name: "t:a", fields: [EventField("x", .uint32)])])
        let first = Array(CTFMetadata.text(description, unknownIDs: []).utf8)
        description.procname = "second"
        description.threadNames = [78: "worker \"1\"", 79: "w2"]
        description.schemas[2] = EventSchema(name: "t:b", fields: [EventField("y", .uint64)])
        let grown = first + RelayTraceSink.liveAddition(sent: first, Array(CTFMetadata.text(description, unknownIDs: [5]).utf8))
        let metadata = try CTFMetadataParser.parse(grown, path: "memory")
        #expect(metadata.threadNames == [78: "worker \"1\"", 79: "w2"])
        #expect(metadata.environmentValue("procname")?.description == "first")
        #expect(metadata.events.keys.sorted() == [2, 3, 5])
        #expect(metadata.events[2]?.name == "t:b")
    }
}
