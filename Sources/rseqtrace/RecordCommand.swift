#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats
import RseqTraceSupport

/// `rseqtrace record -- CMD [ARGS...]`: runs an instrumented program with tracing on, drains its
/// buffers from this process while it runs, writes the trace, and exits with the program's status.
struct RecordCommand: ParsableCommand, EventRuleOptions {
    static let inheritsEnvironment = true
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Run an instrumented program with tracing on and write its trace (CTF).",
        discussion: """
            The program finds the trace object through the RSEQTRACE_BUFFER environment variable \
            (SharedTraceBuffer.openFromEnvironment()): fd:<n>, an anonymous memory file it inherits \
            (and its own children with it), which disappears with the last process holding it. \
            rseqtrace drains it while the program runs (showing progress with --progress), writes the \
            trace, and exits with the program's exit status (128 + signal number if it was killed).

            Stopping: Ctrl-C (SIGINT) reaches the program from the terminal; rseqtrace keeps \
            draining until it exits. SIGTERM and SIGHUP sent to rseqtrace (kill, timeout, a closed \
            terminal) are forwarded to the program; rseqtrace drains until it exits, writes the \
            complete trace and exits with the program's status (143 or 129 if the signal ended \
            it). If the program has not exited 5 s after the forwarded signal, rseqtrace kills it \
            (SIGKILL), writes the trace and exits with 128 + the signal it received. If rseqtrace \
            itself is killed (SIGKILL), the trace directory stays readable (the metadata is always \
            current and drained events reach the stream files within a second) but is not \
            finished, and the program keeps running: its later events fill the buffer and are \
            dropped, counted in the buffer that nobody reads any more. A recording that fails \
            before it recorded any event (e.g. a program that cannot be found) removes the output \
            directory it created (or empties the one it was given).

            Typed tracepoints attach to it on first use. --enable and --disable choose which events \
            record, as rules applied in the order given: the last matching rule wins. When the first \
            rule is an --enable, only what the rules enable records; otherwise everything but what \
            they disable does. Patterns are case-sensitive, with '*' and '?' wildcards; each option \
            takes one pattern or a comma-separated list. They reach the program as RSEQTRACE_EVENTS \
            (without them, the environment's RSEQTRACE_EVENTS, checked first); the model is described \
            in full on TraceRuntime (docs/Instrumentation.md).

            A ring that \
            something else damaged is quarantined (no longer read; the others are still recorded) and a \
            damaged event registry leaves events without their schema: both are reported on stderr and \
            make rseqtrace exit with status 1 once the trace is written.

            Before the summary, lines beginning with 'warning: ' report a recording of 0 events (the \
            program never attached to the buffer, or attached but enabled no event), --enable or \
            RSEQTRACE_EVENTS patterns that matched no recorded event, and empty string values (which \
            babeltrace2 2.0.x shows with an earlier event's value; rseqtrace view shows them right). \
            The last line is machine-readable:
              summary: recorded=<n> lost=<n> dropped=<n> overwritten=<n> too_large=<n> abandoned=<n> quarantined=<n> hidden_bytes=<n> mode=<discard|overwrite> exit_status=<n>
            (exit_status is the status described under Stopping, whatever was damaged.)

            Central collection: --relayd net://HOST[:CONTROL_PORT[:DATA_PORT]] (ports 5342 and \
            5343 by default) sends the trace to an LTTng relay daemon (lttng-relayd), which writes it \
            under its output directory as <hostname>/rseqtrace-<program>-<pid>-<date>-<time>/; with --output \
            too, the trace is also written locally. A relay that cannot be reached is an error before \
            the program starts (with --relayd-optional, the trace is written locally instead). A \
            connection lost while recording is reported after the summary; recording goes on locally \
            when there is a local trace, and rseqtrace exits with status 1 when nothing kept the trace. \
            The relay session is live (--live-timer-ms, 1000 by default; 0: not live): while the \
            program runs, babeltrace2 -i lttng-live net://HOST:5344 lists it and \
            babeltrace2 -i lttng-live net://HOST:5344/host/<hostname>/rseqtrace-<program>-<pid> (the pid \
            of rseqtrace, which prints this URL when it starts) shows \
            its events (rseqtrace view --live URL runs that babeltrace2 command).
            """)

    @Option(name: [.customShort("o"), .long], help: """
        Directory for the trace (created; must not exist or be empty). Default: a new \
        rseqtrace-record-YYYYMMDD-HHMMSS directory (UTC) in the current directory, or none with --relayd.
        """)
    var output: String?

    @OptionGroup var relayOptions: RelayOptions

    @OptionGroup var buffer: BufferOptions

    @Option(name: .customLong("interval-ms"), help: """
        Milliseconds to wait after a drain round that found nothing (1-10000). The program's exit \
        ends the wait at once.
        """)
    var intervalMilliseconds: Int = 20

    /// The longest pause between the drain rounds that follow the program's exit.
    static let settleMilliseconds = 10

    /// How long the program has to exit after a forwarded SIGTERM or SIGHUP, and the longest
    /// drain after that before the trace is written.
    static let gracePeriod = Duration.seconds(5)

    @Option(name: .customLong("enable"), help: ArgumentHelp(
        "Record the events matching PATTERNS (e.g. 'http:*' or 'http:*,queue:*'); repeatable, in order with --disable.",
        valueName: "PATTERNS"))
    var enabled: [String] = []

    @Option(name: .customLong("disable"), help: ArgumentHelp(
        "Do not record the events matching PATTERNS; repeatable, in order with --enable.", valueName: "PATTERNS"))
    var disabled: [String] = []

    @Option(help: """
        Where the program's typed events go: buffer (the default), lttng or both, passed to it as \
        RSEQTRACE_BACKEND. lttng and both need a program that installs the LTTng-UST bridge \
        (RseqTraceLTTng: LTTngBridge.install(), built with --traits LTTng) and an lttng session.
        """)
    var backend: TraceBackend?

    @Flag(name: .customLong("progress"), help: """
        Redraw a progress line (events, rate, losses) on stderr while recording, when stderr is a \
        terminal. Off by default: the program writes to the same terminal, and the redrawn line \
        would mix with its output.
        """)
    var showProgress = false

    @Argument(parsing: .postTerminator, help: "The program to run and its arguments (after --).")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            let words = Self.wordsBeforeTerminator(CommandLine.arguments)
            if !words.isEmpty {
                throw ValidationError("put the program after `--`: rseqtrace record [options] -- \(words.joined(separator: " "))")
            }
            throw ValidationError("missing the program to run: rseqtrace record [options] -- CMD [ARGS...]")
        }
        guard (1...10_000).contains(intervalMilliseconds) else {
            throw ValidationError("--interval-ms must be between 1 and 10000, got \(intervalMilliseconds)")
        }
        do { _ = try eventRuleList() } catch { throw ValidationError(error.message) }
    }

    func run() throws {
        do {
            let status = try record()
            if status != 0 { throw ExitCode(status) }
        } catch let error as TraceError {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }

    private func record() throws(TraceError) -> Int32 {
        var output = self.output ?? (relayOptions.relayd == nil ? Self.defaultOutput() : nil)
        var createdDirectory = try output.map { (path) throws(TraceError) in try CTFTraceWriter.prepareDirectory(path) } ?? false
        var complete = false
        var started: TraceRecorder?
        // A recording that fails before it recorded anything leaves nothing behind (no half-made
        // trace blocking a rerun); one that fails later keeps the events already written, which
        // stay readable (the metadata is always current).
        defer {
            if !complete, let output {
                if let recorded = started?.drainer.totals.recorded, recorded > 0 {
                    printError("rseqtrace: \(output) keeps the trace written before the failure (up to \(recorded) events)")
                } else {
                    CTFTraceWriter.removeTrace(in: output, removingDirectory: createdDirectory)
                }
            }
        }
        // SIGTERM and SIGHUP are read from a descriptor from here on (before any thread starts,
        // so that none receives them instead) and finish the trace; see the discussion above.
        let signals = try SignalReceiver([SIGTERM, SIGHUP])
        defer { withExtendedLifetime(signals) {} }
        // The buffer lives in an anonymous memory file the program inherits: no name under
        // /dev/shm to leak when this process is killed, or for another user to take first.
        let memory = try MemoryFile.create(label: "rseqtrace-record-\(getpid())")
        defer { try? memory.close() }
        let buffer = try SharedTraceBuffer.create(self.buffer.configuration(name: "rseqtrace-record-\(getpid())"), in: memory)
        try MemoryFile.sealSize(memory)
        let procname = command[0].split(separator: "/").last.map(String.init) ?? command[0]
        // The relay session is made before the program starts: an unreachable relay is an error
        // (or, with --relayd-optional, a local recording) before anything runs.
        let fallback = output ?? Self.defaultOutput()
        let relay = try relayOptions.connect(sessionName: "rseqtrace-\(procname)-\(getpid())",
                                             ringCount: buffer.layout.cpuRingCount, fallback: fallback)
        if relayOptions.relayd != nil, relay == nil, output == nil {
            output = fallback
            createdDirectory = try CTFTraceWriter.prepareDirectory(fallback)
        }
        let recorder = try TraceRecorder(buffer: buffer, output: output, relay: relay, traceName: "rseqtrace-record",
                                         procname: procname, pid: getpid())
        // While the program runs: sub-buffers as producers leave them, everything every interval
        // (at least once per live timer period of a live relay session).
        let interval = relayOptions.roundIntervalMilliseconds(intervalMilliseconds, live: relay?.isLive == true)
        recorder.partialSubbufferInterval = .milliseconds(interval)
        started = recorder
        // The terminal's Ctrl-C reaches the program; rseqtrace keeps draining until it exits.
        signal(SIGINT, SIG_IGN)
        var environment = [SharedTraceBuffer.environmentVariable: SharedTraceBuffer.descriptorPrefix + "\(memory.rawValue)"]
        if let eventRules = try eventRuleList() { environment[TraceRuntime.eventsVariable] = eventRules }
        if let backend { environment[TraceRuntime.backendVariable] = backend.rawValue }
        let child = try ChildProcess.spawn(command, environment: ProcessEnvironment.current(setting: environment),
                                           searchPath: true, stdout: .inherit, stderr: .inherit,
                                           inheriting: [memory.rawValue])
        // The trace describes the traced program (LTTng's per-process `vpid`), not the recorder.
        recorder.writer?.updateProcess(procname: recorder.writer?.description.procname ?? command[0], pid: child.pid)
        let progress = ProgressLine(enabled: showProgress && isatty(2) == 1)
        // While the program runs: drain, and when a round finds nothing wait up to the interval for
        // its exit (a pidfd wakes this loop the moment it exits, the signalfd when a signal comes).
        var termination: Termination?
        var received: (signal: Int32, at: ContinuousClock.Instant)?
        var killedAfterGrace = false
        while termination == nil {
            while let signal = signals.next() {
                child.signal(signal)
                if received == nil {
                    received = (signal, .now)
                    progress.clear()
                    printError("rseqtrace: \(Self.signalName(signal)) received: forwarded to \(command[0]); finishing the trace once it exits (at most \(Self.gracePeriod.components.seconds) s)")
                }
            }
            var wait = interval
            if let received {
                let left = Self.gracePeriod - (ContinuousClock.now - received.at)
                if left <= .zero {
                    printError("rseqtrace: \(command[0]) has not exited \(Self.gracePeriod.components.seconds) s after \(Self.signalName(received.signal)): killing it (SIGKILL)")
                    child.signal(SIGKILL)
                    killedAfterGrace = true
                    termination = child.waitForExit(milliseconds: 1000)
                    break
                }
                wait = min(wait, Int(left.components.seconds) * 1000 + Int(left.components.attoseconds / 1_000_000_000_000_000) + 1)
            }
            let drained = try recorder.round()
            progress.update(recorder.drainer.totals)
            termination = drained == 0 ? child.waitForExit(milliseconds: wait, alsoWaking: signals.descriptor) : child.reap(blocking: false)
        }
        // Then drain until two rounds in a row find nothing (its children may still be writing
        // for a moment), pausing briefly between rounds; once a termination signal has come (before
        // or during this), for at most the grace period from here or from that signal.
        let drainStart = ContinuousClock.now
        recorder.partialSubbufferInterval = nil   // from here on every round reads everything committed
        var idleRounds = 0
        while idleRounds < 2 {
            let drained = try recorder.round()
            progress.update(recorder.drainer.totals)
            idleRounds = drained == 0 ? idleRounds + 1 : 0
            if received == nil, let signal = signals.next() { received = (signal, .now) }
            if let received, ContinuousClock.now - max(drainStart, received.at) >= Self.gracePeriod { break }
            if drained == 0 { SystemClock.sleep(milliseconds: min(interval, Self.settleMilliseconds)) }
        }
        buffer.markFinished()
        try recorder.round(quiescent: true)
        progress.clear()
        let summary = try recorder.finish()
        let totals = recorder.drainer.totals
        let exitStatus: Int32
        if killedAfterGrace, let received {
            exitStatus = 128 + received.signal
        } else {
            exitStatus = termination?.status ?? 1
        }
        print("recorded \(totals.recorded) events, lost \(totals.lost) (dropped \(totals.dropped), overwritten \(totals.overwritten), too large \(totals.tooLarge), abandoned by dead producers \(totals.abandoned))\(totals.quarantined > 0 ? ", \(totals.quarantined) rings quarantined with \(totals.hidden) bytes unread" : "")")
        if let summary, let output {
            print("trace: \(output) (CTF 1.8): \(summary.events) events in \(summary.packets) packets, \(format(summary.bytesPerEvent)) bytes per event")
            print(RecordDiagnosis.readWith(output))
        }
        let schemas = (try? buffer.registeredEvents()).map { Array($0.values) }
        var diagnosis = RecordDiagnosis(program: command[0], recorded: totals.recorded, lost: totals.lost,
                                        attachedProcesses: RecordDiagnosis.attachedProcesses(memory: memory),
                                        registeredEvents: schemas?.map(\.name))
        if let list = try? eventRuleList() {
            diagnosis.rules = (list, "--enable")
        } else if let inherited = SystemInfo.environmentValue(TraceRuntime.eventsVariable) {
            diagnosis.rules = (inherited, TraceRuntime.eventsVariable)
        }
        var warnings = diagnosis.warnings
        if summary != nil, totals.recorded > 0, let output, let warning = RecordDiagnosis.emptyStringWarning(output, schemas: schemas) {
            warnings.append(warning)
        }
        for warning in warnings { print("warning: \(warning)") }
        var relayLost = false
        if let relay, let summary {
            if let failure = relay.failure {
                relayLost = true
                let kept = output.map { "the local trace \($0) is complete" } ?? "no local trace kept them (use --output DIR with --relayd)"
                printError("error: the relay daemon at \(relay.endpoint) was lost during the recording: \(failure); its copy ends at the last packet it received, \(relay.undeliveredEvents) events did not reach it; \(kept)")
            } else {
                print("relay: \(summary.events) events in \(relay.deliveredPackets) packets sent to \(relay.endpoint) as \(relay.path) (under the relay's output directory)")
            }
        }
        // Damage found by another process's writes: the trace of the good rings is complete, but the
        // recording is not.
        let damage = recorder.quarantinedRings.sorted { $0.key < $1.key }.map(\.value.message)
            + (recorder.registryProblem.map { [$0.message] } ?? [])
        for message in damage { printError("error: \(message)") }
        // The buffer's memory: what its size allows, and what producers made resident by writing.
        print("memory: buffer_bytes=\(buffer.layout.totalSize) resident_bytes=\(SystemInfo.allocatedBytes(of: memory) ?? 0)\(buffer.memoryWasExhausted ? " exhausted=1" : "")")
        if buffer.memoryWasExhausted {
            printError("warning: producers could not get memory for the trace buffer (shared memory or the cgroup limit is exhausted): records were dropped, counted in dropped")
        }
        print("summary: recorded=\(totals.recorded) lost=\(totals.lost) dropped=\(totals.dropped) overwritten=\(totals.overwritten) too_large=\(totals.tooLarge) abandoned=\(totals.abandoned) quarantined=\(totals.quarantined) hidden_bytes=\(totals.hidden) mode=\(self.buffer.mode) exit_status=\(exitStatus)")
        complete = true
        if relayLost && output == nil { return 1 }
        return damage.isEmpty ? exitStatus : 1
    }

    /// `rseqtrace-record-YYYYMMDD-HHMMSS` (UTC, now), with `-2`, `-3`... appended while that name
    /// exists in the current directory.
    static func defaultOutput(realtime: Int64 = Int64(SystemInfo.nanoseconds(CLOCK_REALTIME))) -> String {
        let base = "rseqtrace-record-" + TraceText.compactDateTime(realtime)
        let existing = Set(SystemInfo.directoryEntries(".") ?? [])
        var name = base
        var suffix = 2
        while existing.contains(name) {
            name = base + "-\(suffix)"
            suffix += 1
        }
        return name
    }

    /// The options of `record` that take a value (as a separate word unless written `--name=value`).
    static let optionsWithValue: Set<String> = [
        "--output", "-o", "--mode", "--buffer-size", "--subbuffer-size", "--interval-ms", "--enable", "--disable", "--backend",
        "--relayd", "--relayd-timeout-ms", "--live-timer-ms",
    ]

    /// The words after `record` in `arguments` (argv) that are neither options nor their values, up to
    /// `--` or the end: a program written without the `--` before it.
    static func wordsBeforeTerminator(_ arguments: [String]) -> [String] {
        guard let start = arguments.dropFirst().firstIndex(of: "record") else { return [] }
        var words: [String] = []
        var index = start + 1
        while index < arguments.count, arguments[index] != "--" {
            let argument = arguments[index]
            index += 1
            if !words.isEmpty {
                words.append(argument)      // the program's own arguments, options included
            } else if argument.hasPrefix("-") {
                if !argument.contains("="), optionsWithValue.contains(argument) { index += 1 }
            } else {
                words.append(argument)
            }
        }
        return words
    }

    /// SIGTERM, SIGHUP, or the number.
    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        case SIGINT: "SIGINT"
        default: "signal \(signal)"
        }
    }
}

/// One self-redrawing status line on stderr (only on a terminal).
final class ProgressLine {
    let enabled: Bool
    private var lastDraw: UInt64 = 0
    private let start = SystemClock.monotonic()

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ totals: TraceDrainer.RingStatistics) {
        guard enabled else { return }
        let now = SystemClock.monotonic()
        guard now - lastDraw >= 250_000_000 else { return }
        lastDraw = now
        let seconds = max(Double(now - start) / 1e9, 1e-9)
        let rate = Double(totals.recorded) / seconds
        printError("\r\u{1B}[2Krecording: \(totals.recorded) events (\(format(rate / 1e3)) k/s), lost \(totals.lost), \(format(seconds)) s", newline: false)
    }

    func clear() {
        if enabled { printError("\r\u{1B}[2K", newline: false) }
    }
}
