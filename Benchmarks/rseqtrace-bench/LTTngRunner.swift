#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceBench
import RseqTraceSupport

/// Runs the LTTng-UST workload (`rseqtrace-bench-lttng`, built by Tools/bench with gcc) under a
/// session of the session daemon Tools/bench started, or with no session at all.
///
/// Each enabled run gets its own session: a per-UID discard channel of 4 MiB sub-buffers, as
/// many per CPU as hold the whole run (like the RseqTrace discard buffer), which is checked: the
/// channel's "Discarded events" must be 0, and (when asked) babeltrace2 must count every event
/// (a too-small /dev/shm makes LTTng record nothing without any command failing).
final class LTTngRunner {
    let application: String
    /// This harness's own executable (the bridge row runs `worker` inside a session).
    let benchExecutable: String
    let workDirectory: String
    let sessiondPID: Int32?
    static let subbufferSize = 4 << 20
    private var sessions = 0

    init(application: String, benchExecutable: String, workDirectory: String, sessiondPID: Int32?) {
        self.application = application
        self.benchExecutable = benchExecutable
        self.workDirectory = workDirectory
        self.sessiondPID = sessiondPID
    }

    enum Failure: Error, CustomStringConvertible {
        case command([String], ChildProcess.Outcome)
        case unexpected(String)

        var description: String {
            switch self {
            case .command(let arguments, let output):
                let detail = (output.stderr + output.stdout).split(separator: "\n").suffix(3).joined(separator: " | ")
                return "`\(arguments.joined(separator: " "))` exited with \(output.status): \(detail)"
            case .unexpected(let message):
                return message
            }
        }
    }

    /// `lttng --no-sessiond ...` (never spawn a daemon of its own), stopping on failure.
    @discardableResult
    private func lttng(_ arguments: [String]) throws(Failure) -> ChildProcess.Outcome {
        let command = ["lttng", "--no-sessiond"] + arguments
        let output = ChildProcess.runCaptured(command)
        guard output.exitedCleanly else { throw .command(command, output) }
        return output
    }

    private func workloadArguments(_ cell: Cell, events: UInt64, warmup: UInt64) -> [String] {
        let common = ["--workload", cell.workload.rawValue, "--threads", String(cell.threads),
                      "--events", String(events), "--warmup", String(warmup)]
        if cell.configuration == .rseqtraceLTTng {
            // The bridge: RseqTrace's typed tracepoints, forwarded into this session.
            return [benchExecutable, "worker", "--config", cell.configuration.rawValue] + common
        }
        return [application] + common
    }

    /// Sub-buffers per CPU (a power of two, at least 8) that hold every event of the run with a
    /// quarter to spare: LTTng stores about 26 bytes per `bench:event` and 71 per `bench:string`.
    static func subbufferCount(_ cell: Cell, events: UInt64, warmup: UInt64) -> Int {
        let allowed = Int(bench_allowed_cpus())
        let threadsPerCPU = UInt64((cell.threads + allowed - 1) / allowed)
        let bytes = (events + warmup) * threadsPerCPU * (cell.workload == .event ? 32 : 80) * 5 / 4
        var count = 8
        while UInt64(count * subbufferSize) < bytes { count <<= 1 }
        return count
    }

    /// Runs the workload with no session (tracepoints compiled in, daemon running, nothing enabled).
    func runDisabled(_ cell: Cell, events: UInt64, warmup: UInt64) throws(Failure) -> Sample {
        let arguments = workloadArguments(cell, events: events, warmup: warmup)
        let output = ChildProcess.runCaptured(arguments)
        guard output.exitedCleanly, let line = output.lastLine(startingWith: "result "),
              let sample = Sample(resultLine: line) else { throw .command(arguments, output) }
        return sample
    }

