/// The printed outcome: tables, the extra figures, the noise check, the goals, the summary line.
struct Report {
    let settings: Settings
    let results: [Cell: CellResult]
    let census: AbortCensus?
    let consumers: ConsumerCensus
    let sustained: SustainedResult?
    /// Fraction of CPU time the hypervisor stole during the benchmark (/proc/stat), if known.
    let steal: Double?
    /// Why LTTng rows are missing, or nil when they ran.
    let lttngUnavailable: String?
    let configurations: [Configuration]

    // MARK: - Lookups

    func result(_ configuration: Configuration, _ workload: Workload = .event, threads: Int = 1) -> CellResult? {
        results[Cell(configuration: configuration, workload: workload, threads: threads)]
    }

    func median(_ configuration: Configuration, _ workload: Workload = .event, threads: Int = 1) -> Double? {
        result(configuration, workload, threads: threads)?.nanoseconds?.median
    }

    // MARK: - Noise

    struct Noise {
        var rdtscRange: Double?
        var emptyRange: Double?
        var rdtscAllCPUsRange: Double?
        /// Per-thread ALU time on all CPUs over one thread's: 1.0 when the CPUs are independent.
        var aluSlowdown: Double?
        var steal: Double?
        var singleThreadNoisy = false
        var multiThreadNoisy = false
        var reasons: [String] = []
    }

    var noise: Noise {
        var noise = Noise()
        let threshold = settings.noiseThreshold
        noise.rdtscRange = result(.rdtsc)?.nanoseconds?.trimmedRelativeRange
        noise.emptyRange = result(.empty)?.nanoseconds?.trimmedRelativeRange
        noise.steal = steal
        if let range = noise.rdtscRange, range > threshold {
            noise.singleThreadNoisy = true
            noise.reasons.append("the rdtsc loop's runs differ by \(percent(range)) (limit \(percent(threshold)))")
        }
        if let range = noise.emptyRange, range > threshold {
            noise.singleThreadNoisy = true
            noise.reasons.append("the empty loop's runs differ by \(percent(range)) (limit \(percent(threshold)))")
        }
        if noise.rdtscRange == nil && noise.emptyRange == nil {
            noise.singleThreadNoisy = true
            noise.reasons.append("the rdtsc and empty loops did not run, so noise cannot be judged")
        }
        if let steal, steal > 0.02 {
            noise.singleThreadNoisy = true
            noise.reasons.append("the hypervisor stole \(percent(steal)) of the CPU time")
        }
        noise.multiThreadNoisy = noise.singleThreadNoisy
        if settings.allCPUs > 1 {
            noise.rdtscAllCPUsRange = result(.rdtsc, threads: settings.allCPUs)?.nanoseconds?.trimmedRelativeRange
            if let one = median(.alu), let all = median(.alu, threads: settings.allCPUs), one > 0 {
                noise.aluSlowdown = all / one
            }
            if let range = noise.rdtscAllCPUsRange, range > threshold {
                noise.multiThreadNoisy = true
                noise.reasons.append("the rdtsc loop's runs on \(settings.allCPUs) CPUs differ by \(percent(range))")
            }
            if let slowdown = noise.aluSlowdown, slowdown > settings.scalingThreshold {
                noise.multiThreadNoisy = true
                noise.reasons.append("the ALU probe runs \(format(slowdown, 2))× slower per thread on \(settings.allCPUs) CPUs "
                    + "than on 1 (limit \(format(settings.scalingThreshold, 2))×): the CPUs are not independent")
            } else if noise.aluSlowdown == nil {
                noise.multiThreadNoisy = true
                noise.reasons.append("the ALU probe did not run, so CPU independence cannot be judged")
            }
        }
        return noise
    }

    // MARK: - Printing

