import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport
import SystemPackage

// Process-level tests of live tracing (docs/LiveTracing.md): the built `rseqtrace` (list, attach,
// snapshot, stats, view) against `rseqtrace-example` processes that it did not start. Every
// process a test starts is killed and reaped when the test ends, whatever happened, and every
// wait is bounded.

/// `summary: processes=<n> recorded=<n> lost=<n>`, the last line of `attach`, parsed strictly.
struct AttachSummary: Equatable, CustomStringConvertible {
    var processes: Int
    var recorded: Int
    var lost: Int

    init(processes: Int, recorded: Int, lost: Int) {
        self.processes = processes
        self.recorded = recorded
        self.lost = lost
    }

    init?(_ line: Substring?) {
        guard let values = strictFields(line, ["processes", "recorded", "lost"]),
              let processes = Int(values[0]), let recorded = Int(values[1]), let lost = Int(values[2]) else { return nil }
        self.init(processes: processes, recorded: recorded, lost: lost)
    }

    var description: String { "processes=\(processes) recorded=\(recorded) lost=\(lost)" }
}

/// `summary: pid=<n> recorded=<n> overwritten=<n> lost=<n> state=<running|exited>`, the last line
/// of `snapshot`, parsed strictly.
struct SnapshotSummary: CustomStringConvertible {
    var pid: Int32
    var recorded: Int
    var overwritten: Int
    var lost: Int
    var state: String

    init?(_ line: Substring?) {
        guard let values = strictFields(line, ["pid", "recorded", "overwritten", "lost", "state"]),
              let pid = Int32(values[0]), let recorded = Int(values[1]), let overwritten = Int(values[2]),
              let lost = Int(values[3]), ["running", "exited"].contains(values[4]) else { return nil }
        self.pid = pid
        self.recorded = recorded
        self.overwritten = overwritten
        self.lost = lost
        state = String(values[4])
    }

    var description: String { "pid=\(pid) recorded=\(recorded) overwritten=\(overwritten) lost=\(lost) state=\(state)" }
}

/// The values of `summary: k1=v1 k2=v2 ...` when the line holds exactly `keys`, in order, each
/// with a non-empty value.
private func strictFields(_ line: Substring?, _ keys: [String]) -> [Substring]? {
    guard let words = line?.split(separator: " ", omittingEmptySubsequences: false),
          words.count == keys.count + 1, words[0] == "summary:" else { return nil }
    var values: [Substring] = []
    for (word, key) in zip(words.dropFirst(), keys) {
        guard word.hasPrefix(key + "="), word.count > key.count + 1 else { return nil }
        values.append(word.dropFirst(key.count + 1))
    }
    return values
}

/// One row of `rseqtrace list`: PID STATE EVENTS ENABLED BUFFER RESIDENT MODE COMMAND.
struct ListRow {
    var state: String
    var events: String
    var enabled: String
    var mode: String
    /// The whole line.
    var line: String
}

/// The `example:work` events of one trace, as `rseqtrace view` prints them.
struct WorkEvents {
    /// Iterations per worker, in the order printed.
    var byWorker: [UInt32: [UInt64]] = [:]
    var count = 0
    /// The sum of the `discarded N events` lines.
    var discarded = 0

    /// Every (worker, iteration) pair.
    var pairs: [WorkItem] { byWorker.flatMap { worker, iterations in iterations.map { WorkItem(worker: worker, iteration: $0) } } }
}

struct WorkItem: Hashable {
    var worker: UInt32
    var iteration: UInt64
}

@Suite("Live tracing: list, attach, snapshot and recover programs rseqtrace did not start",
       .serialized,
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath)
                    && HelperProcess.isExecutable(HelperProcess.buildDirectory + "/rseqtrace-example"),
                "rseqtrace and rseqtrace-example are built next to the tests (swift build --build-tests)"))
struct LiveTracingTests {
    static var example: String { HelperProcess.buildDirectory + "/rseqtrace-example" }

    // MARK: - attach, detach, attach again