    /// Runs the workload under a fresh discard session, then checks and measures the trace.
    /// - Parameter count: also count the trace's events with babeltrace2.
    func runEnabled(_ cell: Cell, events: UInt64, warmup: UInt64, count: Bool) throws(Failure) -> Sample {
        sessions += 1
        let session = "rseqtrace-bench-\(getpid())-\(sessions)"
        let output = workDirectory + "/lttng-trace-\(sessions)"
        var created = false
        defer {
            if created { _ = try? lttng(["destroy", session]) }
            FileSystem.removeTree(output)
        }
        let subbuffers = LTTngRunner.subbufferCount(cell, events: events, warmup: warmup)
        try lttng(["create", session, "--output=" + output])
        created = true
        try lttng(["enable-channel", "--userspace", "--session=" + session, "--subbuf-size=\(LTTngRunner.subbufferSize)",
                   "--num-subbuf=\(subbuffers)", "--discard", "benchch"])
        // Every RseqTrace event names its writer's process and thread; LTTng's do with these contexts.
        try lttng(["add-context", "--userspace", "--session=" + session, "--channel=benchch", "--type=vpid", "--type=vtid"])
        let pattern = cell.configuration == .rseqtraceLTTng ? "bench:*" : "rseqtrace_bench:*"
        try lttng(["enable-event", "--userspace", "--session=" + session, "--channel=benchch", pattern])
        try lttng(["start", session])

        // The workload reads lttng-consumerd's CPU time itself just before its timed loop (after
        // the session's buffers were set up, which costs the consumer ~0.1 s by itself).
        let consumers = sessiondPID.map { childProcesses(of: $0, named: "lttng-consumerd") } ?? []
        var arguments = workloadArguments(cell, events: events, warmup: warmup)
        if !consumers.isEmpty && cell.configuration != .rseqtraceLTTng {
            arguments += ["--consumer-pids", consumers.map(String.init).joined(separator: ",")]
        }
        let run = ChildProcess.runCaptured(arguments)
        guard run.exitedCleanly, let line = run.lastLine(startingWith: "result "),
              var sample = Sample(resultLine: line) else { throw .command(arguments, run) }
        try lttng(["stop", session])  // returns once the consumer has written everything
        let consumerAfter = consumers.compactMap(processCPUNanoseconds).reduce(0, +)

        let listing = try lttng(["list", session, "--channel=benchch"]).stdout
        guard let discardedLine = listing.split(separator: "\n").first(where: { $0.contains("Discarded events:") }),
              let discarded = discardedLine.split(separator: ":").last.flatMap({ UInt64($0.filter(\.isNumber)) })
        else { throw .unexpected("no 'Discarded events' in `lttng list \(session)`") }
        try lttng(["destroy", session])
        created = false

        let emitted = UInt64(cell.threads) * (events + warmup)
        let streams = FileSystem.files(under: output).filter {
            let name = $0.path.split(separator: "/").last ?? ""
            return name.hasPrefix("benchch_") && !$0.path.contains("/index/")
        }
        guard !streams.isEmpty else {
            throw .unexpected("LTTng wrote no stream files under \(output) (is /dev/shm large enough for "
                + "\(subbuffers) x 4 MiB per CPU? see lttng-sessiond's log)")
        }
        sample.emitted = emitted
        sample.lost = discarded
        sample.recorded = emitted - min(discarded, emitted)
        sample.streamBytes = streams.reduce(0) { $0 + $1.size }
        if let start = resultFields(line)["consumer_start_ns"].flatMap(UInt64.init), consumerAfter >= start {
            sample.consumerNanoseconds = consumerAfter - start
        }
        if count {
            let counted = try countEvents(in: output)
            guard counted + discarded == emitted else {
                throw .unexpected("babeltrace2 counted \(counted) events, LTTng reported \(discarded) discarded, "
                    + "\(emitted) were emitted: LTTng lost events silently (/dev/shm too small?)")
            }
            sample.traceEvents = counted
        }
        return sample
    }

    /// Events in a trace, counted by babeltrace2's counter sink.
    private func countEvents(in trace: String) throws(Failure) -> UInt64 {
        let command = ["babeltrace2", trace, "--component=sink.utils.counter", "--params=step=+0"]
        let output = ChildProcess.runCaptured(command)
        guard output.exitedCleanly,
              let line = output.stdout.split(separator: "\n").first(where: { $0.hasSuffix("Event messages") }),
              let value = line.split(separator: " ").first.flatMap({ UInt64($0) })
        else { throw .command(command, output) }
        return value
    }
}
