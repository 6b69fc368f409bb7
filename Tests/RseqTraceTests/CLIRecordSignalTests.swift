#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceSupport
import CRseqTrace
import RseqTrace
import RseqTraceSupport
import SystemPackage
import Testing

/// `rseqtrace record` stopped by a signal, killed, or failing: the trace it leaves, its exit
/// status, and what it leaves behind (nothing under /dev/shm, no half-made output directory).
@Suite("CLI: rseqtrace record under signals and failures",
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath) && HelperProcess.isExecutable(HelperProcess.helperPath),
                "rseqtrace and rseqtrace-testhelper are built next to the tests"))
struct CLIRecordSignalTests {
    /// A scratch directory for one test: `output` (the trace) and `ready` (the traced helper's pid).
    struct Scratch {
        let root: String
        var output: String { root + "/trace" }
        var ready: String { root + "/ready" }

        init(_ tag: String) {
            root = CTFEndToEndTests.temporaryDirectory("signal-\(tag)")
            CTFEndToEndTests.removeTree(root)
            // SAFETY: mkdir takes the path by value.
            _ = unsafe mkdir(root, 0o700)
        }

        func remove() { CTFEndToEndTests.removeTree(root) }
    }

    /// Starts `rseqtrace record` of `emit-until-signal` and waits (at most 60 s) until the helper
    /// has emitted its first records; returns the recorder and the helper's pid.
    func startRecording(_ scratch: Scratch, helperArguments: [String] = []) throws -> (ChildProcess, pid_t) {
        let recorder = try HelperProcess.startRseqtrace(
            ["record", "--output", scratch.output, "--", HelperProcess.helperPath, "emit-until-signal",
             "--ready-file", scratch.ready] + helperArguments)
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline {
            if let text = SystemInfo.readSmallFile(scratch.ready),
               let line = text.split(separator: "\n").first, let pid = pid_t(line) {
                return (recorder, pid)
            }
            if recorder.hasExited { break }
            recorder.pump(milliseconds: 20)
        }
        recorder.signal(SIGKILL)
        Issue.record("the traced helper never became ready\n\(recorder.wait(timeout: .seconds(10)))")
        throw CancellationError()
    }

    /// `rseqtrace stats` of a trace directory: its exit code and `stats:` fields.
    func stats(_ directory: String) throws -> (HelperProcess.Outcome, [String: String]) {
        let run = try HelperProcess.runRseqtrace(["stats", directory], timeout: .seconds(60))
        return (run, run.fields(of: "stats: ") ?? [:])
    }

    /// The bytes of the stream files (`channel0_<n>`) in `directory`.
    func streamBytes(_ directory: String) -> Int64 {
        var total: Int64 = 0
        for entry in SystemInfo.directoryEntries(directory) ?? [] where entry.hasPrefix("channel0_") {
            if let info = try? FilePath(directory + "/" + entry).stat() { total += info.size }
        }
        return total
    }

    /// The /dev/shm name a recorder with pid `pid` used for its buffer when it had one.
    func shmLeft(byRecorder pid: pid_t) -> Bool {
        // SAFETY: access takes the path by value.
        unsafe access("/dev/shm/rseqtrace-record-\(pid)", F_OK) == 0
    }

    @Test("SIGTERM or SIGHUP to record: forwarded to the program, the trace completed and readable, every emitted record recorded or counted lost, exit status 128 + signal",
          .timeLimit(.minutes(2)), arguments: [SIGTERM, SIGHUP])
    func terminationSignalFinishesTheTrace(signal: Int32) throws {
        let scratch = Scratch("\(signal)")
        defer { scratch.remove() }
        let (recorder, helper) = try startRecording(scratch)
        recorder.signal(signal)
        let run = recorder.wait(timeout: .seconds(60))
        kill(helper, SIGKILL)   // (dead already when record forwarded the signal)
        #expect(run.exitCode == 128 + signal, "\(run)")
        let emitted = try #require(run.fields(of: "emit-until-signal: "), "\(run)")
        #expect(emitted["signal"] == "\(signal)", "\(run)")
        let summary = try #require(run.fields(of: "summary: "), "\(run)")
        let recorded = try #require(summary["recorded"].flatMap { UInt64($0) }, "\(run)")
        let lost = try #require(summary["lost"].flatMap { UInt64($0) }, "\(run)")
        #expect(recorded + lost == emitted["emitted"].flatMap { UInt64($0) }, "\(run)")
        #expect(summary["exit_status"] == "\(128 + signal)", "\(run)")
        #expect(!shmLeft(byRecorder: run.pid))
        let (read, fields) = try stats(scratch.output)
        #expect(read.exitCode == 0, "\(read)")
        #expect(fields["events"] == "\(recorded)", "\(read)")
        #expect(fields["discarded"] == "\(lost)", "\(read)")
    }

