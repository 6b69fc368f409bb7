// The stress matrix: its cells, which of them are known to fail, and how one cell is run (as an
// `rseqtrace-stress cell NAME` child process) and judged. Shared by rseqtrace-stress (`matrix`)
// and StressMatrixTests.
#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport

/// How a cell's processes are started, i.e. which producer mode they run in.
public enum ProcessMode: String, CaseIterable, Sendable {
    /// Default environment: glibc registers rseq.
    case rseq
    /// `GLIBC_TUNABLES=glibc.pthread.rseq=0`: RseqTrace registers each thread itself.
    case rseqSelf = "rseq-self"
    /// `RSEQTRACE_FORCE_FALLBACK=1`: the locked protocol.
    case fallback

    /// Variables set for the cell's processes (the mode variables are removed otherwise).
    public var environment: [String: String] {
        switch self {
        case .rseq: return [:]
        case .rseqSelf: return ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"]
        case .fallback: return [RseqRuntime.forceFallbackVariable: "1"]
        }
    }

    /// The mode a process started this way must report (checked in that process: `.rseq` is
    /// self-registered where glibc does not register rseq at all).
    public var expectedProducerMode: ProducerMode {
        switch self {
        case .rseq: return rtts_glibc_rseq_size() > 0 ? .rseq : .rseqSelfRegistered
        case .rseqSelf: return .rseqSelfRegistered
        case .fallback: return .fallback
        }
    }
}

/// Where the drainer runs.
public enum DrainerPlacement: String, CaseIterable, Sendable {
    /// A thread of the producing process.
    case inProcess = "inproc"
    /// A second process, which creates the buffer; the producers attach to it by name.
    case crossProcess = "cross"
}

/// How fast producers write.
public enum Pacing: String, CaseIterable, Sendable {
    /// A 50 µs pause every 10 records.
    case paced
    /// As fast as they can.
    case flat
}

/// Whether producer threads take signals whose handler writes records.
public enum SignalLoad: String, CaseIterable, Sendable {
    /// SIGUSR1 every 20...50 µs to every producer thread; the handler writes one record.
    case tracing = "sigtrace"
    /// No signals.
    case none = "nosig"
}

/// One cell of the matrix. Every cell also has yields in the producers and a thread that keeps
/// changing the producers' CPU affinities.
public struct StressCell: Sendable, Hashable, CustomStringConvertible {
    public var mode: ProcessMode
    public var buffer: BufferMode
    public var drainer: DrainerPlacement
    public var pacing: Pacing
    public var signals: SignalLoad
    /// Producer threads (6 or 16 on purpose: more than the CPUs, so they preempt each other).
    public var threads: Int

    /// `mode/buffer/drainer/pacing/signals/tN`, e.g. `rseq/discard/inproc/flat/sigtrace/t16`.
    public var name: String {
        "\(mode.rawValue)/\(buffer)/\(drainer.rawValue)/\(pacing.rawValue)/\(signals.rawValue)/t\(threads)"
    }

    public var description: String { name }

    /// Whether a failure of this cell is expected (see `StressMatrix.knownFailingModes`).
    public var isKnownFailing: Bool { StressMatrix.knownFailingModes.contains(mode) }
}

/// The cells and the verdict rules.
public enum StressMatrix {
    /// Producer modes whose cells are known to fail: a failing cell of these modes is reported
    /// XFAIL and a passing one XPASS, neither fails the run. Empty this set once they pass.
    public static let knownFailingModes: Set<ProcessMode> = []

    /// Every cell: mode x buffer x drainer x pacing x signals (48). Thread counts alternate so
    /// that every mode, buffer and signal load runs with both 6 and 16 threads.
    public static let allCells: [StressCell] = {
        var cells: [StressCell] = []
        for mode in ProcessMode.allCases {
            for buffer in [BufferMode.discard, .overwrite] {
                for drainer in DrainerPlacement.allCases {
                    for pacing in Pacing.allCases {
                        for signals in SignalLoad.allCases {
                            let threads = (drainer == .inProcess) == (pacing == .flat) ? 16 : 6
                            cells.append(StressCell(mode: mode, buffer: buffer, drainer: drainer, pacing: pacing,
                                                    signals: signals, threads: threads))
                        }
                    }
                }
            }
        }
        return cells
    }()

