#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats
import RseqTraceSupport

/// `rseqtrace attach PID... --output DIR`: records running programs without restarting them.
struct AttachCommand: ParsableCommand, EventRuleOptions {
    static let inheritsEnvironment = false

    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Record running programs that use RseqTrace, without restarting them (see 'rseqtrace list').",
        discussion: """
            Each program gets a buffer of its own (an anonymous memory file it creates and passes \
            over its control socket), or records from its flight recorder when it keeps one; this \
            process drains them all while they run and writes one trace: DIR holds one CTF trace \
            per process, <command>-<pid>/, which babeltrace2 and rseqtrace view/stats/export read \
            together as one trace (babeltrace2 --fields=trace:procname,trace:vpid shows each event's \
            process).

            Recording stops on Ctrl-C (SIGINT), SIGTERM or SIGHUP, after --duration, or when every \
            program has exited. Then each program is detached: its tracepoints go back to their \
            state before (disabled unless a flight recorder runs), and it can be attached again. A \
            program that exits while attached keeps its committed events: they are drained after \
            its exit, and a record its crash left half-written is counted as abandoned. If this \
            process is killed, every program detaches by itself (its control connection closes) \
            and goes on.

            With --relayd net://HOST[:CONTROL_PORT[:DATA_PORT]], each process's trace is also (or, \
            without --output, only) sent to an LTTng relay daemon, as one relay session per process \
            (rseqtrace-<command>-<pid>), as record --relayd does.

            --enable and --disable replace the program's rules for the time of the recording (the \
            last matching rule wins; a first --enable makes an allow-list), as for record.

            The last line is machine-readable:
              summary: processes=<n> recorded=<n> lost=<n>
            where lost counts every event the programs emitted while attached that is not in the \
            trace (dropped on a full buffer, too large, overwritten, abandoned), per process on \
            the 'process' lines before it.
            """)

    @Argument(help: "The processes to record (see 'rseqtrace list').")
    var pids: [Int32] = []

    @Flag(help: "Record every traceable process of yours (of every user, for root).")
    var all = false

    @Option(name: [.customShort("o"), .long], help: """
        Directory for the trace (created; must not exist or be empty). Default: a new \
        rseqtrace-attach-YYYYMMDD-HHMMSS directory (UTC) in the current directory, or none with --relayd.
        """)
    var output: String?

    @Option(help: "Full-buffer policy of the buffers made for this recording: discard (default) or overwrite.")
    var mode: BufferMode?

    @Option(name: .customLong("buffer-size"), help: "Ring size per CPU of each program's buffer, a power of two.")
    var bufferSize: ByteSize = ByteSize(bytes: 4 << 20)

    @Option(name: .customLong("subbuffer-size"), help: "Sub-buffer size, a power of two. Default: derived from --buffer-size.")
    var subbufferSize: ByteSize?

    @Option(help: "Stop after this many seconds (e.g. 10 or 0.5).")
    var duration: Double?

    @Option(name: .customLong("enable"), help: ArgumentHelp(
        "Record the events matching PATTERNS (e.g. 'http:*'); repeatable, in order with --disable.", valueName: "PATTERNS"))
    var enabled: [String] = []

    @Option(name: .customLong("disable"), help: ArgumentHelp(
        "Do not record the events matching PATTERNS; repeatable, in order with --enable.", valueName: "PATTERNS"))
    var disabled: [String] = []

    @OptionGroup var relayOptions: RelayOptions

    @Option(name: .customLong("interval-ms"), help: "Milliseconds to wait after a drain round that found nothing (1-10000).")
    var intervalMilliseconds: Int = 20

    func validate() throws {
        guard !pids.isEmpty || all else {
            throw ValidationError("name the processes to record (rseqtrace attach PID...), or --all; 'rseqtrace list' shows them")
        }
        guard pids.isEmpty || !all else { throw ValidationError("give process ids or --all, not both") }
        for pid in pids where pid <= 0 { throw ValidationError("'\(pid)' is not a process id") }
        if let duration, !(duration > 0 && duration <= 31_536_000) {
            throw ValidationError("--duration must be a number of seconds above 0, got \(duration)")
        }
        guard (1...10_000).contains(intervalMilliseconds) else {
            throw ValidationError("--interval-ms must be between 1 and 10000, got \(intervalMilliseconds)")
        }
        guard TraceLayout(cpuRingCount: 1, ringSize: bufferSize.bytes, subbufferSize: subbufferBytes) != nil else {
            throw ValidationError("""
                --buffer-size \(bufferSize.bytes) and --subbuffer-size \(subbufferBytes) must be powers of two \
                with 8K <= buffer-size <= 1G, 256 <= subbuffer-size <= 16M, and 2 to 256 sub-buffers per buffer
                """)
        }
        do { _ = try eventRuleList() } catch { throw ValidationError(error.message) }
    }

    var subbufferBytes: Int { subbufferSize?.bytes ?? TraceConfiguration.defaultSubbufferSize(forRingSize: bufferSize.bytes) }

    func run() throws {
        do {
            try attach()
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }

    /// One attached process and its part of the trace.
    final class Target {
        let client: ControlClient
        let command: String
        let recorder: TraceRecorder
        let directory: String?
        let isFlightRecorder: Bool
        var exited = false
        var detached = false
        var firstEventAfter: Duration?

        init(client: ControlClient, command: String, recorder: TraceRecorder, directory: String?, isFlightRecorder: Bool) {
            self.isFlightRecorder = isFlightRecorder
            self.client = client
            self.command = command
            self.recorder = recorder
            self.directory = directory
        }
    }

    private func attach() throws(TraceError) {
        // Termination signals are read from a descriptor (before any thread starts).
        let signals = try SignalReceiver([SIGINT, SIGTERM, SIGHUP])
        defer { withExtendedLifetime(signals) {} }
        let endpoints = try LiveTargets.endpoints(pids: pids, all: all)
        let fallback = self.output ?? LiveTargets.defaultOutput(prefix: "rseqtrace-attach")
        var output: String? = relayOptions.relayd == nil ? fallback : self.output
        var createdDirectory = try output.map { (path) throws(TraceError) in try CTFTraceWriter.prepareDirectory(path) } ?? false
        var targets: [Target] = []
        // The longest pause between drain rounds: shorter than --interval-ms when a live relay
        // session's timer is.
        var interval = intervalMilliseconds
        var complete = false
        defer {
            if !complete {
                // Whatever was attached is detached (closing the connections does it too).
                for target in targets where !target.exited { try? target.client.detach() }
                if let output, targets.allSatisfy({ $0.recorder.drainer.totals.recorded == 0 }) {
                    for target in targets {
                        if let directory = target.directory { CTFTraceWriter.removeTrace(in: directory, removingDirectory: true) }
                    }
                    CTFTraceWriter.removeTrace(in: output, removingDirectory: createdDirectory)
                }
            }
        }
        var request = ControlMessage("attach", [
            "buffer_size": "\(bufferSize.bytes)", "subbuffer_size": "\(subbufferBytes)", "mode": mode?.description ?? "",
        ])
        if let rules = try eventRuleList() { request["rules"] = rules }
        let start = ContinuousClock.now
        for endpoint in endpoints {
            let client = try ControlClient(connectingTo: endpoint)
            let status = try client.status()
            let command = LiveTargets.safeName(status["program"] ?? status["command"] ?? "process")
            let (buffer, _) = try client.openSession(request)
            let relay = try relayOptions.connect(sessionName: "rseqtrace-\(command)-\(client.pid)",
                                                 ringCount: buffer.layout.cpuRingCount, fallback: fallback)
            if relayOptions.relayd != nil, relay == nil, output == nil {
                output = fallback
                createdDirectory = try CTFTraceWriter.prepareDirectory(fallback)
            }
            let directory = output.map { $0 + "/\(command)-\(client.pid)" }
            if let directory { _ = try CTFTraceWriter.prepareDirectory(directory) }
            let recorder = try TraceRecorder(buffer: buffer, output: directory, relay: relay, traceName: "rseqtrace-attach",
                                             procname: command, pid: client.pid)
            if let relay { printError("rseqtrace: process \(client.pid) is sent to \(relay.endpoint) as \(relay.path) (under the relay's output directory)") }
            let recorderInterval = relayOptions.roundIntervalMilliseconds(intervalMilliseconds, live: relay?.isLive == true)
            interval = min(interval, recorderInterval)
            recorder.partialSubbufferInterval = .milliseconds(recorderInterval)
            targets.append(Target(client: client, command: command, recorder: recorder, directory: directory,
                                  isFlightRecorder: status["flight_recorder"] != nil))
            printError("rseqtrace: attached to process \(client.pid) (\(command)), \(buffer.mode) buffer\(status["flight_recorder"] != nil ? " (its flight recorder)" : "")")
        }
        let deadline = duration.map { start + .nanoseconds(Int64($0 * 1e9)) }
        var stopReason = "every process exited"
        recording: while targets.contains(where: { !$0.exited }) {
            if let signal = signals.next() {
                stopReason = RecordCommand.signalName(signal) + " received"
                break
            }
            if let deadline, ContinuousClock.now >= deadline {
                stopReason = "--duration elapsed"
                break
            }
            var drained = 0
            for target in targets where !target.exited {
                let count = try target.recorder.round()
                if count > 0, target.firstEventAfter == nil { target.firstEventAfter = ContinuousClock.now - start }
                drained += count
            }
            if drained == 0 {
                var wait = interval
                if let deadline {
                    let left = deadline - ContinuousClock.now
                    wait = max(0, min(wait, Int(left.components.seconds) * 1000 + Int(left.components.attoseconds / 1_000_000_000_000_000) + 1))
                }
                let live = targets.filter { !$0.exited }
                for index in LiveTargets.waitForExits(live.map(\.client.descriptor), orSignal: signals.descriptor, milliseconds: wait) {
                    live[index].exited = true
                    printError("rseqtrace: process \(live[index].client.pid) (\(live[index].command)) exited; draining what it left")
                }
                continue recording
            }
        }
        // Detach the programs still running (they stop writing for this recording before they
        // answer), then drain what they committed until two rounds in a row find nothing.
        for target in targets where !target.exited {
            do throws(TraceError) {
                try target.client.detach()
                target.detached = true
            } catch {
                target.exited = true   // it exited meanwhile
            }
        }
        for target in targets {
            let recorder = target.recorder
            recorder.partialSubbufferInterval = nil
            if target.detached && target.isFlightRecorder {
                // Its flight recorder goes on recording: one round takes what was committed up to
                // the detach (and a little more).
                try recorder.round()
            } else {
                var idle = 0
                let drainStart = ContinuousClock.now
                while idle < 2 && ContinuousClock.now - drainStart < .seconds(2) {
                    let count = try recorder.round()
                    idle = count == 0 ? idle + 1 : 0
                    if count == 0 { SystemClock.sleep(milliseconds: 5) }
                }
            }
            if target.firstEventAfter == nil, recorder.drainer.totals.recorded > 0 { target.firstEventAfter = ContinuousClock.now - start }
            // A process that is gone cannot write any more: records it left reserved are abandoned.
            let gone = target.exited && SystemInfo.runningProcessStartTime(target.client.pid) == nil
            try recorder.round(quiescent: gone)
            _ = try recorder.finish()
        }
        var recorded: UInt64 = 0
        var lost: UInt64 = 0
        for target in targets {
            let totals = target.recorder.drainer.totals
            recorded += totals.recorded
            lost += totals.lost
            let first = target.firstEventAfter.map { " first_event_ms=\(format(Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1e3))" } ?? ""
            print("process: pid=\(target.client.pid) command=\(target.command) recorded=\(totals.recorded) lost=\(totals.lost) dropped=\(totals.dropped) overwritten=\(totals.overwritten) too_large=\(totals.tooLarge) abandoned=\(totals.abandoned) state=\(target.exited ? "exited" : "detached")\(first)")
            for (_, error) in target.recorder.quarantinedRings.sorted(by: { $0.key < $1.key }) { printError("error: \(error.message)") }
        }
        if let output {
            print("trace: \(output) (CTF 1.8, one trace per process; stopped: \(stopReason))")
            print(RecordDiagnosis.readWith(output))
        } else {
            print("stopped: \(stopReason)")
        }
        var relayLost = false
        for target in targets {
            guard let relay = target.recorder.writer?.relay else { continue }
            if let failure = relay.failure {
                relayLost = true
                printError("error: the relay daemon at \(relay.endpoint) was lost while recording process \(target.client.pid): \(failure); \(relay.undeliveredEvents) events did not reach it")
            }
        }
        print("summary: processes=\(targets.count) recorded=\(recorded) lost=\(lost)")
        complete = true
        if relayLost && output == nil { throw TraceError(.systemCallFailed, "the relay daemon kept only part of the trace and no local copy was written (use --output DIR with --relayd)") }
    }
}