    @Test("a program that ignores the forwarded SIGTERM is killed after the grace period; record writes the trace and exits 143",
          .timeLimit(.minutes(2)))
    func gracePeriodIsBounded() throws {
        let scratch = Scratch("grace")
        defer { scratch.remove() }
        let (recorder, helper) = try startRecording(scratch, helperArguments: ["--ignore"])
        recorder.signal(SIGTERM)
        let run = recorder.wait(timeout: .seconds(60))
        kill(helper, SIGKILL)
        #expect(run.exitCode == 128 + SIGTERM, "\(run)")
        #expect(run.stderr.contains("has not exited 5 s after SIGTERM: killing it (SIGKILL)"), "\(run)")
        // SAFETY: kill with signal 0 only checks whether the process exists.
        #expect(kill(helper, 0) != 0 || errno == ESRCH, "the helper is gone")
        let summary = try #require(run.fields(of: "summary: "), "\(run)")
        #expect(summary["exit_status"] == "\(128 + SIGTERM)", "\(run)")
        #expect(!shmLeft(byRecorder: run.pid))
        let (read, fields) = try stats(scratch.output)
        #expect(read.exitCode == 0, "\(read)")
        #expect(fields["events"] == summary["recorded"], "\(read)")
    }

    @Test("SIGTERM while a descendant of the exited program keeps writing: record stops draining within the grace period and writes the trace",
          .timeLimit(.minutes(2)))
    func drainAfterExitIsBoundedBySignal() throws {
        let scratch = Scratch("descendant")
        defer { scratch.remove() }
        // The program starts the writer in the background and exits at once; the writer keeps
        // the buffer busy, so the drain that follows the program's exit never goes idle.
        let recorder = try HelperProcess.startRseqtrace(
            ["record", "--output", scratch.output, "--", "/bin/sh", "-c",
             "\"$0\" emit-until-signal --ignore --ready-file \"$1\" --time-limit 60 & exit 0",
             HelperProcess.helperPath, scratch.ready])
        var writer: pid_t?
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while writer == nil && ContinuousClock.now < deadline {
            writer = SystemInfo.readSmallFile(scratch.ready).flatMap { $0.split(separator: "\n").first }.flatMap { pid_t($0) }
            recorder.pump(milliseconds: 20)
        }
        let descendant = try #require(writer, "the background writer never became ready")
        defer { kill(descendant, SIGKILL) }
        recorder.signal(SIGTERM)
        let ended = recorder.waitForExit(milliseconds: 60_000)
        kill(descendant, SIGKILL)   // it holds the recorder's output pipes
        let run = recorder.wait(timeout: .seconds(60))
        #expect(ended == .exited(0), "\(run)")
        let summary = try #require(run.fields(of: "summary: "), "\(run)")
        #expect(summary["exit_status"] == "0", "\(run)")
        let (read, fields) = try stats(scratch.output)
        #expect(read.exitCode == 0, "\(read)")
        #expect(fields["events"] == summary["recorded"], "\(read)")
    }