    @Test("attach to a running program, detach, attach again: each records a gapless run of its events, stats reads the trace, and the program runs on",
          .timeLimit(.minutes(3)))
    func attachDetachReattach() throws {
        let target = try Self.startExample(["2", "--duration", "300", "--rate", "500"])
        defer { Self.stop(target) }
        try #require(Self.waitUntilTraceable(target), "the example program never opened its control socket")
        let pid = target.pid
        #expect(try Self.listRow(pid)?.state == "idle")
        var previous: [UInt32: UInt64] = [:]
        for round in 1...2 {
            let output = Self.directory("reattach-\(round)")
            Self.removeTree(output)
            defer { Self.removeTree(output) }
            let run = try HelperProcess.runRseqtrace(["attach", "\(pid)", "--duration", "1", "--output", output], timeout: .seconds(120))
            #expect(run.exitCode == 0, "\(run)")
            #expect(run.stderr == "rseqtrace: attached to process \(pid) (rseqtrace-example), discard buffer\n", "\(run)")
            let summary = try #require(AttachSummary(run.stdoutLines.last), "round \(round): \(run)")
            #expect(summary.processes == 1 && summary.recorded > 0, "\(run)")
            // 2 x 500 events/s into 4 MiB rings drained every 20 ms: nothing is lost (even if the
            // consumer is held up for a minute).
            #expect(summary.lost == 0, "\(run)")
            let process = try #require(Self.processLines(run).first, "\(run)")
            #expect(process["pid"] == "\(pid)" && process["recorded"] == "\(summary.recorded)" && process["lost"] == "0"
                    && process["state"] == "detached", "\(run)")
            #expect(SystemInfo.directoryEntries(output)?.sorted() == ["rseqtrace-example-\(pid)"])
            let stats = try Self.stats(output)
            #expect(stats == ["events": "\(summary.recorded)", "discarded": "0"], "round \(round)")
            let events = try Self.workEvents(output + "/rseqtrace-example-\(pid)")
            #expect(events.count == summary.recorded && events.discarded == 0)
            #expect(Set(events.byWorker.keys) == [0, 1], "both workers recorded")
            for (worker, iterations) in events.byWorker {
                Self.expectGapless(iterations, after: previous[worker], "round \(round), worker \(worker)")
                previous[worker] = iterations.max()
            }
            // Detached, the program goes on, back to its state before.
            #expect(!target.hasExited, "the program ended after round \(round)")
            #expect(try Self.listRow(pid)?.state == "idle", "round \(round)")
        }
    }

    // MARK: - Two processes in one trace

    @Test("attach PID1 PID2 records both into one trace, one directory per process, each event attributed to its process",
          .timeLimit(.minutes(3)))
    func twoProcesses() throws {
        let first = try Self.startExample(["2", "--duration", "300", "--rate", "500"])
        defer { Self.stop(first) }
        let second = try Self.startExample(["1", "--duration", "300", "--rate", "1000"])
        defer { Self.stop(second) }
        try #require(Self.waitUntilTraceable(first) && Self.waitUntilTraceable(second), "an example program never opened its control socket")
        let output = Self.directory("two")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(["attach", "\(first.pid)", "\(second.pid)", "--duration", "1", "--output", output],
                                                 timeout: .seconds(120))
        #expect(run.exitCode == 0, "\(run)")
        let summary = try #require(AttachSummary(run.stdoutLines.last), "\(run)")
        #expect(summary.processes == 2 && summary.lost == 0, "\(run)")
        let processes = Self.processLines(run)
        #expect(processes.map { $0["pid"] } == ["\(first.pid)", "\(second.pid)"], "\(run)")
        #expect(processes.compactMap { $0["recorded"].flatMap { Int($0) } }.reduce(0, +) == summary.recorded, "\(run)")
        #expect(Set(SystemInfo.directoryEntries(output) ?? []) == ["rseqtrace-example-\(first.pid)", "rseqtrace-example-\(second.pid)"])
        for (target, process, workers) in [(first, processes.first, Set<UInt32>([0, 1])), (second, processes.last, Set<UInt32>([0]))] {
            let trace = output + "/rseqtrace-example-\(target.pid)"
            let recorded = try #require(process?["recorded"].flatMap { Int($0) }, "\(run)")
            #expect(recorded > 0 && process?["state"] == "detached", "\(run)")
            // The trace says whose events it holds.
            let stats = try HelperProcess.runRseqtrace(["stats", trace], timeout: .seconds(120))
            #expect(stats.stdout.contains("\nprogram: rseqtrace-example, pid \(target.pid)\n"), "\(stats)")
            #expect(stats.fields(of: "stats:")?["events"] == "\(recorded)", "\(stats)")
            let events = try Self.workEvents(trace)
            #expect(events.count == recorded && Set(events.byWorker.keys) == workers)
            #expect(!target.hasExited)
            #expect(try Self.listRow(target.pid)?.state == "idle")
        }
        // The directory reads as one trace: every event, each process's own under --pid.
        let whole = try HelperProcess.runRseqtrace(["stats", output], timeout: .seconds(120))
        let line = whole.fields(of: "stats:")
        #expect(line?["events"] == "\(summary.recorded)" && line?["processes"] == "2", "\(whole)")
        // Each thread is named by what /proc said of it while attach drained it (its comm).
        #expect(whole.fields(of: "threads:") == ["count": "3"], "\(whole.stdout)")
        #expect(whole.stdoutLines.filter { $0.hasSuffix("  rseqtrace-examp") }.count == 3, "\(whole.stdout)")
        for (target, process) in [(first, processes.first), (second, processes.last)] {
            let own = try HelperProcess.runRseqtrace(["stats", output, "--pid", "\(target.pid)"], timeout: .seconds(120))
            #expect(own.fields(of: "stats:")?["events"] == process?["recorded"], "\(own)")
        }
    }

    // MARK: - Flight recorder

    @Test("flight recorder: two snapshots while the program runs hold new events only, the recovery after SIGKILL the rest, every event is in one of them or counted as lost, and nothing is left in /dev/shm",
          .timeLimit(.minutes(3)))
    func flightRecorderSnapshotsAndRecovery() throws {
        // 2 workers x 2000 events/s into 16 KiB rings: history is overwritten between snapshots.
        let target = try Self.startExample(["2", "--duration", "300", "--rate", "2000"], setting: [TraceRuntime.flightRecorderVariable: "16K"])
        defer { Self.stop(target) }
        try #require(Self.waitUntilTraceable(target), "the example program never opened its control socket")
        let pid = target.pid
        let objects = Self.sharedMemoryObjects(of: pid)
        #expect(objects.count == 1 && objects.first?.hasPrefix("rseqtrace-flight.\(pid).") == true, "\(objects)")
        let object = try #require(objects.first)
        #expect(try Self.listRow(pid)?.state == "flight-recorder")
        let outputs = (1...3).map { Self.directory("flight-\($0)") }
        for output in outputs { Self.removeTree(output) }
        defer { for output in outputs { Self.removeTree(output) } }

        var summaries: [SnapshotSummary] = []
        for output in outputs.prefix(2) {
            SystemClock.sleep(milliseconds: 300)
            let run = try HelperProcess.runRseqtrace(["snapshot", "\(pid)", "--output", output], timeout: .seconds(120))
            #expect(run.exitCode == 0 && run.stderr.isEmpty, "\(run)")
            let summary = try #require(SnapshotSummary(run.stdoutLines.last), "\(run)")
            #expect(summary.pid == pid && summary.state == "running" && summary.recorded > 0, "\(run)")
            #expect(summary.lost >= summary.overwritten, "\(run)")
            #expect(run.stdout.contains("trace: \(output) (CTF 1.8): \(summary.recorded) events in "), "\(run)")
            #expect(!target.hasExited)
            summaries.append(summary)
        }

        target.signal(SIGKILL)
        let ended = target.wait(timeout: .seconds(120))
        #expect(ended.signal == SIGKILL, "\(ended)")
        let exited = try #require(try Self.listRow(pid), "the flight recorder of the killed program is listed")
        #expect(exited.state == "exited")
        #expect(exited.line.hasSuffix("(recover with: rseqtrace snapshot \(pid); flight recorder /dev/shm/\(object))"), "\(exited.line)")

        let recovery = try HelperProcess.runRseqtrace(["snapshot", "\(pid)", "--output", outputs[2]], timeout: .seconds(120))
        #expect(recovery.exitCode == 0 && recovery.stderr.isEmpty, "\(recovery)")
        #expect(recovery.stdout.contains("\nrecovered: /dev/shm/\(object) removed"), "\(recovery)")
        let recovered = try #require(recovery.stdoutLines.dropLast().last.flatMap { SnapshotSummary($0) }, "\(recovery)")
        #expect(recovered.pid == pid && recovered.state == "exited" && recovered.overwritten <= recovered.lost, "\(recovery)")
        summaries.append(recovered)
        #expect(Self.sharedMemoryObjects(of: pid).isEmpty, "\(Self.sharedMemoryObjects(of: pid))")
        #expect(try Self.listRow(pid) == nil, "nothing of the program is listed any more")

        // Each event is in at most one trace: the second snapshot holds only events newer than the
        // first one read, the recovery only the rest.
        var seen = Set<WorkItem>()
        var highest: [UInt32: UInt64] = [:]
        for (output, summary) in zip(outputs, summaries) {
            let events = try Self.workEvents(output)
            #expect(events.count == summary.recorded && events.discarded == summary.lost, "\(output): \(summary)")
            for item in events.pairs {
                #expect(seen.insert(item).inserted, "\(output): worker \(item.worker) iteration \(item.iteration) was in an earlier snapshot")
                highest[item.worker] = max(highest[item.worker] ?? 0, item.iteration)
            }
        }
        // Every event emitted (iterations 0 up to the last recorded of each worker) is recorded or
        // counted as lost (overwritten), except the record a worker may have left half-written
        // when it was killed: counted as abandoned, beyond the last recorded.
        #expect(Set(highest.keys) == [0, 1])
        let emitted = highest.values.reduce(0) { $0 + Int($1) + 1 }
        let accounted = summaries.reduce(0) { $0 + $1.recorded + $1.lost }
        let abandoned = recovered.lost - recovered.overwritten
        #expect(accounted >= emitted && accounted <= emitted + abandoned,
                "emitted \(emitted), accounted \(accounted): \(summaries)")
    }

    // MARK: - Consumer killed

    @Test("attach killed with SIGKILL while recording: the program detaches by itself, runs on, can be attached again, and nothing is left in /dev/shm",
          .timeLimit(.minutes(3)))
    func consumerKilled() throws {
        let target = try Self.startExample(["2", "--duration", "300", "--rate", "1000"])
        defer { Self.stop(target) }
        try #require(Self.waitUntilTraceable(target), "the example program never opened its control socket")
        let pid = target.pid
        let output = Self.directory("killed")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        let consumer = try HelperProcess.startRseqtrace(["attach", "\(pid)", "--duration", "300", "--output", output])
        defer { Self.stop(consumer) }
        // Recording: the program says so and the trace's streams fill (within 30 s).
        let trace = output + "/rseqtrace-example-\(pid)"
        let recording = Self.poll(seconds: 30) { (try? Self.listRow(pid))?.state == "attached" && Self.streamBytes(trace) > 0 }
        try #require(recording, "attach never recorded: \(consumer.hasExited ? consumer.wait(timeout: .seconds(10)).description : "still running")")
        consumer.signal(SIGKILL)
        let killed = consumer.wait(timeout: .seconds(320))
        #expect(killed.signal == SIGKILL, "\(killed)")
        // The kernel closed its connection: the program ended the session by itself.
        #expect(Self.poll(seconds: 30) { (try? Self.listRow(pid))?.state == "idle" }, "the program stayed attached to a dead consumer")
        #expect(!target.hasExited)
        let again = Self.directory("killed-again")
        Self.removeTree(again)
        defer { Self.removeTree(again) }
        let run = try HelperProcess.runRseqtrace(["attach", "\(pid)", "--duration", "0.5", "--output", again], timeout: .seconds(120))
        #expect(run.exitCode == 0, "\(run)")
        let summary = try #require(AttachSummary(run.stdoutLines.last), "\(run)")
        #expect(summary.processes == 1 && summary.recorded > 0, "\(run)")
        #expect(!target.hasExited)
        for process in [pid, consumer.pid] {
            #expect(Self.sharedMemoryObjects(of: process).isEmpty, "\(Self.sharedMemoryObjects(of: process))")
        }
    }

    // MARK: - Producer modes

    @Test("attach is exact in every producer mode and buffer mode: recorded + lost equals what the program emitted while attached",
          .timeLimit(.minutes(3)),
          arguments: ProcessModeSetting.allCases, ["discard", "overwrite"])
    func exactInEveryMode(setting: ProcessModeSetting, mode: String) throws {
        // The program emits its 2 x 20000 events once attached, then exits; attach ends with it.
        let target = try Self.startExample(["2", "20000", "--wait-for-attach", "--duration", "300"], setting: setting.environment)
        defer { Self.stop(target) }
        try #require(Self.waitUntilTraceable(target), "the example program never opened its control socket")
        let row = try #require(try Self.listRow(target.pid))
        #expect(row.state == "idle" && row.mode == setting.expectedMode, "\(row.line)")
        let output = Self.directory("mode-\(setting.rawValue)-\(mode)")
        Self.removeTree(output)
        defer { Self.removeTree(output) }
        // Small rings drained often: the run usually loses events, which must all be counted.
        let run = try HelperProcess.runRseqtrace(["attach", "\(target.pid)", "--mode", mode, "--buffer-size", "16K",
                                                  "--subbuffer-size", "1K", "--interval-ms", "5", "--output", output],
                                                 timeout: .seconds(120))
        #expect(run.exitCode == 0, "\(run)")
        let summary = try #require(AttachSummary(run.stdoutLines.last), "\(run)")
        #expect(summary.processes == 1 && summary.recorded > 0, "\(run)")
        #expect(summary.recorded + summary.lost == 40_000, "\(run)")
        #expect(run.stdout.contains("stopped: every process exited)"), "\(run)")
        #expect(Self.processLines(run).first?["state"] == "exited", "\(run)")
        let program = target.wait(timeout: .seconds(120))
        #expect(program.exitCode == 0, "\(program)")
        #expect(program.stdout == "rseqtrace-example: 2 threads x 20000 events, traced: true\n", "\(program)")
        let stats = try Self.stats(output)
        #expect(stats == ["events": "\(summary.recorded)", "discarded": "\(summary.lost)"])
    }

    // MARK: - Idle cost

    @Test("an instrumented program nobody is attached to spends no CPU: over 2 s its control thread and the whole process use at most one clock tick",
          .timeLimit(.minutes(3)))
    func idleProgramCostsNothing() throws {
        let target = try Self.startExample(["--idle", "--duration", "300"])
        defer { Self.stop(target) }
        try #require(Self.waitUntilTraceable(target), "the example program never opened its control socket")
        let pid = target.pid
        // The socket listens before the thread serving it has named itself.
        var named: Int32?
        _ = Self.poll(seconds: 30) {
            named = Self.controlThread(of: pid)
            return named != nil
        }
        let thread = try #require(named, "no thread named rseqtrace-ctl in process \(pid)")
        let threadStat = "/proc/\(pid)/task/\(thread)/stat"
        let threadBefore = try #require(Self.cpuTicks(threadStat))
        let processBefore = try #require(Self.cpuTicks("/proc/\(pid)/stat"))
        SystemClock.sleep(milliseconds: 2000)
        let threadAfter = try #require(Self.cpuTicks(threadStat))
        let processAfter = try #require(Self.cpuTicks("/proc/\(pid)/stat"))
        #expect(threadAfter - threadBefore <= 1, "control thread: \(threadAfter - threadBefore) ticks in 2 s")
        #expect(processAfter - processBefore <= 1, "process: \(processAfter - processBefore) ticks in 2 s")
        // It was idle, not gone: its tracepoint is registered, and it answers.
        let row = try #require(try Self.listRow(pid))
        #expect(row.state == "idle" && row.events == "1", "\(row.line)")
        let events = try HelperProcess.runRseqtrace(["list", "--events", "\(pid)"], timeout: .seconds(120))
        #expect(events.exitCode == 0, "\(events)")
        #expect(events.stdoutLines.last == "events: pid=\(pid) registered=1 enabled=1", "\(events)")
        #expect(events.stdout.contains("example:work  worker:u32, iteration:u64, value:u64"), "\(events)")
    }
}