    func print() {
        let noise = self.noise
        let modes = Set(results.values.flatMap { $0.samples.compactMap(\.mode) }).sorted()
        Swift.print("")
        Swift.print("machine: \(machineDescription())")
        Swift.print("RseqTrace benchmark: \(settings.events) timed events per thread, \(settings.runs) runs per row after a discarded "
            + "warm-up round, configurations interleaved; \(settings.allCPUs) CPUs; RseqTrace producer mode: "
            + (modes.isEmpty ? "n/a" : modes.joined(separator: ", ")))
        Swift.print("ns/event = CLOCK_MONOTONIC around each pinned thread's loop / events (mean over threads); "
            + "M ev/s = all threads' events / (last end - first start).")
        Swift.print("Timestamps: RseqTrace and the baseline rings read rdtsc (like the rdtsc row); LTTng-UST reads its default "
            + "clock, clock_gettime(CLOCK_MONOTONIC) (the clock_gettime row).")
        Swift.print("RseqTrace discard rows use a buffer that holds the whole run (drained and written as CTF after it); "
            + "LTTng-UST runs a per-UID discard session (4 MiB sub-buffers, as many as hold the whole run) whose "
            + "consumer daemon writes to disk during the run; overwrite rows are a 1 MiB/CPU flight recorder (\"lost\" = overwritten, by design).")
        if let lttngUnavailable { Swift.print("LTTng-UST rows: not run (\(lttngUnavailable)).") }
        let ratiosMark = noise.singleThreadNoisy ? "?" : ""
        for workload in Workload.allCases {
            for threads in settings.threadCounts {
                printTable(workload: workload, threads: threads,
                           mark: threads == 1 ? ratiosMark : (noise.multiThreadNoisy ? "?" : ""))
            }
        }
        if noise.singleThreadNoisy || noise.multiThreadNoisy {
            Swift.print("(? after a ratio: measured while the machine was noisy, see below)")
        }
        printExtras(noise)
        printNoise(noise)
        printGoals(noise)
        printSummary(noise)
    }

    private func printTable(workload: Workload, threads: Int, mark: String) {
        let rows = configurations.compactMap { configuration -> (Configuration, CellResult)? in
            guard let result = result(configuration, workload, threads: threads) else { return nil }
            return (configuration, result)
        }
        guard !rows.isEmpty else { return }
        let payload = workload == .event ? "2 × u64 + u32, 20-byte payload" : "64-byte string"
        Swift.print("")
        Swift.print("\(workload.rawValue) (\(payload)), \(threads) thread\(threads == 1 ? "" : "s")"
            + (threads > 1 ? ", one per CPU, pinned" : ", pinned"))
        let header = [pad("configuration", 28, left: true), pad("median", 8), pad("min", 8), pad("max", 8),
                      pad("spread", 7), pad("×LTTng", 8), pad("×rdtsc", 8), pad("M ev/s", 8), pad("lost", 9),
                      pad("B/ev disk", 9), pad("alloc/ev", 8)]
        Swift.print(header.joined(separator: " "))
        let lttng = median(.lttngEnabled, workload, threads: threads)
        let rdtsc = median(.rdtsc, .event, threads: threads)
        for (configuration, result) in rows {
            var cells = [pad(configuration.label, 28, left: true)]
            if let ns = result.nanoseconds {
                cells += [pad(format(ns.median, 2), 8), pad(format(ns.minimum, 2), 8), pad(format(ns.maximum, 2), 8),
                          pad(percent(ns.relativeRange), 7)]
                cells.append(pad(lttng.map { format(ns.median / $0, 3) + mark } ?? "-", 8))
                cells.append(pad(rdtsc.map { format(ns.median / $0, 2) + mark } ?? "-", 8))
                cells.append(pad(result.eventsPerSecond.map { format($0.median / 1e6, 1) } ?? "-", 8))
            } else {
                cells.append("FAILED: " + (result.failures.first ?? "no runs"))
                Swift.print(cells.joined(separator: " "))
                continue
            }
            cells.append(pad(configuration.records ? (result.worstLoss.map(String.init) ?? "?") : "-", 9))
            cells.append(pad(result.bytesPerEvent.map { format($0, 2) } ?? "-", 9))
            cells.append(pad(result.allocationsPerEvent.map { $0 == 0 ? "0" : format($0, 4) } ?? "-", 8))
            Swift.print(cells.joined(separator: " "))
            if !result.failures.isEmpty {
                Swift.print("    (\(result.failures.count) run(s) failed: \(result.failures[0]))")
            }
        }
    }

