#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CRseqTraceBench
import RseqTraceLTTng
import RseqTraceSupport

/// `rseqtrace-bench run` (the default): the whole benchmark, as `Tools/bench` runs it.
///
/// Every configuration runs in its own child process (`worker`, or the LTTng C program), one cell
/// after the other within a round and round after round (A B C … A B C …); round 0 is a warm-up
/// whose results are discarded. Then the rseq abort census (perf), the consumer-CPU runs, the
/// sustained-rate search, the noise check, the table, the goals and the summary line.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the benchmark (Tools/bench builds everything and calls this).")

    @Flag(help: "Few events and runs, for a smoke test (under a minute).")
    var quick = false

    @Option(help: "Timed events per thread and run (default 1000000; --quick 200000).")
    var events: UInt64?

    @Option(help: "Measured runs per cell, after one warm-up round (default 7; --quick 3).")
    var runs: Int?

    @Option(help: "Untimed warm-up events per thread at the start of each run.")
    var warmupEvents: UInt64 = 10_000

    @Option(help: "The LTTng-UST workload program (built by Tools/bench); without it the LTTng rows are skipped.")
    var lttngApplication: String?

    @Option(help: "PID of the lttng-sessiond the LTTng runs use (to read lttng-consumerd's CPU time).")
    var lttngSessiondPID: Int32?

    @Option(help: "Why there are no LTTng rows (printed instead of them).")
    var lttngUnavailable: String?

    @Option(help: "Scratch directory for traces (on the disk the consumers write to).")
    var workDirectory: String = "/tmp"

    @Option(help: "Largest accepted (max - min) / median of the rdtsc and empty loops' runs (without the fastest and slowest when there are 5 or more) before the machine counts as noisy.")
    var noiseThreshold: Double = 0.20

    @Option(help: "Largest accepted slowdown of the ALU probe on all CPUs vs one before the CPUs count as shared.")
    var scalingThreshold: Double = 1.15

    @Option(help: "The perf program, for the rseq abort census (rseq:rseq_ip_fixup); 'none' to skip.")
    var perf: String = "perf"

    @Option(help: "Only these configurations (comma-separated names; for development).")
    var only: String?

    @Flag(help: "Skip the sustained-rate search.")
    var noSustained = false

    func validate() throws {
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if let events, events < 1000 { throw ValidationError("--events must be at least 1000") }
    }

    func run() throws {
        let settings = Settings(
            quick: quick,
            events: events ?? (quick ? 200_000 : 1_000_000),
            runs: runs ?? (quick ? 3 : 7),
            warmup: warmupEvents,
            allCPUs: Int(bench_allowed_cpus()),
            noiseThreshold: noiseThreshold,
            scalingThreshold: scalingThreshold)
        guard let executable = currentExecutable() else {
            printError("rseqtrace-bench: cannot find its own executable (/proc/self/exe)")
            throw ExitCode.failure
        }
        var selected = Configuration.allCases
        if let only {
            let names = only.split(separator: ",").map(String.init)
            selected = names.compactMap(Configuration.init(rawValue:))
            guard selected.count == names.count else {
                printError("rseqtrace-bench: unknown configuration in --only \(only); known: "
                    + Configuration.allCases.map(\.rawValue).joined(separator: ", "))
                throw ExitCode.failure
            }
        }
        let lttng = lttngApplication.map {
            LTTngRunner(application: $0, benchExecutable: executable, workDirectory: workDirectory,
                        sessiondPID: lttngSessiondPID)
        }
        if lttng == nil { selected.removeAll(where: \.isLTTng) }
        // The bridge row needs this executable built with the LTTng trait.
        if !LTTngBridge.isAvailable { selected.removeAll { $0 == .rseqtraceLTTng } }

        var harness = Harness(settings: settings, executable: executable, lttng: lttng,
                              workDirectory: workDirectory, configurations: selected)
        let stealBefore = CPUJiffies.now()
        harness.measureCells()
        let census = perf == "none" ? nil : harness.abortCensus(perf: perf)
        let consumers = harness.consumerCensus()
        let sustained = noSustained ? nil : harness.sustainedSearch()
        let stealAfter = CPUJiffies.now()
        var steal: Double?
        if let before = stealBefore, let after = stealAfter, after.total > before.total {
            steal = Double(after.steal - before.steal) / Double(after.total - before.total)
        }
        let report = Report(settings: settings, results: harness.results, census: census, consumers: consumers,
                            sustained: sustained,
                            steal: steal, lttngUnavailable: lttng == nil ? (lttngUnavailable ?? "not built") : nil,
                            configurations: selected)
        report.print()
        if !harness.failures.isEmpty { throw ExitCode.failure }
    }

    private func currentExecutable() -> String? {
        var path = [CChar](repeating: 0, count: 4096)
        // SAFETY: readlink writes at most count - 1 bytes into the array.
        let count = unsafe readlink("/proc/self/exe", &path, path.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: path[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The run's parameters.
struct Settings {
    var quick: Bool
    var events: UInt64
    var runs: Int
    var warmup: UInt64
    /// CPUs this process may use: the "one thread per CPU" thread count.
    var allCPUs: Int
    var noiseThreshold: Double
    var scalingThreshold: Double

    var threadCounts: [Int] { allCPUs > 1 ? [1, allCPUs] : [1] }
}

/// Runs every cell, round after round, and keeps the results.
struct Harness {
    let settings: Settings
    let executable: String
    let lttng: LTTngRunner?
    let workDirectory: String
    let configurations: [Configuration]
    private(set) var results: [Cell: CellResult] = [:]
    private(set) var failures: [String] = []
    private var traces = 0

    init(settings: Settings, executable: String, lttng: LTTngRunner?, workDirectory: String,
         configurations: [Configuration]) {
        self.settings = settings
        self.executable = executable
        self.lttng = lttng
        self.workDirectory = workDirectory
        self.configurations = configurations
    }

    /// The cells in table order: event workload then string workload, 1 thread then all CPUs.
    var cells: [Cell] {
        var cells: [Cell] = []
        for workload in Workload.allCases {
            for threads in settings.threadCounts {
                for configuration in configurations where workload == .event || configuration.hasStringVariant {
                    cells.append(Cell(configuration: configuration, workload: workload, threads: threads))
                }
            }
        }
        return cells
    }

    mutating func measureCells() {
        let cells = self.cells
        for round in 0...settings.runs {
            progress(round == 0 ? "warm-up round (discarded)" : "round \(round)/\(settings.runs)")
            for cell in cells {
                // The first measured round writes the traces (bytes per event) and counts LTTng's events.
                let sample = runCell(cell, writeTrace: round == 1)
                guard round > 0 else { continue }
                switch sample {
                case .success(let sample): results[cell, default: CellResult()].samples.append(sample)
                case .failure(let message):
                    results[cell, default: CellResult()].failures.append(message)
                    failures.append(message)
                    progress("FAILED: \(message)")
                }
            }
        }
    }

    enum Outcome {
        case success(Sample)
        case failure(String)
    }

    private mutating func runCell(_ cell: Cell, writeTrace: Bool) -> Outcome {
        let name = "\(cell.configuration.rawValue) \(cell.workload.rawValue) \(cell.threads)T"
        let events = settings.events * cell.configuration.eventsMultiplier
        if cell.configuration.isLTTng {
            guard let lttng else { return .failure("\(name): LTTng unavailable") }
            do {
                let sample = cell.configuration == .lttngEnabled || cell.configuration == .rseqtraceLTTng
                    ? try lttng.runEnabled(cell, events: events, warmup: settings.warmup, count: writeTrace)
                    : try lttng.runDisabled(cell, events: events, warmup: settings.warmup)
                return check(sample, cell, name)
            } catch {
                return .failure("\(name): \(error)")
            }
        }
        var arguments = [executable, "worker", "--config", cell.configuration.rawValue,
                         "--workload", cell.workload.rawValue, "--threads", String(cell.threads),
                         "--events", String(events), "--warmup", String(settings.warmup)]
        var trace: String?
        if writeTrace && cell.configuration.writesTrace {
            traces += 1
            trace = workDirectory + "/rseqtrace-trace-\(traces)"
            arguments += ["--trace-output", trace!]
        }
        let output = ChildProcess.runCaptured(arguments, setting: cell.configuration.workerEnvironment)
        if let trace { FileSystem.removeTree(trace) }
        removeLeftoverBuffer(of: output)
        guard output.exitedCleanly, let line = output.lastLine(startingWith: "result "),
              let sample = Sample(resultLine: line) else {
            let detail = output.stderr.split(separator: "\n").suffix(3).joined(separator: " | ")
            return .failure("\(name): worker exited with \(output.status): \(detail)")
        }
        return check(sample, cell, name)
    }

    /// Every recording run must account for every event; a discard-mode run with big enough
    /// buffers must lose none.
    private func check(_ sample: Sample, _ cell: Cell, _ name: String) -> Outcome {
        guard let emitted = sample.emitted, let recorded = sample.recorded, let lost = sample.lost else {
            return cell.configuration.records ? .failure("\(name): no event counts") : .success(sample)
        }
        if recorded + lost != emitted {
            return .failure("\(name): recorded \(recorded) + lost \(lost) != emitted \(emitted)")
        }
        if lost > 0 && cell.configuration != .rseqtraceOverwrite {
            return .failure("\(name): \(lost) events lost although the buffers hold the whole run")
        }
        return .success(sample)
    }

    // MARK: - rseq aborts

    /// rseq aborts, counted by the kernel: each abort is one `rseq:rseq_ip_fixup` tracepoint hit
    /// (the kernel moving the instruction pointer to the abort handler), counted with `perf stat`
    /// over the worker process and its threads, in runs of their own (not the timed ones).
    func abortCensus(perf: String) -> AbortCensus {
        var census = AbortCensus()
        let events = settings.events * 5
        var cells = [Cell(configuration: .rseqtraceDiscard, workload: .event, threads: 1)]
        if settings.allCPUs > 1 {
            cells.append(Cell(configuration: .rseqtraceDiscard, workload: .event, threads: settings.allCPUs))
            cells.append(Cell(configuration: .rseqtraceOverwrite, workload: .event, threads: settings.allCPUs))
        }
        for cell in cells where configurations.contains(cell.configuration) {
            progress("rseq abort census: \(cell.configuration.rawValue) \(cell.threads)T under perf stat")
            let output = ChildProcess.runCaptured([perf, "stat", "-x,", "-e", "rseq:rseq_ip_fixup", "--",
                                           executable, "worker", "--config", cell.configuration.rawValue,
                                           "--threads", String(cell.threads), "--events", String(events),
                                           "--warmup", String(settings.warmup)])
            let counted = output.stderr.split(separator: "\n")
                .first(where: { $0.contains("rseq:rseq_ip_fixup") })
                .flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).first }
                .flatMap { UInt64($0) }
            guard output.exitedCleanly, let counted, let line = output.lastLine(startingWith: "result "),
                  let sample = Sample(resultLine: line), let emitted = sample.emitted else {
                let detail = output.stderr.split(separator: "\n").suffix(2).joined(separator: " | ")
                census.unavailable = "perf stat -e rseq:rseq_ip_fixup failed (\(output.status)): \(detail)"
                return census
            }
            census.entries.append(.init(cell: cell, aborts: counted, events: emitted))
        }
        return census
    }

    // MARK: - Consumer CPU

    /// Consumer CPU time per million events, each tracer in one run of 5 × the usual events on
    /// one thread: RseqTrace draining the finished buffer and writing CTF; LTTng-UST's
    /// lttng-consumerd during the run, less what a 1-event session costs it (set-up dominates
    /// shorter runs).
    mutating func consumerCensus() -> ConsumerCensus {
        var census = ConsumerCensus()
        let events = settings.events * 5
        if configurations.contains(.rseqtraceDiscard) {
            var samples: [Sample] = []
            for run in 1...ConsumerCensus.runs {
                progress("consumer CPU: RseqTrace, \(events) events drained to CTF (\(run)/\(ConsumerCensus.runs))")
                traces += 1
                let trace = workDirectory + "/rseqtrace-consumer-\(traces)"
                let output = ChildProcess.runCaptured([executable, "worker", "--config", Configuration.rseqtraceDiscard.rawValue,
                                               "--events", String(events), "--warmup", String(settings.warmup),
                                               "--trace-output", trace])
                FileSystem.removeTree(trace)
                removeLeftoverBuffer(of: output)
                if let sample = output.lastLine(startingWith: "result ").flatMap(Sample.init(resultLine:)) { samples.append(sample) }
            }
            census.rseqtrace = ConsumerCensus.median(samples)
        }
        if let lttng, configurations.contains(.lttngEnabled) {
            var samples: [Sample] = []
            for run in 1...ConsumerCensus.runs {
                progress("consumer CPU: LTTng-UST, \(events) events (\(run)/\(ConsumerCensus.runs))")
                if let sample = try? lttng.runEnabled(Cell(configuration: .lttngEnabled, workload: .event, threads: 1),
                                                      events: events, warmup: settings.warmup, count: false) {
                    samples.append(sample)
                }
            }
            census.lttng = ConsumerCensus.median(samples)
        }
        return census
    }

    // MARK: - Sustained rate

    /// The highest rate (one producer thread, the consumer on another CPU draining concurrently
    /// and writing CTF to `workDirectory`) at which nothing was lost: unthrottled first, then
    /// rates around what the consumer managed, stepping down after a loss and up after a success.
    mutating func sustainedSearch() -> SustainedResult? {
        guard configurations.contains(.rseqtraceDiscard) else { return nil }
        var result = SustainedResult()
        let trials = settings.quick ? 3 : 6
        let duration: UInt64 = settings.quick ? 700 : 2000
        var rate = 0.0
        var lowestLossy = Double.infinity
        var highestLossless = 0.0
        for trial in 0..<trials {
            traces += 1
            let trace = workDirectory + "/rseqtrace-sustained-\(traces)"
            progress("sustained rate: trial \(trial + 1)/\(trials) at " + (rate == 0 ? "full speed" : "\(format(rate / 1e6, 2)) M events/s"))
            let output = ChildProcess.runCaptured([executable, "sustained", "--rate", String(Int(rate)),
                                           "--duration-ms", String(duration), "--output", trace])
            FileSystem.removeTree(trace)
            removeLeftoverBuffer(of: output)
            guard output.exitedCleanly, let line = output.lastLine(startingWith: "result ") else {
                let detail = output.stderr.split(separator: "\n").suffix(2).joined(separator: " | ")
                failures.append("sustained: \(detail)")
                return result
            }
            let fields = resultFields(line)
            guard let emitted = fields["emitted"].flatMap(UInt64.init), let lost = fields["lost"].flatMap(UInt64.init),
                  let wall = fields["wall_ns"].flatMap(UInt64.init), let cpu = fields["consumer_cpu_ns"].flatMap(UInt64.init),
                  let recorded = fields["recorded"].flatMap(UInt64.init), emitted > 0 else {
                failures.append("sustained: unreadable result line: \(line)")
                return result
            }
            let trialResult = SustainedResult.Trial(
                targetRate: rate, achievedRate: Double(emitted) / Double(wall) * 1e9, emitted: emitted, lost: lost,
                consumerNanosecondsPerMillion: recorded == 0 ? 0 : Double(cpu) / Double(recorded) * 1e6,
                bytesPerEvent: fields["stream_bytes"].flatMap(Double.init).map { $0 / Double(max(recorded, 1)) })
            result.trials.append(trialResult)
            // Bisection between the best lossless rate and the lowest lossy one.
            if lost == 0 {
                if trialResult.achievedRate > (result.best?.achievedRate ?? 0) { result.best = trialResult }
                if rate == 0 { break }  // lossless at full speed: the producer is the limit
                highestLossless = max(highestLossless, rate)
            } else {
                lowestLossy = min(lowestLossy, rate == 0 ? trialResult.achievedRate : rate)
            }
            if highestLossless > 0 && lowestLossy.isFinite {
                rate = (highestLossless + lowestLossy) / 2
            } else if rate == 0 {
                rate = Double(recorded) / Double(wall) * 1e9 * 0.9  // a little under what the consumer kept up with
            } else {
                rate *= 0.7
            }
        }
        return result
    }

    /// A worker removes its buffer's name from /dev/shm right after creating it; one that died
    /// before could leave it behind.
    private func removeLeftoverBuffer(of output: ChildProcess.Outcome) {
        guard output.pid > 0 else { return }
        // SAFETY: unlink reads the NUL-terminated path Swift passes for the duration of the call.
        _ = unsafe unlink("/dev/shm/rseqtrace-bench-\(output.pid)")
    }

    private func progress(_ message: String) {
        printError("bench: \(message)")
    }
}

/// The consumer-CPU runs: each tracer's run of median consumer CPU per event out of `runs`
/// (writing to disk here is sometimes several times slower for a whole process, in a third of the
/// runs on the 2-vCPU VM: one run alone can be that one).
struct ConsumerCensus {
    static let runs = 3
    var rseqtrace: Sample?
    var lttng: Sample?

    /// The sample of median consumer CPU per event (nil when none has that figure).
    static func median(_ samples: [Sample]) -> Sample? {
        let measured = samples.filter { $0.consumerNanosecondsPerMillion != nil }
            .sorted { $0.consumerNanosecondsPerMillion! < $1.consumerNanosecondsPerMillion! }
        return measured.isEmpty ? nil : measured[measured.count / 2]
    }
}

/// rseq aborts per configuration.
struct AbortCensus {
    struct Entry {
        var cell: Cell
        var aborts: UInt64
        var events: UInt64
        var perMillion: Double { Double(aborts) / Double(events) * 1e6 }
    }
    var entries: [Entry] = []
    var unavailable: String?
}

/// The sustained-rate search.
struct SustainedResult {
    struct Trial {
        var targetRate: Double
        var achievedRate: Double
        var emitted: UInt64
        var lost: UInt64
        var consumerNanosecondsPerMillion: Double
        var bytesPerEvent: Double?
    }
    var trials: [Trial] = []
    var best: Trial?
}