// MARK: - Another user

extension LiveTracingTests {
    /// setpriv (util-linux), which runs a program as another user without a login shell.
    static let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first { HelperProcess.isExecutable($0) }

    /// The user and group ids of `nobody`, when that user exists.
    static let nobody: (uid: UInt32, gid: UInt32)? = {
        // SAFETY: getpwnam returns nil or a pointer to a static record, read at once here.
        guard let entry = unsafe getpwnam("nobody") else { return nil }
        // SAFETY: as above.
        return unsafe (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }()

    static var canRunAsNobody: Bool { geteuid() == 0 && nobody != nil && setpriv != nil }

    /// `arguments` run as nobody.
    static func asNobody(_ arguments: [String]) throws -> [String] {
        let user = try #require(nobody)
        let setpriv = try #require(setpriv)
        return [setpriv, "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups"] + arguments
    }

    /// Runs `arguments` as nobody to completion (or `timeout`).
    static func runAsNobody(_ arguments: [String], timeout: Duration = .seconds(120)) throws -> ChildProcess.Outcome {
        try ChildProcess.spawn(asNobody(arguments), environment: Self.targetEnvironment()).wait(timeout: timeout)
    }

    /// The built executables, or copies of them in a directory every user may enter when nobody
    /// cannot reach the build directory; nil (with the reason recorded) when nobody cannot run them.
    static func executablesForNobody(copyingInto directory: String) throws -> (rseqtrace: String, example: String)? {
        func runnable(_ rseqtrace: String, _ example: String) throws -> Bool {
            try runAsNobody([rseqtrace, "--help"]).exitCode == 0 && runAsNobody([example, "1", "0"]).exitCode == 0
        }
        if try runnable(HelperProcess.rseqtracePath, example) { return (HelperProcess.rseqtracePath, example) }
        // SAFETY: mkdir takes the path by value.
        guard unsafe mkdir(directory, 0o755) == 0 || errno == EEXIST else { return nil }
        // SAFETY: chmod takes the path by value (the umask may have narrowed the mode).
        unsafe chmod(directory, 0o755)
        for program in [HelperProcess.rseqtracePath, example] {
            let copy = try HelperProcess.run("/bin/cp", [program, directory + "/"], environment: HelperProcess.childEnvironment(),
                                             timeout: .seconds(120))
            guard copy.exitCode == 0 else {
                Issue.record("cannot copy \(program) into \(directory): \(copy)")
                return nil
            }
        }
        let copies = (directory + "/rseqtrace", directory + "/rseqtrace-example")
        for path in [copies.0, copies.1] {
            // SAFETY: chmod takes the path by value.
            unsafe chmod(path, 0o755)
        }
        guard try runnable(copies.0, copies.1) else {
            Issue.record("nobody cannot run the built executables, even copied into \(directory) (are the Swift runtime libraries readable by every user?)")
            return nil
        }
        return copies
    }

    /// A directory nobody may write into.
    static func makeNobodyDirectory(_ path: String) throws {
        let user = try #require(nobody)
        Self.removeTree(path)
        // SAFETY: mkdir takes the path by value.
        try #require(unsafe mkdir(path, 0o755) == 0, "cannot create \(path): \(Errno(rawValue: errno))")
        // SAFETY: chown takes the path by value.
        try #require(unsafe chown(path, user.uid, user.gid) == 0, "cannot give \(path) to nobody: \(Errno(rawValue: errno))")
    }

    @Test("another user's program is refused: attach, snapshot and list --events run as nobody against root's program fail naming both user ids, and list does not show it",
          .enabled(if: LiveTracingTests.canRunAsNobody, "needs root, the user nobody and setpriv (util-linux) to run a process as another user"),
          .timeLimit(.minutes(3)))
    func anotherUsersProgramIsRefused() throws {
        let user = try #require(Self.nobody)
        let workspace = Self.directory("refused")
        let binaries = Self.directory("refused-bin")
        defer {
            Self.removeTree(workspace)
            Self.removeTree(binaries)
        }
        try Self.makeNobodyDirectory(workspace)
        let tools = try #require(try Self.executablesForNobody(copyingInto: binaries))
        let target = try Self.startExample(["1", "--duration", "300", "--rate", "200"])
        defer { Self.stop(target) }
        try #require(Self.waitUntilTraceable(target), "the example program never opened its control socket")
        let pid = target.pid
        let refusal = "error: process \(pid) belongs to uid 0, not to you (uid \(user.uid)): only that user or root may trace it\n"
        for arguments in [["attach", "\(pid)", "--duration", "1", "--output", workspace + "/attach"],
                          ["snapshot", "\(pid)", "--output", workspace + "/snapshot"],
                          ["list", "--events", "\(pid)"]] {
            let run = try Self.runAsNobody([tools.rseqtrace] + arguments)
            #expect(run.exitCode == 1, "\(arguments): \(run)")
            #expect(run.stderr == refusal, "\(arguments): \(run)")
            #expect(!run.stdout.contains("summary:"), "\(arguments): \(run)")
        }
        #expect(SystemInfo.directoryEntries(workspace) == [], "a refused attach or snapshot leaves no output behind")
        let list = try Self.runAsNobody([tools.rseqtrace, "list"])
        #expect(list.exitCode == 0, "\(list)")
        #expect(!list.stdoutLines.contains { $0.hasPrefix("\(pid) ") }, "nobody's list shows root's program: \(list)")
        // The refusals did not disturb the program.
        #expect(!target.hasExited)
        #expect(try Self.listRow(pid)?.state == "idle")
    }

    @Test("a program run as nobody with a flight recorder: nobody lists and snapshots it, root snapshots and attaches to it, and after SIGKILL nobody's list --clean removes its flight recorder",
          .enabled(if: LiveTracingTests.canRunAsNobody, "needs root, the user nobody and setpriv (util-linux) to run a process as another user"),
          .timeLimit(.minutes(3)))
    func sameUserAndRootMayTrace() throws {
        let workspace = Self.directory("nobody")
        let binaries = Self.directory("nobody-bin")
        let rootOutputs = [Self.directory("nobody-root-snapshot"), Self.directory("nobody-root-attach")]
        defer {
            for path in [workspace, binaries] + rootOutputs { Self.removeTree(path) }
        }
        try Self.makeNobodyDirectory(workspace)
        for path in rootOutputs { Self.removeTree(path) }
        let tools = try #require(try Self.executablesForNobody(copyingInto: binaries))
        let target = try ChildProcess.spawn(Self.asNobody([tools.example, "2", "--duration", "300", "--rate", "1000"]),
                                            environment: Self.targetEnvironment([TraceRuntime.flightRecorderVariable: "16K"]))
        defer { Self.stop(target) }
        try #require(Self.waitUntilTraceable(target), "the example program never opened its control socket")
        let pid = target.pid
        let object = try #require(Self.sharedMemoryObjects(of: pid).first)

        let listed = try Self.runAsNobody([tools.rseqtrace, "list"])
        #expect(listed.stdoutLines.contains { $0.hasPrefix("\(pid) ") && $0.split(separator: " ")[1] == "flight-recorder" }, "\(listed)")
        let own = try Self.runAsNobody([tools.rseqtrace, "snapshot", "\(pid)", "--output", workspace + "/snapshot"])
        #expect(own.exitCode == 0, "\(own)")
        let ownSummary = try #require(SnapshotSummary(own.stdoutLines.last), "\(own)")
        #expect(ownSummary.recorded > 0 && ownSummary.state == "running", "\(own)")

        // Root may trace any user's program, its flight recorder included.
        let snapshot = try HelperProcess.runRseqtrace(["snapshot", "\(pid)", "--output", rootOutputs[0]], timeout: .seconds(120))
        #expect(snapshot.exitCode == 0 && snapshot.stderr.isEmpty, "\(snapshot)")
        #expect(SnapshotSummary(snapshot.stdoutLines.last).map { $0.recorded > 0 && $0.state == "running" } == true, "\(snapshot)")
        let attach = try HelperProcess.runRseqtrace(["attach", "\(pid)", "--duration", "0.5", "--output", rootOutputs[1]],
                                                    timeout: .seconds(120))
        #expect(attach.exitCode == 0, "\(attach)")
        #expect(attach.stderr == "rseqtrace: attached to process \(pid) (rseqtrace-example), overwrite buffer (its flight recorder)\n", "\(attach)")
        #expect(AttachSummary(attach.stdoutLines.last).map { $0.processes == 1 && $0.recorded > 0 } == true, "\(attach)")

        target.signal(SIGKILL)
        #expect(target.wait(timeout: .seconds(120)).signal == SIGKILL)
        let exited = try Self.runAsNobody([tools.rseqtrace, "list"])
        #expect(exited.stdoutLines.contains { $0.hasPrefix("\(pid) ") && $0.split(separator: " ")[1] == "exited" }, "\(exited)")
        let clean = try Self.runAsNobody([tools.rseqtrace, "list", "--clean"])
        #expect(clean.exitCode == 0 && clean.stderr.isEmpty, "\(clean)")
        #expect(clean.stdoutLines.contains("removed /dev/shm/\(object) (process \(pid) has exited)"), "\(clean)")
        #expect(clean.stdoutLines.last?.hasPrefix("clean: removed=") == true, "\(clean)")
        #expect(Self.sharedMemoryObjects(of: pid).isEmpty)
    }
}

// MARK: - babeltrace2

extension LiveTracingTests {
    @Test("babeltrace2 reads every kind of live trace (one process, two processes, flight-recorder snapshots, a recovery): as many events as recorded, as many discarded as lost",
          .enabled(if: HelperProcess.isExecutable(CTFEndToEndTests.babeltrace), "babeltrace2 is not installed"),
          .timeLimit(.minutes(3)))
    func babeltraceReadsLiveTraces() throws {
        let plain = try Self.startExample(["2", "--duration", "300", "--rate", "1000"])
        defer { Self.stop(plain) }
        // 16 KiB rings at 2 x 3000 events/s: the flight recorder's traces report overwritten events.
        let flight = try Self.startExample(["2", "--duration", "300", "--rate", "3000"], setting: [TraceRuntime.flightRecorderVariable: "16K"])
        defer { Self.stop(flight) }
        try #require(Self.waitUntilTraceable(plain) && Self.waitUntilTraceable(flight), "an example program never opened its control socket")
        let outputs = (1...5).map { Self.directory("babeltrace-\($0)") }
        for output in outputs { Self.removeTree(output) }
        defer { for output in outputs { Self.removeTree(output) } }

        for (output, pids) in [(outputs[0], [plain.pid]), (outputs[1], [plain.pid, flight.pid])] {
            let run = try HelperProcess.runRseqtrace(["attach"] + pids.map { "\($0)" } + ["--duration", "0.5", "--output", output],
                                                     timeout: .seconds(120))
            #expect(run.exitCode == 0, "\(run)")
            let summary = try #require(AttachSummary(run.stdoutLines.last), "\(run)")
            #expect(summary.processes == pids.count && summary.recorded > 0, "\(run)")
            #expect(try BabeltraceCount(output) == BabeltraceCount(events: summary.recorded, discarded: summary.lost), "\(run)")
        }
        var snapshots: [(String, SnapshotSummary)] = []
        for output in outputs[2...3] {
            SystemClock.sleep(milliseconds: 200)
            let run = try HelperProcess.runRseqtrace(["snapshot", "\(flight.pid)", "--output", output], timeout: .seconds(120))
            #expect(run.exitCode == 0, "\(run)")
            snapshots.append((output, try #require(SnapshotSummary(run.stdoutLines.last), "\(run)")))
        }
        flight.signal(SIGKILL)
        #expect(flight.wait(timeout: .seconds(120)).signal == SIGKILL)
        let recovery = try HelperProcess.runRseqtrace(["snapshot", "\(flight.pid)", "--output", outputs[4]], timeout: .seconds(120))
        #expect(recovery.exitCode == 0, "\(recovery)")
        snapshots.append((outputs[4], try #require(recovery.stdoutLines.dropLast().last.flatMap { SnapshotSummary($0) }, "\(recovery)")))
        for (output, summary) in snapshots {
            #expect(try BabeltraceCount(output) == BabeltraceCount(events: summary.recorded, discarded: summary.lost), "\(summary)")
        }
        #expect(snapshots.contains { $0.1.overwritten > 0 }, "a 16 KiB flight recorder at 6000 events/s overwrites between snapshots")
    }
}

// MARK: - Helpers

extension LiveTracingTests {
    /// A scratch directory for this test process.
    static func directory(_ tag: String) -> String {
        "/tmp/rseqtrace-live-\(getpid())-\(tag)"
    }

    /// Removes `path` and everything below it (given as long as the other commands: a disk held up
    /// for a minute must not leave a scratch directory behind).
    static func removeTree(_ path: String) {
        _ = try? HelperProcess.run("/bin/rm", ["-rf", path], environment: HelperProcess.childEnvironment(), timeout: .seconds(120))
    }

    /// This process's environment without anything that would make a child traced differently
    /// (the mode variables, RseqTrace's own variables), plus `setting`.
    static func targetEnvironment(_ setting: [String: String] = [:]) -> [String] {
        HelperProcess.environment(
            removing: HelperProcess.modeVariables.union([SharedTraceBuffer.environmentVariable, TraceRuntime.flightRecorderVariable,
                                                         TraceRuntime.controlVariable, TraceRuntime.eventsVariable,
                                                         TraceRuntime.backendVariable]),
            setting: setting)
    }

    /// Starts `rseqtrace-example` with `arguments`, not under rseqtrace.
    static func startExample(_ arguments: [String], setting: [String: String] = [:]) throws -> ChildProcess {
        try ChildProcess.spawn([example] + arguments, environment: targetEnvironment(setting), stdin: .null)
    }

    /// Kills `process` (if it still runs) and reaps it.
    static func stop(_ process: ChildProcess) {
        process.signal(SIGKILL)
        _ = process.wait(timeout: .seconds(120))
    }

    /// Checks `condition` every 20 ms until it holds or `seconds` have passed.
    static func poll(seconds: Int, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            if condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            SystemClock.sleep(milliseconds: 20)
        }
    }

    /// Waits (at most 30 s) until `process` listens on its control socket.
    static func waitUntilTraceable(_ process: ChildProcess) -> Bool {
        poll(seconds: 30) { !process.hasExited && ControlClient.endpoint(of: process.pid) != nil }
    }

    /// The row of `pid` in `rseqtrace list` (run as root), nil when it is not listed.
    static func listRow(_ pid: Int32) throws -> ListRow? {
        let run = try HelperProcess.runRseqtrace(["list"], timeout: .seconds(120))
        #expect(run.exitCode == 0, "\(run)")
        for line in run.stdoutLines {
            let columns = line.split(separator: " ")
            guard columns.count >= 8, columns[0] == "\(pid)" else { continue }
            return ListRow(state: String(columns[1]), events: String(columns[2]), enabled: String(columns[3]),
                           mode: String(columns[6]), line: String(line))
        }
        return nil
    }

    /// The `key=value` fields of each `process:` line of an attach.
    static func processLines(_ run: ChildProcess.Outcome) -> [[String: String]] {
        run.stdoutLines.filter { $0.hasPrefix("process: ") }.map { HelperProcess.parseFields($0.dropFirst("process: ".count)) }
    }

    /// `events` and `discarded` of the `stats:` line of `rseqtrace stats directory`.
    static func stats(_ directory: String) throws -> [String: String] {
        let run = try HelperProcess.runRseqtrace(["stats", directory], timeout: .seconds(120))
        #expect(run.exitCode == 0, "\(run)")
        let fields = try #require(run.fields(of: "stats:"), "\(run)")
        return fields.filter { ["events", "discarded"].contains($0.key) }
    }

    /// The `example:work` events of the trace in `directory`, from `rseqtrace view`; any other
    /// line is an issue.
    static func workEvents(_ directory: String) throws -> WorkEvents {
        let run = try HelperProcess.runRseqtrace(["view", directory], timeout: .seconds(120))
        #expect(run.exitCode == 0 && run.stderr.isEmpty, "\(run)")
        var events = WorkEvents()
        for line in run.stdoutLines {
            if line.hasPrefix("discarded "), let count = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) {
                events.discarded += count
                continue
            }
            // [HH:MM:SS.nnnnnnnnn] (+d.ddddddddd) cpu N tid T example:work: { worker = W, iteration = I, value = V }
            guard let body = line.firstRange(of: " example:work: { "), line.hasSuffix(" }") else {
                Issue.record("unexpected line from rseqtrace view \(directory): \(line)")
                continue
            }
            var fields: [String: String] = [:]
            for pair in line[body.upperBound...].dropLast(2).split(separator: ",") {
                let parts = pair.split(separator: "=")
                guard parts.count == 2 else { continue }
                fields[String(parts[0].filter { $0 != " " })] = String(parts[1].filter { $0 != " " })
            }
            guard let worker = fields["worker"].flatMap({ UInt32($0) }), let iteration = fields["iteration"].flatMap({ UInt64($0) }),
                  fields["value"].flatMap({ UInt64($0) }) != nil, fields.count == 3 else {
                Issue.record("malformed example:work event from rseqtrace view \(directory): \(line)")
                continue
            }
            events.byWorker[worker, default: []].append(iteration)
            events.count += 1
        }
        return events
    }

    /// Expects `iterations` (one worker's, in one attach) to be a run without gaps or repeats,
    /// all after `previous` (the last one recorded by the attach before). A record reserved just
    /// before that attach detached and committed after its last read is the next attach's first
    /// (docs/LiveTracing.md): then `previous + 1` may precede a gap.
    static func expectGapless(_ iterations: [UInt64], after previous: UInt64?, _ context: String) {
        let sorted = iterations.sorted()
        guard let first = sorted.first, let last = sorted.last else {
            Issue.record("\(context): no events")
            return
        }
        #expect(Set(sorted).count == sorted.count, "\(context): an iteration is repeated")
        if let previous { #expect(first > previous, "\(context): iteration \(first) was recorded by the previous attach (up to \(previous))") }
        let run = sorted.count >= 2 && previous.map { first == $0 + 1 && sorted[1] > first + 1 } == true ? sorted.dropFirst() : sorted[...]
        #expect(last - run.first! + 1 == UInt64(run.count),
                "\(context): \(run.count) events between iterations \(run.first!) and \(last): some are missing")
    }

    /// /dev/shm entries of RseqTrace that name process `pid`.
    static func sharedMemoryObjects(of pid: Int32) -> [String] {
        (SystemInfo.directoryEntries("/dev/shm") ?? []).filter { name in
            name.hasPrefix("rseqtrace") && name.split(whereSeparator: { $0 == "." || $0 == "-" }).contains { $0 == "\(pid)" }
        }.sorted()
    }

    /// The bytes written so far to the stream files of the trace in `directory`.
    static func streamBytes(_ directory: String) -> Int64 {
        (SystemInfo.directoryEntries(directory) ?? []).filter { $0.hasPrefix("channel") }.reduce(0) { total, name in
            total + ((try? FilePath(directory + "/" + name).stat(followTargetSymlink: false).size) ?? 0)
        }
    }

    /// The thread of `pid` named `rseqtrace-ctl`.
    static func controlThread(of pid: Int32) -> Int32? {
        for task in SystemInfo.directoryEntries("/proc/\(pid)/task") ?? [] {
            if SystemInfo.readSmallFile("/proc/\(pid)/task/\(task)/comm") == "rseqtrace-ctl\n" { return Int32(task) }
        }
        return nil
    }

    /// utime + stime, in clock ticks, of a `/proc/.../stat` file.
    static func cpuTicks(_ path: String) -> UInt64? {
        guard let text = SystemInfo.readSmallFile(path), let close = text.lastIndex(of: ")") else { return nil }
        // After the command: the state (field 3 of proc(5)), ..., utime (14), stime (15).
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }
}