    private func printExtras(_ noise: Noise) {
        Swift.print("")
        // Allocations.
        let traced = results.filter { $0.key.configuration.rawValue.hasPrefix("rseqtrace") }
        let allocations = traced.values.reduce(0) { $0 + $1.samples.reduce(0) { $0 + $1.allocations } }
        let events = traced.values.reduce(0) { $0 + $1.samples.reduce(0) { $0 + $1.timedEvents } }
        Swift.print("allocations: \(allocations) malloc-family calls by the emitting threads during \(events) timed RseqTrace "
            + "events (every row and run; counted per thread by a malloc interposer linked into the workers)")
        // rseq aborts.
        if let census {
            if let unavailable = census.unavailable {
                Swift.print("rseq aborts: not measured: \(unavailable)")
            }
            for entry in census.entries {
                Swift.print("rseq aborts (\(entry.cell.configuration.rawValue), \(entry.cell.threads) thread"
                    + "\(entry.cell.threads == 1 ? "" : "s")): \(entry.aborts) in \(entry.events) events = "
                    + "\(format(entry.perMillion, 2)) per million (kernel tracepoint rseq:rseq_ip_fixup, perf stat, separate run)")
            }
        } else {
            Swift.print("rseq aborts: not measured (--perf none)")
        }
        // Consumer CPU.
        if let rseq = consumers.rseqtrace?.consumerNanosecondsPerMillion {
            Swift.print("consumer CPU, RseqTrace: \(format(rseq / 1e6, 1)) ms per million events "
                + "(draining a finished buffer of \(consumers.rseqtrace?.recorded ?? 0) events and writing CTF to disk, one thread; "
                + "the median of \(ConsumerCensus.runs) runs)")
        }
        if let floor = writeFloorNanoseconds {
            Swift.print("consumer CPU, writing the same bytes alone: \(format(floor, 2)) ns per event "
                + "(256 KiB write()s of the trace's stream bytes to a file beside it, through the page cache, "
                + "blocks reserved ahead as the trace's stream files do, after the trace's own pages were written back; "
                + "in the median run)")
        }
        if let lttng = consumers.lttng?.consumerNanosecondsPerMillion {
            Swift.print("consumer CPU, LTTng-UST: \(format(lttng / 1e6, 1)) ms per million events "
                + "(lttng-consumerd from the start of the timed loop of a run of \(consumers.lttng?.recorded ?? 0) events "
                + "to the end of `lttng stop`, /proc/<pid>/task/*/schedstat; it copies finished packets to disk without "
                + "decoding them; the median of \(ConsumerCensus.runs) runs)")
        }
        // Sustained.
        if let sustained {
            if let best = sustained.best {
                let bound = sustained.trials.first.map { $0.targetRate == 0 && $0.lost == 0 } ?? false
                Swift.print("sustained lossless rate: \(format(best.achievedRate / 1e6, 2)) M events/s"
                    + (bound ? " (the producer's full speed: the consumer kept up)" : "")
                    + ", consumer CPU \(format(best.consumerNanosecondsPerMillion / 1e6, 1)) ms per million events"
                    + (best.bytesPerEvent.map { ", \(format($0, 2)) B/event on disk" } ?? "")
                    + " (1 producer thread, a 4 MiB/CPU discard buffer, the consumer on another CPU draining concurrently "
                    + "and writing CTF to disk)" + (noise.multiThreadNoisy ? "; NOISY: the consumer competed for its CPU" : ""))
            } else {
                Swift.print("sustained lossless rate: no lossless trial")
            }
            let trials = sustained.trials.map { trial in
                (trial.targetRate == 0 ? "full speed" : format(trial.targetRate / 1e6, 2))
                    + " → \(format(trial.achievedRate / 1e6, 2)) M/s, lost \(trial.lost)"
            }
            Swift.print("  trials: " + trials.joined(separator: "; "))
        }
    }