    @Test("record killed with SIGKILL: the metadata exists and stats reads the events already written; nothing left in /dev/shm",
          .timeLimit(.minutes(2)))
    func killedRecorderLeavesAReadableTrace() throws {
        let scratch = Scratch("kill")
        defer { scratch.remove() }
        let (recorder, helper) = try startRecording(scratch)
        defer { kill(helper, SIGKILL) }
        // Wait (at most 60 s) until drained records have reached a stream file and the metadata
        // describes the typed event the helper registered after the recording started.
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        var written: Int64 = 0
        var describesLate = false
        while !(written > 0 && describesLate) && ContinuousClock.now < deadline && !recorder.hasExited {
            written = streamBytes(scratch.output)
            describesLate = SystemInfo.readSmallFile(scratch.output + "/metadata", limit: 1 << 20)?.contains("\"helper:late\"") == true
            recorder.pump(milliseconds: 20)
        }
        try #require(written > 0 && describesLate, "no stream data, or no metadata for helper:late, within 60 s")
        recorder.signal(SIGKILL)
        let ended = recorder.waitForExit(milliseconds: 60_000)
        #expect(ended == .signaled(SIGKILL))
        // The program outlives a killed recorder (see record --help); it holds the recorder's
        // output pipes, so it goes before the recorder's output is collected.
        #expect(kill(helper, 0) == 0, "the traced program keeps running")
        kill(helper, SIGKILL)
        let run = recorder.wait(timeout: .seconds(60))
        #expect(run.signal == SIGKILL, "\(run)")
        #expect(!shmLeft(byRecorder: run.pid))
        let (read, fields) = try stats(scratch.output)
        #expect(read.exitCode == 0, "\(read)")
        #expect((fields["events"].flatMap { UInt64($0) } ?? 0) > 0, "\(read)")
        if HelperProcess.isExecutable(CTFEndToEndTests.babeltrace) {
            let bt = try HelperProcess.run(CTFEndToEndTests.babeltrace, [scratch.output], environment: HelperProcess.childEnvironment(),
                                           timeout: .seconds(60))
            #expect(bt.exitCode == 0, "\(bt.stderr)")
            #expect(UInt64(bt.stdoutLines.count) == fields["events"].flatMap { UInt64($0) }, "babeltrace2 prints every event stats counts")
        }
    }

    @Test("record started with stdin and stderr closed hands the program a buffer descriptor above 2, never one of its standard streams",
          .timeLimit(.minutes(1)))
    func bufferDescriptorAvoidsStandardStreams() throws {
        let scratch = Scratch("closed-std")
        defer { scratch.remove() }
        let run = try HelperProcess.run("/bin/sh", ["-c", "exec \"$0\" record --output \"$1\" -- /bin/sh -c 'echo \"buffer=$RSEQTRACE_BUFFER\"' 0<&- 2>&-",
                                                    HelperProcess.rseqtracePath, scratch.output],
                                        environment: HelperProcess.environment(), timeout: .seconds(50))
        #expect(run.exitCode == 0, "\(run)")
        let value = try #require(run.stdoutLines.first { $0.hasPrefix("buffer=fd:") }, "\(run)")
        let descriptor = try #require(Int32(value.dropFirst("buffer=fd:".count)), "\(run)")
        #expect(descriptor > 2, "\(run)")
    }