    /// The subset `swift test` runs in debug builds (12 cells: 4 per mode, covering both buffers,
    /// both drainers, both pacings and both signal loads).
    public static let lightCells: [StressCell] = {
        let picks: [(BufferMode, DrainerPlacement, Pacing, SignalLoad)] = [
            (.discard, .inProcess, .flat, .tracing),
            (.overwrite, .inProcess, .paced, .none),
            (.discard, .crossProcess, .paced, .tracing),
            (.overwrite, .crossProcess, .flat, .tracing),
        ]
        return ProcessMode.allCases.flatMap { mode in
            picks.map { pick in
                allCells.first {
                    $0.mode == mode && $0.buffer == pick.0 && $0.drainer == pick.1 && $0.pacing == pick.2
                        && $0.signals == pick.3
                }!
            }
        }
    }()

    /// The cell called `name`.
    public static func cell(named name: String) -> StressCell? {
        allCells.first { $0.name == name }
    }

    /// Seconds a cell's producers run in a release build and in a debug build.
    public static let releaseSeconds = 1.5
    public static let debugSeconds = 1.0
    /// Seconds a cell may take beyond its production time before it counts as stalled (its own
    /// watchdog ends it then; the parent kills it if even that does not happen). The time counts
    /// from the cell's start, so it includes starting a cross-process cell's producer process; a
    /// 1-second cross-process cell was not done 5 s after its start with the whole test suite and
    /// other builds sharing 2 CPUs (load 12), and passed 30 of 30 runs alone.
    public static let stallGraceSeconds = 10.0
}

/// How a cell ended, judged against `StressMatrix.knownFailingModes`.
public enum CellVerdict: String, Sendable {
    case pass = "PASS"
    case fail = "FAIL"
    /// A known-failing cell failed.
    case expectedFailure = "XFAIL"
    /// A known-failing cell passed.
    case unexpectedPass = "XPASS"

    /// Whether this verdict fails the run.
    public var failsRun: Bool { self == .fail }
}

/// The result of running one cell in its own process.
public struct CellOutcome: Sendable {
    public var cell: StressCell
    /// The `key=value` fields of the cell's `cell:` line.
    public var fields: [String: String]
    /// What broke (empty: the cell passed).
    public var failures: [String]
    public var verdict: CellVerdict
    /// The cell's standard error (diagnostics), for failure reports.
    public var diagnostics: String
    /// Wall time of the cell process, in milliseconds.
    public var milliseconds: Int

    /// One line: verdict, name and figures.
    public var line: String {
        func field(_ key: String) -> String { fields[key] ?? "?" }
        let rate = fields["events_per_s"].flatMap(Double.init).map { formatRate($0) } ?? "?"
        var text = "\(verdict.rawValue.padding(5)) \(cell.name.padding(44)) events/s=\(rate) emitted=\(field("emitted")) "
            + "recorded=\(field("recorded")) lost=\(field("lost")) handler=\(field("handler")) "
            + "failures=\(failures.count) (\(milliseconds) ms)"
        if !failures.isEmpty { text += "\n      " + failures.joined(separator: "\n      ") }
        return text
    }