    private func printNoise(_ noise: Noise) {
        var parts: [String] = []
        if let range = noise.rdtscRange { parts.append("rdtsc 1T \(percent(range))") }
        if let range = noise.emptyRange { parts.append("empty 1T \(percent(range))") }
        if let range = noise.rdtscAllCPUsRange { parts.append("rdtsc \(settings.allCPUs)T \(percent(range))") }
        if let slowdown = noise.aluSlowdown { parts.append("ALU \(settings.allCPUs)T/1T \(format(slowdown, 2))×") }
        if let steal = noise.steal { parts.append("steal \(percent(steal))") }
        Swift.print("")
        Swift.print("noise: spread of runs (without the fastest and slowest when ≥ 5 runs; limit \(percent(settings.noiseThreshold))): "
            + parts.joined(separator: ", ") + " → "
            + (noise.singleThreadNoisy ? "NOISY" : (noise.multiThreadNoisy ? "quiet for 1 thread, NOISY across CPUs" : "quiet")))
    }

    private func printGoals(_ noise: Noise) {
        Swift.print("")
        Swift.print("goals:")
        let enabled = median(.rseqtraceDiscard)
        let lttng = median(.lttngEnabled)
        let rdtsc = median(.rdtsc)
        let disabled = median(.rseqtraceDisabled)
        let write = median(.rseqtraceProducer)
        let consumer = consumerNanoseconds
        let lttngConsumer = lttngConsumerNanoseconds

        func line(_ passed: Bool?, noisy: Bool, _ text: String) {
            let verdict = passed == nil ? "SKIP " : (noisy ? "NOISY" : (passed! ? "PASS " : "FAIL "))
            Swift.print("\(verdict) \(text)")
        }
        if let enabled, let lttng {
            line(enabled <= 0.12 * lttng, noisy: noise.singleThreadNoisy,
                 "enabled event ≤ 0.12 × LTTng-UST: \(format(enabled / lttng, 3))× (\(format(enabled, 2)) vs \(format(lttng, 2)) ns, 1 thread)")
        } else {
            line(nil, noisy: false, "enabled event ≤ 0.12 × LTTng-UST: " + (lttngUnavailable.map { "LTTng-UST not run: \($0)" } ?? "no data"))
        }
        if let enabled, let rdtsc {
            line(enabled <= 1.1 * rdtsc, noisy: noise.singleThreadNoisy,
                 "emit ≤ 1.1 × bare rdtsc loop: \(format(enabled / rdtsc, 2))× (\(format(enabled, 2)) vs \(format(rdtsc, 2)) ns)")
        } else {
            line(nil, noisy: false, "emit ≤ 1.1 × bare rdtsc loop: no data")
        }
        if let write, let rdtsc {
            line(write <= 1.05 * rdtsc, noisy: noise.singleThreadNoisy,
                 "Producer.write ≤ 1.05 × bare rdtsc loop: \(format(write / rdtsc, 2))× (\(format(write, 2)) vs \(format(rdtsc, 2)) ns)")
        } else {
            line(nil, noisy: false, "Producer.write ≤ 1.05 × bare rdtsc loop: no data")
        }
        // The consumer figures come from separate runs; lttng-consumerd drains on another CPU while the producer
        // runs, so these verdicts follow the multi-CPU noise check (which includes the single-thread one).
        if let consumer, let lttngConsumer {
            line(consumer <= 0.5 * lttngConsumer, noisy: noise.multiThreadNoisy,
                 "consumer CPU per recorded event ≤ 0.5 × lttng-consumerd's: \(format(consumer / lttngConsumer, 2))× "
                 + "(\(format(consumer, 2)) vs \(format(lttngConsumer, 2)) ns"
                 + (writeFloorNanoseconds.map { "; writing the bytes alone costs \(format($0, 2)) ns" } ?? "") + ")")
        } else {
            line(nil, noisy: false, "consumer CPU per recorded event ≤ 0.5 × lttng-consumerd's: "
                + (lttngConsumer == nil ? (lttngUnavailable.map { "LTTng-UST not run: \($0)" } ?? "no LTTng data") : "no data"))
        }
        if let enabled, let consumer, let lttng, let lttngConsumer {
            let ours = enabled + consumer
            let theirs = lttng + lttngConsumer
            line(ours <= 0.25 * theirs, noisy: noise.multiThreadNoisy,
                 "producer + consumer per recorded event ≤ 0.25 × LTTng-UST's: \(format(ours / theirs, 3))× "
                 + "(\(format(enabled, 2)) + \(format(consumer, 2)) vs \(format(lttng, 2)) + \(format(lttngConsumer, 2)) ns, 1 thread)")
        } else {
            line(nil, noisy: false, "producer + consumer per recorded event ≤ 0.25 × LTTng-UST's: "
                + (lttng == nil || lttngConsumer == nil
                    ? (lttngUnavailable.map { "LTTng-UST not run: \($0)" } ?? "no LTTng data") : "no data"))
        }
        if let sustained {
            let rate = sustained.best?.achievedRate
            line(rate.map { $0 >= 40e6 } ?? false, noisy: noise.multiThreadNoisy,
                 "sustained lossless rate ≥ 40 M events/s, 1 producer thread: "
                 + (rate.map { "\(format($0 / 1e6, 2)) M events/s" } ?? "no lossless trial"))
        } else {
            line(nil, noisy: false, "sustained lossless rate ≥ 40 M events/s, 1 producer thread: not measured")
        }
        if let disabled {
            line(disabled <= 1.0, noisy: noise.singleThreadNoisy, "disabled event ≤ 1 ns: \(format(disabled, 3)) ns")
        } else {
            line(nil, noisy: false, "disabled event ≤ 1 ns: no data")
        }
        let all = settings.allCPUs
        if all == 2, let one = result(.rseqtraceDiscard)?.eventsPerSecond?.median,
           let two = result(.rseqtraceDiscard, threads: 2)?.eventsPerSecond?.median {
            line(two >= 1.8 * one, noisy: noise.multiThreadNoisy,
                 "2 threads on 2 CPUs ≥ 1.8 × one thread's throughput: \(format(two / one, 2))× "
                 + "(\(format(two / 1e6, 1)) vs \(format(one / 1e6, 1)) M events/s)")
        } else if all > 2, let one = result(.rseqtraceDiscard)?.eventsPerSecond?.median,
                  let many = result(.rseqtraceDiscard, threads: all)?.eventsPerSecond?.median {
            line(many >= 0.9 * Double(all) * one, noisy: noise.multiThreadNoisy,
                 "\(all) threads on \(all) CPUs ≥ \(format(0.9 * Double(all), 1)) × one thread's throughput: \(format(many / one, 2))×")
        } else {
            line(nil, noisy: false, "2 threads on 2 CPUs ≥ 1.8 × one thread's throughput: "
                + (all < 2 ? "only 1 CPU available" : "no data"))
        }
        let traced = results.filter { $0.key.configuration.rawValue.hasPrefix("rseqtrace") }
        let allocations = traced.values.reduce(0) { $0 + $1.samples.reduce(0) { $0 + $1.allocations } }
        let events = traced.values.reduce(0) { $0 + $1.samples.reduce(0) { $0 + $1.timedEvents } }
        if events > 0 {
            line(allocations == 0, noisy: false, "0 allocations per event: \(allocations) in \(events) RseqTrace events")
        } else {
            line(nil, noisy: false, "0 allocations per event: no data")
        }
        var comparisons: [String] = []
        var smaller = true
        var compared = false
        for workload in Workload.allCases {
            guard let ours = result(.rseqtraceDiscard, workload)?.bytesPerEvent,
                  let theirs = result(.lttngEnabled, workload)?.bytesPerEvent else { continue }
            compared = true
            smaller = smaller && ours < theirs
            comparisons.append("\(workload.rawValue) \(format(ours, 2)) vs \(format(theirs, 2))")
        }
        line(compared ? smaller : nil, noisy: false, "bytes per event on disk below LTTng-UST's: "
            + (compared ? comparisons.joined(separator: ", ") : "no data"))
    }

