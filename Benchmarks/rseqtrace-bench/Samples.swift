/// The `key=value` pairs of a `result ...` line (every worker prints one).
func resultFields(_ line: String) -> [String: String] {
    var fields: [String: String] = [:]
    for part in line.split(separator: " ").dropFirst() {
        guard let equals = part.firstIndex(of: "=") else { continue }
        fields[String(part[..<equals])] = String(part[part.index(after: equals)...])
    }
    return fields
}

/// One table row: a configuration running one workload on some threads.
struct Cell: Hashable, Sendable {
    var configuration: Configuration
    var workload: Workload
    var threads: Int
}

/// The result of one measured run of a cell.
struct Sample {
    /// Mean over the threads of (timed loop duration / events).
    var nanosecondsPerEvent: Double
    /// All threads' timed events divided by the time from the first start to the last end.
    var eventsPerSecond: Double
    var timedEvents: UInt64
    var allocations: UInt64
    /// Events the run tried to store (warm-up included), what was stored and what was lost.
    var emitted: UInt64?
    var recorded: UInt64?
    var lost: UInt64?
    /// Trace stream bytes on disk and the events in them (when this run wrote a trace).
    var streamBytes: UInt64?
    var traceEvents: UInt64?
    /// CPU time the consumer spent on this run's events (LTTng: lttng-consumerd from the timed
    /// loop's start to the end of `lttng stop`; RseqTrace: draining the finished buffer and writing CTF).
    var consumerNanoseconds: UInt64?
    /// RseqTrace: CPU time of writing the same stream bytes to a file with plain `write`s (part of
    /// `consumerNanoseconds`'s cost that any consumer storing those bytes pays).
    var writeFloorNanoseconds: UInt64?

    /// Consumer CPU nanoseconds per million recorded events, when measured.
    var consumerNanosecondsPerMillion: Double? {
        guard let consumerNanoseconds, let recorded, recorded > 0 else { return nil }
        return Double(consumerNanoseconds) / Double(recorded) * 1e6
    }
    /// RseqTrace's producer mode in that process (rseq, rseq-self or fallback).
    var mode: String?

    /// Parses a `result key=value ...` line of `rseqtrace-bench worker` or `rseqtrace-bench-lttng`.
    init?(resultLine: String) {
        let fields = resultFields(resultLine)
        func number(_ key: String) -> UInt64? { fields[key].flatMap { UInt64($0) } }
        guard let events = number("events"), events > 0, let wall = number("wall_ns"), wall > 0,
              let threadTimes = fields["thread_ns"]?.split(separator: ",").compactMap({ UInt64($0) }),
              !threadTimes.isEmpty, let allocations = number("allocations") else { return nil }
        let meanThreadTime = Double(threadTimes.reduce(0, +)) / Double(threadTimes.count)
        nanosecondsPerEvent = meanThreadTime / Double(events)
        timedEvents = events * UInt64(threadTimes.count)
        eventsPerSecond = Double(timedEvents) / Double(wall) * 1e9
        self.allocations = allocations
        emitted = number("emitted")
        recorded = number("recorded")
        lost = number("lost")
        streamBytes = number("stream_bytes")
        traceEvents = number("trace_events")
        consumerNanoseconds = number("drain_cpu_ns")
        writeFloorNanoseconds = number("write_floor_ns")
        mode = fields["mode"]
    }
}

/// Median, minimum and maximum of some measurements.
struct Spread {
    var median: Double
    var minimum: Double
    var maximum: Double
    /// The values in increasing order.
    var sorted: [Double]

    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        sorted = values.sorted()
        let middle = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        minimum = sorted[0]
        maximum = sorted[sorted.count - 1]
    }

    /// (max - min) / median: how much the runs disagree.
    var relativeRange: Double { median > 0 ? (maximum - minimum) / median : 0 }

    /// The same without the single fastest and slowest run when there are at least 5: one run
    /// hit by a stray interrupt does not move the median, a machine busy for a good part of the
    /// benchmark does.
    var trimmedRelativeRange: Double {
        guard sorted.count >= 5, median > 0 else { return relativeRange }
        return (sorted[sorted.count - 2] - sorted[1]) / median
    }
}

/// Everything measured for one cell.
struct CellResult {
    var samples: [Sample] = []
    var failures: [String] = []

    var nanoseconds: Spread? { Spread(samples.map(\.nanosecondsPerEvent)) }
    var eventsPerSecond: Spread? { Spread(samples.map(\.eventsPerSecond)) }

    /// Allocations per timed event over every run.
    var allocationsPerEvent: Double? {
        let events = samples.reduce(0) { $0 + $1.timedEvents }
        return events == 0 ? nil : Double(samples.reduce(0) { $0 + $1.allocations }) / Double(events)
    }

    /// The largest loss of any run (nil when the configuration does not record).
    var worstLoss: UInt64? { samples.compactMap(\.lost).max() }

    /// Events lost over events emitted, all runs together.
    var lossFraction: Double? {
        let emitted = samples.compactMap(\.emitted).reduce(0, +)
        guard emitted > 0 else { return nil }
        return Double(samples.compactMap(\.lost).reduce(0, +)) / Double(emitted)
    }

    /// Stream bytes per event of the runs that wrote a trace.
    var bytesPerEvent: Double? {
        let written = samples.filter { $0.streamBytes != nil && ($0.traceEvents ?? $0.recorded ?? 0) > 0 }
        guard !written.isEmpty else { return nil }
        let bytes = written.reduce(0) { $0 + $1.streamBytes! }
        let events = written.reduce(0) { $0 + ($1.traceEvents ?? $1.recorded!) }
        return Double(bytes) / Double(events)
    }
}
