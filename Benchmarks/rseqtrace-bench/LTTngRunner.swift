#if canImport(Glibc)
import Glibc
#endif

/// Runs the LTTng-UST workload (`rseqtrace-bench-lttng`, built by Tools/bench with gcc) under a
/// session of the session daemon Tools/bench started, or with no session at all.
///
/// Each enabled run gets its own session: a per-UID discard channel of `subbufferSize` ×
/// `subbufferCount` per CPU, large enough to lose nothing at this rate, which is checked: the
/// channel's "Discarded events" must be 0, and (when asked) babeltrace2 must count every event
/// (a too-small /dev/shm makes LTTng record nothing without any command failing).
final class LTTngRunner {
    let application: String
    let workDirectory: String
    let sessiondPID: Int32?
    let subbufferSize = "4M"
    let subbufferCount = 16
    private var sessions = 0

    init(application: String, workDirectory: String, sessiondPID: Int32?) {
        self.application = application
        self.workDirectory = workDirectory
        self.sessiondPID = sessiondPID
    }

    enum Failure: Error, CustomStringConvertible {
        case command([String], ChildOutput)
        case unexpected(String)

        var description: String {
            switch self {
            case .command(let arguments, let output):
                let detail = (output.standardError + output.standardOutput).split(separator: "\n").suffix(3).joined(separator: " | ")
                return "`\(arguments.joined(separator: " "))` exited with \(output.status): \(detail)"
            case .unexpected(let message):
                return message
            }
        }
    }

    /// `lttng --no-sessiond ...` (never spawn a daemon of its own), stopping on failure.
    @discardableResult
    private func lttng(_ arguments: [String]) throws(Failure) -> ChildOutput {
        let command = ["lttng", "--no-sessiond"] + arguments
        let output = ChildProcess.run(command)
        guard output.succeeded else { throw .command(command, output) }
        return output
    }

    private func workloadArguments(_ cell: Cell, events: UInt64, warmup: UInt64) -> [String] {
        [application, "--workload", cell.workload.rawValue, "--threads", String(cell.threads),
         "--events", String(events), "--warmup", String(warmup)]
    }

    /// Runs the workload with no session (tracepoints compiled in, daemon running, nothing enabled).
    func runDisabled(_ cell: Cell, events: UInt64, warmup: UInt64) throws(Failure) -> Sample {
        let arguments = workloadArguments(cell, events: events, warmup: warmup)
        let output = ChildProcess.run(arguments)
        guard output.succeeded, let line = output.lastLine(startingWith: "result "),
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
        try lttng(["create", session, "--output=" + output])
        created = true
        try lttng(["enable-channel", "--userspace", "--session=" + session, "--subbuf-size=" + subbufferSize,
                   "--num-subbuf=\(subbufferCount)", "--discard", "benchch"])
        try lttng(["enable-event", "--userspace", "--session=" + session, "--channel=benchch", "rseqtrace_bench:*"])
        try lttng(["start", session])

        let consumers = sessiondPID.map { childProcesses(of: $0, named: "lttng-consumerd") } ?? []
        let consumerBefore = consumers.compactMap(processCPUNanoseconds).reduce(0, +)
        let arguments = workloadArguments(cell, events: events, warmup: warmup)
        let run = ChildProcess.run(arguments)
        guard run.succeeded, let line = run.lastLine(startingWith: "result "),
              var sample = Sample(resultLine: line) else { throw .command(arguments, run) }
        try lttng(["stop", session])  // returns once the consumer has written everything
        let consumerAfter = consumers.compactMap(processCPUNanoseconds).reduce(0, +)

        let listing = try lttng(["list", session, "--channel=benchch"]).standardOutput
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
                + "\(subbufferSize) x \(subbufferCount) per CPU? see lttng-sessiond's log)")
        }
        sample.emitted = emitted
        sample.lost = discarded
        sample.recorded = emitted - min(discarded, emitted)
        sample.streamBytes = streams.reduce(0) { $0 + $1.size }
        if !consumers.isEmpty {
            // Only what the events cost: a session's set-up (allocating and clearing its per-CPU
            // buffers when the application registers) costs lttng-consumerd ~0.1 s of CPU by itself.
            let baseline = try consumerBaseline(threads: cell.threads)
            sample.consumerNanoseconds = (consumerAfter &- consumerBefore) > baseline ? (consumerAfter &- consumerBefore) - baseline : 0
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

    /// lttng-consumerd's CPU time for a session whose application emits a single event (median
    /// of three), by thread count: the fixed cost subtracted from every measured run.
    private var consumerBaselines: [Int: UInt64] = [:]

    private func consumerBaseline(threads: Int) throws(Failure) -> UInt64 {
        if let known = consumerBaselines[threads] { return known }
        consumerBaselines[threads] = 0  // the calibration runs below must not recurse
        var times: [UInt64] = []
        for _ in 0..<3 {
            let sample = try runEnabled(Cell(configuration: .lttngEnabled, workload: .event, threads: threads),
                                        events: 1, warmup: 0, count: false)
            times.append(sample.consumerNanoseconds ?? 0)
        }
        let median = times.sorted()[1]
        consumerBaselines[threads] = median
        return median
    }

    /// Events in a trace, counted by babeltrace2's counter sink.
    private func countEvents(in trace: String) throws(Failure) -> UInt64 {
        let command = ["babeltrace2", trace, "--component=sink.utils.counter", "--params=step=+0"]
        let output = ChildProcess.run(command)
        guard output.succeeded,
              let line = output.standardOutput.split(separator: "\n").first(where: { $0.hasSuffix("Event messages") }),
              let value = line.split(separator: " ").first.flatMap({ UInt64($0) })
        else { throw .command(command, output) }
        return value
    }
}