    private func printSummary(_ noise: Noise) {
        Swift.print("")
        if noise.singleThreadNoisy || noise.multiThreadNoisy {
            Swift.print("NOISY: " + noise.reasons.joined(separator: "; ")
                + ". The ratios are not reliable; rerun Tools/bench on a quiet machine.")
        }
        let enabled = median(.rseqtraceDiscard)
        let lttng = median(.lttngEnabled)
        let ratio = enabled.flatMap { x in lttng.map { x / $0 } }
        Swift.print("summary: rseqtrace_ns=\(summaryNumber(enabled, 2)) lttng_ns=\(summaryNumber(lttng, 2)) "
            + "ratio=\(summaryNumber(ratio, 3)) rdtsc_ns=\(summaryNumber(median(.rdtsc), 2)) "
            + "disabled_ns=\(summaryNumber(median(.rseqtraceDisabled), 3)) "
            + "write_ns=\(summaryNumber(median(.rseqtraceProducer), 2)) "
            + "consumer_ns=\(summaryNumber(consumerNanoseconds, 2)) "
            + "lttng_consumer_ns=\(summaryNumber(lttngConsumerNanoseconds, 2)) "
            + "sustained_meps=\(summaryNumber(sustained?.best.map { $0.achievedRate / 1e6 }, 2)) "
            + "bytes_per_event=\(summaryNumber(result(.rseqtraceDiscard)?.bytesPerEvent, 2)) "
            + "lttng_bytes_per_event=\(summaryNumber(result(.lttngEnabled)?.bytesPerEvent, 2))")
    }

