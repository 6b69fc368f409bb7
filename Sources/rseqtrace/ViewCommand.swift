import ArgumentParser
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

/// `rseqtrace view DIR`: prints a CTF trace's events, one line each, like babeltrace2.
struct ViewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Print the events of a CTF trace written by rseqtrace, in time order.",
        discussion: """
            One line per event, with realtime UTC time of day and the delta from the previous line:
              [HH:MM:SS.nnnnnnnnn] (+d.ddddddddd) cpu N tid T name: { field = value, ... }
            (`tid T`: the thread that wrote the event, when the trace records it) and one line per loss a stream reported:
              discarded N events on cpu C between [HH:MM:SS.nnnnnnnnn] and [HH:MM:SS.nnnnnnnnn]
            A directory holding one trace per process (as attach writes) is read as one trace, \
            merged by real time, each line naming its process after the delta:
              [HH:MM:SS.nnnnnnnnn] (+d.ddddddddd) [program/pid] cpu N tid T name: { field = value, ... }
              discarded N events in [program/pid] on cpu C between [...] and [...]
            A trace of it that cannot be read is left out (from where it is damaged on), with a \
            warning on stderr.
            --event, --filter, --cpu, --pid, --tid, --from and --to select events (--cpu, --pid, --from and \
            --to also losses); --limit stops after N events. A directory that is not a trace but holds \
            exactly one below it (e.g. an lttng session's output) is read in its place.

            --live net://HOST[:PORT]/host/HOSTNAME/SESSION follows a live session of an LTTng relay \
            daemon (record --relayd; port 5344 by default) as it is recorded, until the session \
            ends, by running babeltrace2 -i lttng-live URL (babeltrace2's text, no event selection); \
            --live net://HOST[:PORT] lists the relay's sessions.
            """)

    @Argument(help: """
        The trace directory (holding `metadata` and the `channel0_<n>` stream files), a directory \
        holding one trace per process (attach -o DIR), or a directory holding one trace. Default: the newest rseqtrace-record-* directory in the current directory.
        """)
    var directory: String?

    @OptionGroup var selection: EventSelection

    @Option(help: "Print at most this many events.")
    var limit: Int?

    @Option(name: .customLong("live"), help: ArgumentHelp(
        "Follow a live relay session (net://HOST[:PORT]/host/HOSTNAME/SESSION) with babeltrace2, or list the relay's sessions (net://HOST[:PORT]).",
        valueName: "URL"))
    var live: String?

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more, got \(limit)") }
        if let live {
            guard live.hasPrefix("net://") || live.hasPrefix("net6://") else {
                throw ValidationError("--live URL must be net://HOST[:PORT]/host/HOSTNAME/SESSION or net://HOST[:PORT], got \(live)")
            }
            guard directory == nil, limit == nil, selection.events.isEmpty, selection.cpus.isEmpty, selection.pids.isEmpty,
                  selection.tids.isEmpty, selection.filters.isEmpty, selection.from == nil, selection.to == nil else {
                throw ValidationError("--live takes no trace directory and no event selection (babeltrace2 prints every event)")
            }
        }
    }

    func run() throws {
        if let live {
            do {
                let viewer = try ChildProcess.spawn(["babeltrace2", "-i", "lttng-live", live], searchPath: true,
                                                    stdin: .inherit, stdout: .inherit, stderr: .inherit)
                let status = viewer.waitForExit(milliseconds: -1)?.status ?? 1
                if status != 0 { throw ExitCode(status) }
                return
            } catch let error as TraceError {
                printError("error: cannot run babeltrace2 for --live: \(error); install babeltrace2 (with its lttng-live plugin)")
                throw ExitCode.failure
            }
        }
        let set = try TraceText.open(TraceText.directory(directory))
        for warning in selection.missingWarnings(set) { printError(warning) }
        var matcher = try EventSelection.Matcher(selection)
        let labels = set.isSet ? set.members.map { "[\($0.process.label)] " } : set.members.map { _ in "" }
        let pids = set.members.map(\.process.pid)
        var records = set.records()
        var reported = 0
        var printed = 0
        var previous: Int64?
        do {
            while limit.map({ printed < $0 }) ?? true, let element = try records.next() {
                reported = TraceText.reportProblems(records, reported: reported)
                let record = element.record
                guard matcher.matches(record, pid: pids[element.member]) else { continue }
                let label = labels[element.member]
                switch record {
                case .event(let event):
                    let delta = previous.map { "+" + TraceText.seconds(UInt64(max(0, event.realtime &- $0))) } ?? "+?.?????????"
                    previous = event.realtime
                    let fields = event.fields.map { "\($0.name) = \($0.value)" }.joined(separator: ", ")
                    let tid = TraceTimeline.thread(of: event).map { "tid \($0.tid) " } ?? ""
                    print("[\(TraceText.timeOfDay(event.realtime))] (\(delta)) \(label)cpu \(event.cpuID) \(tid)\(event.name): { \(fields.isEmpty ? "" : fields + " ")}")
                    printed += 1
                case .discarded(let loss):
                    let process = label.isEmpty ? "" : "in \(label)"
                    print("discarded \(loss.count) events \(process)on cpu \(loss.cpuID) between [\(TraceText.timeOfDay(loss.realtimeBegin))] and [\(TraceText.timeOfDay(loss.realtimeEnd))]")
                }
            }
            _ = TraceText.reportProblems(records, reported: reported)
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