    @Test("record that cannot start its program exits 1 and leaves no output directory", .timeLimit(.minutes(1)))
    func failedRecordRemovesItsOutput() throws {
        let scratch = Scratch("fail")
        defer { scratch.remove() }
        let run = try HelperProcess.runRseqtrace(["record", "--output", scratch.output, "--", scratch.root + "/no-such-program"],
                                                 timeout: .seconds(60))
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stderr.contains("cannot run \(scratch.root)/no-such-program"), "\(run)")
        // SAFETY: access takes the path by value.
        #expect(unsafe access(scratch.output, F_OK) != 0, "\(scratch.output) was removed")
        #expect(!shmLeft(byRecorder: run.pid))
        // The same --output works at once.
        let again = try HelperProcess.runRseqtrace(["record", "--output", scratch.output, "--", "/bin/true"], timeout: .seconds(60))
        #expect(again.exitCode == 0, "\(again)")
    }

    @Test("record into an existing empty directory that fails leaves the directory, empty", .timeLimit(.minutes(1)))
    func failedRecordKeepsAnEmptyGivenDirectory() throws {
        let scratch = Scratch("fail-existing")
        defer { scratch.remove() }
        // SAFETY: mkdir takes the path by value.
        _ = unsafe mkdir(scratch.output, 0o755)
        let run = try HelperProcess.runRseqtrace(["record", "--output", scratch.output, "--", scratch.root + "/no-such-program"],
                                                 timeout: .seconds(60))
        #expect(run.exitCode == 1, "\(run)")
        #expect(SystemInfo.directoryEntries(scratch.output) == [], "\(run)")
    }

    @Test("demo refuses a sub-buffer too small for its demo:types events, naming the size that works; with that size it verifies",
          .timeLimit(.minutes(2)))
    func demoSmallSubbuffers() throws {
        for size in ["256", "512"] {
            let refused = try HelperProcess.runRseqtrace(["demo", "--buffer-size", "16K", "--subbuffer-size", size, "--no-output"],
                                                         timeout: .seconds(60))
            #expect(refused.exitCode == 64, "\(refused)")
            #expect(refused.stderr.contains("--subbuffer-size \(size) cannot hold the demo's demo:types events"), "\(refused)")
            #expect(refused.stderr.contains("use --subbuffer-size 1024 or more"), "\(refused)")
        }
        let run = try HelperProcess.runRseqtrace(["demo", "--buffer-size", "16K", "--subbuffer-size", "1K", "--threads", "2",
                                                  "--events", "20000", "--no-output"], timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains(" demo:types records intact, 0 damaged, 0 duplicated"), "\(run)")
    }

    @Test("a /dev/shm too small for the buffer's header, registry, lines and counter names is reported as memory that could not be allocated, with what to do (private mount namespace)",
          .enabled(if: geteuid() == 0 && HelperProcess.isExecutable("/usr/bin/unshare"), "needs root and unshare for a private tmpfs"),
          .timeLimit(.minutes(1)))
    func tooSmallSharedMemory() throws {
        // 64 KiB: less than the header, registry, lines table and counter names (132 KiB), which are
        // populated at creation (the rings are populated as producers first open their sub-buffers).
        let script = "mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 77; exec \(HelperProcess.rseqtracePath) demo --no-output --threads 1 --events 10"
        let run = try HelperProcess.run("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script],
                                        environment: HelperProcess.environment(), timeout: .seconds(50))
        try #require(run.exitCode != 77, "cannot mount a tmpfs here: \(run)")
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stderr.contains("bytes of shared memory for the trace buffer (/dev/shm/rseqtrace-demo-"), "\(run)")
        #expect(run.stderr.contains("choose smaller rings (--buffer-size) or free some memory"), "\(run)")
        #expect(!run.stderr.contains("Bad address"), "\(run)")
    }
}

/// `SharedTraceBuffer.create(_:in:)` and `open(descriptor:)`: the form `rseqtrace record` hands to
/// the program it runs.
@Suite("SharedTraceBuffer in an inherited memory file")
struct MemoryFileBufferTests {
    @Test("a buffer created in a sealed memfd attaches by descriptor with the same geometry, and its size cannot change")
    func createAndAttach() throws {
        let memory = try MemoryFile.create(label: "rseqtrace-test-\(getpid())")
        defer { try? memory.close() }
        let configuration = TraceConfiguration(name: "rseqtrace-test-memfd-\(getpid())", ringSize: 8192, subbufferSize: 1024,
                                               cpuRingCount: 2)
        let created = try SharedTraceBuffer.create(configuration, in: memory)
        try MemoryFile.sealSize(memory)
        let seals = try #require(MemoryFile.seals(memory))
        #expect(seals & Int32(RSEQTRACE_SEAL_SHRINK | RSEQTRACE_SEAL_GROW) == Int32(RSEQTRACE_SEAL_SHRINK | RSEQTRACE_SEAL_GROW))
        #expect(throws: Errno.self) { try memory.resize(to: 4096) }
        let attached = try SharedTraceBuffer.open(descriptor: memory.rawValue)
        #expect(attached.layout == created.layout)
        #expect(attached.name == "fd:\(memory.rawValue)")
        // The descriptor stays open for the process's own children.
        #expect((try? FileDescriptor(rawValue: memory.rawValue).stat()) != nil)
        // SAFETY: access takes the path by value.
        #expect(unsafe access("/dev/shm/" + configuration.name, F_OK) != 0, "no name under /dev/shm")
    }

    @Test("open(descriptor:) refuses a descriptor that is not open and a file that is not a trace object")
    func refusals() throws {
        // (A number far above any descriptor limit: a closed one could be reused by a concurrent test.)
        let number: Int32 = 1_000_000_000
        #expect { try SharedTraceBuffer.open(descriptor: number) } throws: { ($0 as? TraceError)?.code == .notFound }
        let other = try MemoryFile.create(label: "rseqtrace-test-other")
        defer { try? other.close() }
        try other.resize(to: 8192)
        #expect { try SharedTraceBuffer.open(descriptor: other.rawValue) } throws: { ($0 as? TraceError)?.code == .notATraceObject }
    }
}