    /// CPU per recorded event of writing RseqTrace's stream bytes alone (plain writes), in ns.
    private var writeFloorNanoseconds: Double? {
        guard let sample = consumers.rseqtrace, let floor = sample.writeFloorNanoseconds,
              let recorded = sample.recorded, recorded > 0 else { return nil }
        return Double(floor) / Double(recorded)
    }

    /// RseqTrace's consumer CPU per recorded event (draining a finished buffer and writing CTF), in ns.
    private var consumerNanoseconds: Double? {
        consumers.rseqtrace?.consumerNanosecondsPerMillion.map { $0 / 1e6 }
    }

    /// lttng-consumerd's CPU per recorded event, in ns.
    private var lttngConsumerNanoseconds: Double? {
        consumers.lttng?.consumerNanosecondsPerMillion.map { $0 / 1e6 }
    }

    /// CPU model, CPU count and kernel, from /proc.
    private func machineDescription() -> String {
        let model = FileSystem.read("/proc/cpuinfo", limit: 1 << 20)?.split(separator: "\n")
            .first(where: { $0.hasPrefix("model name") })?.split(separator: ":", maxSplits: 1).last
            .map { String($0.drop(while: { $0 == " " })) } ?? "unknown CPU"
        let kernel = FileSystem.read("/proc/sys/kernel/osrelease")?.split(separator: "\n").first.map(String.init) ?? "?"
        return "\(model), \(settings.allCPUs) CPUs usable, Linux \(kernel)"
    }

    private func summaryNumber(_ value: Double?, _ decimals: Int) -> String {
        value.map { format($0, decimals) } ?? "nan"
    }
}

// MARK: - Formatting (no Foundation)

/// `value` with `decimals` digits after the point.
func format(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value < 0 ? "-inf" : "inf") }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e15 else { return String(value) }
    let whole = UInt64(scaled)
    let integer = whole / UInt64(scale)
    var text = (value < 0 && whole != 0 ? "-" : "") + String(integer)
    if decimals > 0 {
        let fraction = String(whole % UInt64(scale))
        text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }
    return text
}

func percent(_ fraction: Double) -> String { format(fraction * 100, 1) + "%" }

/// `text` padded with spaces to `width` characters (right-aligned unless `left`).
func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let count = text.count
    guard count < width else { return text }
    let spaces = String(repeating: " ", count: width - count)
    return left ? text + spaces : spaces + text
}