    private func formatRate(_ rate: Double) -> String {
        rate >= 1e6 ? "\(Double(Int(rate / 1e4)) / 100)M" : "\(Double(Int(rate / 10)) / 100)k"
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// Runs cells as child processes of the `rseqtrace-stress` executable.
public enum StressCellRunner {
    /// Runs `cell` with `executable cell NAME --seconds S [--tamper T]` in the cell's mode and judges it.
    public static func run(_ cell: StressCell, executable: String, seconds: Double,
                           tamper: String? = nil) -> CellOutcome {
        var arguments = [executable, "cell", cell.name, "--seconds", "\(seconds)"]
        if let tamper { arguments += ["--tamper", tamper] }
        let environment = ProcessEnvironment.current(
            removing: ["RSEQTRACE_FORCE_FALLBACK", "GLIBC_TUNABLES", SharedTraceBuffer.environmentVariable],
            setting: cell.mode.environment)
        let limit = Duration.milliseconds(Int((seconds + StressMatrix.stallGraceSeconds) * 1000) + 6000)
        var failures: [String] = []
        var fields: [String: String] = [:]
        var diagnostics = ""
        var milliseconds = 0
        do {
            let child = try ChildProcess.spawn(arguments, environment: environment, stdin: .null)
            var snapshot = ""
            if child.waitForExit(milliseconds: Int(limit.components.seconds) * 1000) == nil {
                // Its own watchdog did not end it: record where its threads (and its producer
                // process's) are, then kill it.
                snapshot = threadStates(of: child.pid)
                child.signal(SIGKILL)
            }
            var outcome = child.wait()
            outcome.timedOut = outcome.timedOut || !snapshot.isEmpty
            diagnostics = outcome.stderr + snapshot
            let (seconds, attoseconds) = outcome.duration.components
            milliseconds = Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
            if let line = outcome.lastLine(startingWith: "cell: ") {
                (fields, failures) = CellReport.parse(line)
            }
            if outcome.timedOut {
                failures.append("stalled: killed after \(limit) (its own watchdog did not end it); thread states: \(snapshot.split(separator: "\n").joined(separator: "; "))")
            } else if outcome.exitCode != 0 && failures.isEmpty {
                failures.append("cell process ended with \(outcome.termination?.description ?? "no status") and reported no failure")
            } else if outcome.exitCode == 0 && (!failures.isEmpty || fields.isEmpty) {
                failures.append("cell process exited 0 but its report is missing or lists failures")
            }
        } catch {
            failures.append("cannot run \(executable): \(error)")
        }
        let verdict: CellVerdict = failures.isEmpty
            ? (cell.isKnownFailing ? .unexpectedPass : .pass)
            : (cell.isKnownFailing ? .expectedFailure : .fail)
        return CellOutcome(cell: cell, fields: fields, failures: failures, verdict: verdict,
                           diagnostics: diagnostics, milliseconds: milliseconds)
    }
}

/// `pid tid state wchan` of every thread of `pid` and of its children, from /proc.
private func threadStates(of pid: Int32) -> String {
    let script = """
        for p in \(pid) $(cat /proc/\(pid)/task/*/children 2>/dev/null); do
          for t in /proc/$p/task/*; do
            echo "$p ${t##*/} $(cut -d' ' -f3 $t/stat 2>/dev/null) $(cat $t/wchan 2>/dev/null)"
          done
        done
        """
    guard let outcome = try? ChildProcess.run(["/bin/sh", "-c", script], timeout: .seconds(5)) else { return "" }
    return outcome.stdout
}

/// The line a cell process ends with: `cell: key=value ... failures=none` or
/// `... failures=what broke | what else broke` (the failures are the rest of the line).
public enum CellReport {
    /// Formats the line.
    public static func line(_ fields: KeyValuePairs<String, String>, failures: [String]) -> String {
        let pairs = fields.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let listed = failures.isEmpty ? "none" : failures.map { $0.replacing("\n", with: " ") }.joined(separator: " | ")
        return "cell: \(pairs) failures=\(listed)"
    }

    /// The fields and failures of a line made by `line(_:failures:)`.
    public static func parse(_ line: String) -> (fields: [String: String], failures: [String]) {
        var text = Substring(line)
        if text.hasPrefix("cell: ") { text = text.dropFirst(6) }
        var failures: [String] = []
        let marker = text.hasPrefix("failures=") ? text.startIndex..<text.index(text.startIndex, offsetBy: 9)
            : text.firstRange(of: " failures=")
        if let marker {
            let listed = text[marker.upperBound...]
            if listed != "none" { failures = listed.split(separator: " | ").map(String.init) }
            text = text[..<marker.lowerBound]
        }
        var fields: [String: String] = [:]
        for token in text.split(separator: " ") {
            guard let equals = token.firstIndex(of: "=") else { continue }
            fields[String(token[..<equals])] = String(token[token.index(after: equals)...])
        }
        return (fields, failures)
    }
}
