import ArgumentParser
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

/// `rseqtrace stats DIR`: event counts per name and per CPU, losses, time span and rate.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Summarize a CTF trace written by rseqtrace: events per name and per CPU, losses, span, rate.",
        discussion: """
            Reads every event (validating the whole trace); --event, --filter, --cpu, --pid, --tid, --from \
            and --to count only the records they select. A directory holding one trace per process \
            (as attach writes) is read as one trace, with a table of the selected events and \
            discarded events of each process (one row per trace); a trace of it that cannot be read \
            is left out (from where it is damaged on), with a warning on stderr. --field NAME adds the distribution of a numeric field \
            over the selected events that have it, with a machine-readable line:
              field: name=<name> count=<n> min=<x> p50=<x> p90=<x> p99=<x> max=<x> mean=<x>
            (percentiles by nearest rank). Per-CPU counters (metrics:counter samples) are listed \
            with the value of their last sample. --spans adds the spans of the trace (rseqtrace:span_begin / \
            span_end pairs): per-name count and duration percentiles, the longest spans, begins without \
            an end, with a machine-readable line:
              spans: spans=<n> names=<n> unmatched_begins=<n> orphan_ends=<n>
            The last line is machine-readable:
              stats: events=<n> discarded=<n> streams=<n> duration_ns=<n>
            where duration_ns is the time from the first to the last event counted; for a directory \
            of traces, followed by processes=<n> unreadable=<n>: the distinct processes of the \
            traces read, and the traces left out or not read to their end.
            """)

    @Argument(help: """
        The trace directory (holding `metadata` and the `channel0_<n>` stream files), a directory \
        holding one trace per process (attach -o DIR), or a directory holding one trace. Default: the newest rseqtrace-record-* directory in the current directory.
        """)
    var directory: String?

    @OptionGroup var selection: EventSelection

    @Option(name: .customLong("field"), help: ArgumentHelp("The distribution of this numeric field (e.g. latency_ns). Repeatable.",
                                                          valueName: "NAME"))
    var fields: [String] = []

    @Flag(name: .customLong("spans"), help: "Durations of the spans (per-name p50, p99, max; the longest spans; unmatched begins).")
    var spans = false

    func run() throws {
        let set = try TraceText.open(TraceText.directory(directory))
        for warning in selection.missingWarnings(set) { printError(warning) }
        var matcher = try EventSelection.Matcher(selection)
        var perName: [String: UInt64] = [:]
        var perCPU: [UInt32: (events: UInt64, discarded: UInt64)] = [:]
        var perThread: [TraceTimeline.ThreadKey: UInt64] = [:]
        var namedByEvent: [TraceTimeline.ThreadKey: String] = [:]
        var perMember = Array(repeating: (events: UInt64(0), discarded: UInt64(0)), count: set.members.count)
        var events: UInt64 = 0
        var discarded: UInt64 = 0
        var first: CTFEvent?
        var last: CTFEvent?
        var distributions = fields.map { FieldDistribution(name: $0) }
        var spanTable = SpanTable()
        // Per-CPU counters: the last `metrics:counter` sample of each (process and) name.
        var counters: [String: (value: Int64, samples: Int)] = [:]
        let pids = set.members.map(\.process.pid)
        // Span ids are unique within a process: a set's spans pair up within their process.
        let spanProcesses = set.members.map { set.isSet ? $0.process.label : nil }
        var records = set.records()
        var reported = 0
        do {
            while let element = try records.next() {
                reported = TraceText.reportProblems(records, reported: reported)
                let record = element.record
                guard matcher.matches(record, pid: pids[element.member]) else { continue }
                switch record {
                case .event(let event):
                    events += 1
                    perName[event.name, default: 0] += 1
                    perCPU[event.cpuID, default: (0, 0)].events += 1
                    perMember[element.member].events += 1
                    if let thread = TraceTimeline.thread(of: event) {
                        let key = TraceTimeline.ThreadKey(pid: thread.pid ?? pids[element.member] ?? 0, tid: thread.tid)
                        perThread[key, default: 0] += 1
                        if event.name == TraceTimeline.threadNameEventName, case .string(let name)? = event[field: "name"] {
                            namedByEvent[key] = name
                        }
                    }
                    if first == nil { first = event }
                    last = event
                    for index in distributions.indices { distributions[index].add(event) }
                    if spans { spanTable.add(event, process: spanProcesses[element.member]) }
                    if event.name == SharedTraceBuffer.counterSampleSchema.name,
                       case .signed(let value)? = event[field: "value"], case .string(let name)? = event[field: "name"] {
                        let key = (spanProcesses[element.member].map { $0 + " " } ?? "") + name
                        counters[key] = (value, (counters[key]?.samples ?? 0) + 1)
                    }
                case .discarded(let loss):
                    discarded &+= loss.count
                    perCPU[loss.cpuID, default: (0, 0)].discarded &+= loss.count
                    perMember[element.member].discarded &+= loss.count
                }
            }
            _ = TraceText.reportProblems(records, reported: reported)
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
        // A set's traces each have their own clock offset: their events compare in real time.
        let duration = first.flatMap { f in
            last.map { set.isSet ? UInt64(max(0, $0.realtime &- f.realtime)) : $0.timestamp - f.timestamp }
        } ?? 0
        let declared = Set(set.members.flatMap { $0.reader.metadata.events.values.map(\.name) }).count
        if set.isSet {
            print("trace: \(set.directory): \(set.members.count) traces of \(set.processes.count) processes, \(set.streamCount) streams, \(declared) event types declared")
        } else if let reader = set.members.first?.reader {
            print("trace: \(reader.directory): \(reader.streamNames.count) streams, \(reader.metadata.events.count) event types declared")
            if let program = reader.metadata.environmentValue("procname") {
                let pid = reader.metadata.environmentValue("vpid").map { ", pid \($0)" } ?? ""
                print("program: \(program)\(pid)")
            }
        }
        let recorded = Set(set.members.compactMap { member -> String? in
            let metadata = member.reader.metadata
            guard let hostname = metadata.environmentValue("hostname"), let name = metadata.environmentValue("trace_name") else { return nil }
            return "\(name) on \(hostname)"
        })
        if recorded.count == 1, let only = recorded.first { print("recorded: \(only)") }
        if set.isSet {
            print("")
            print(pad("pid", 10) + pad("program", 28) + pad("events", 14, right: true) + pad("discarded", 14, right: true) + "  trace")
            let damaged = Set(records.problems.map(\.directory))
            for (index, member) in set.members.enumerated() {
                let counts = perMember[index]
                let name = String(member.directory.split(separator: "/").last ?? "")
                print(pad(member.process.pid.map { "\($0)" } ?? "?", 10) + pad(member.process.program, 28)
                      + pad("\(counts.events)", 14, right: true) + pad("\(counts.discarded)", 14, right: true)
                      + "  \(name)\(damaged.contains(member.directory) ? " (damaged: read in part)" : "")")
            }
            for problem in set.unreadable {
                print(pad("?", 10) + pad("(unreadable)", 28) + pad("-", 14, right: true) + pad("-", 14, right: true)
                      + "  \(problem.directory.split(separator: "/").last ?? "")")
            }
        }
        print("")
        print(pad("event", 40) + pad("count", 14, right: true))
        for name in perName.keys.sorted() {
            print(pad(name, 40) + pad("\(perName[name] ?? 0)", 14, right: true))
        }
        print("")
        print(pad("cpu", 10) + pad("events", 14, right: true) + pad("discarded", 14, right: true))
        for cpu in perCPU.keys.sorted() {
            let entry = perCPU[cpu] ?? (0, 0)
            print(pad("\(cpu)", 10) + pad("\(entry.events)", 14, right: true) + pad("\(entry.discarded)", 14, right: true))
        }
        print(pad("total", 10) + pad("\(events)", 14, right: true) + pad("\(discarded)", 14, right: true))
        if !perThread.isEmpty {
            // Threads with the most events first (at most 50 rows; the last line counts them all).
            print("")
            var names: [Int64: String] = [:]
            for member in set.members { names.merge(member.reader.metadata.threadNames) { first, _ in first } }
            print(pad("pid", 10) + pad("tid", 10) + pad("events", 14, right: true) + "  name")
            let threads = perThread.sorted { ($1.value, $0.key.pid, $0.key.tid) < ($0.value, $1.key.pid, $1.key.tid) }
            for (key, count) in threads.prefix(50) {
                print(pad("\(key.pid)", 10) + pad("\(key.tid)", 10) + pad("\(count)", 14, right: true) + "  \(namedByEvent[key] ?? names[key.tid] ?? "?")")
            }
            if threads.count > 50 { print("(\(threads.count - 50) more threads)") }
            print("threads: count=\(threads.count)")
        }
        if !counters.isEmpty {
            // Each counter's value at its last sample (the final value of a complete recording).
            print("")
            print(pad("counter", 40) + pad("value", 20, right: true) + pad("samples", 10, right: true))
            for (name, entry) in counters.sorted(by: { $0.key < $1.key }) {
                print(pad(name, 40) + pad("\(entry.value)", 20, right: true) + pad("\(entry.samples)", 10, right: true))
            }
            print("counters: count=\(counters.count)")
        }
        print("")
        if let first, let last {
            print("span: \(TraceText.isoDate(first.realtime)) [\(TraceText.timeOfDay(first.realtime))] to [\(TraceText.timeOfDay(last.realtime))] UTC, \(TraceText.seconds(duration)) s")
            let rate = duration > 0 ? Double(events) / (Double(duration) / 1e9) : 0
            print("rate: \(duration > 0 ? format(rate) + " events/s" : "n/a (a single instant)")")
        } else {
            print("span: no events")
        }
        for distribution in distributions {
            print("")
            for line in distribution.report() { print(line) }
        }
        if spans {
            print("")
            for line in spanTable.report(timeOfDay: TraceText.timeOfDay) { print(line) }
        }
        let unreadable = set.unreadable.count + Set(records.problems.map(\.directory)).count
        let processes = set.isSet ? " processes=\(set.processes.count) unreadable=\(unreadable)" : ""
        print("stats: events=\(events) discarded=\(discarded) streams=\(set.streamCount) duration_ns=\(duration)\(processes)")
    }
}

/// The values of one numeric field over the events that have it.
struct FieldDistribution {
    let name: String
    /// Integer values exactly (while every value is an integer), and all values as Double.
    private var integers: [Int64] = []
    private var unsignedBeyondInt64 = false
    private var doubles: [Double] = []
    private var eventNames = Set<String>()
    private var nonNumeric = 0

    init(name: String) { self.name = name }

    mutating func add(_ event: CTFEvent) {
        guard let value = event[field: name] else { return }
        switch value {
        case .unsigned(let v):
            if let exact = Int64(exactly: v) { integers.append(exact) } else { unsignedBeyondInt64 = true }
            doubles.append(Double(v))
        case .signed(let v):
            integers.append(v)
            doubles.append(Double(v))
        case .bool(let v):
            integers.append(v ? 1 : 0)
            doubles.append(v ? 1 : 0)
        case .float32(let v): doubles.append(Double(v)); unsignedBeyondInt64 = true
        case .float64(let v): doubles.append(v); unsignedBeyondInt64 = true
        case .enumeration(_, let v, _):
            integers.append(v)
            doubles.append(Double(v))
        case .bytes, .string:
            nonNumeric += 1
            return
        }
        eventNames.insert(event.name)
    }

    /// The human-readable lines and the machine-readable `field:` line.
    func report() -> [String] {
        guard !doubles.isEmpty else {
            let why = nonNumeric > 0 ? "its \(nonNumeric) values are not numbers" : "no selected event has it"
            return ["field \(name): no numeric values (\(why))", "field: name=\(name) count=0"]
        }
        let count = doubles.count
        let exact = !unsignedBeyondInt64 && integers.count == count
        let sortedIntegers = exact ? integers.sorted() : []
        let sortedDoubles = exact ? [] : doubles.sorted()
        /// The nearest-rank percentile `p` (0 < p <= 100) as text.
        func percentile(_ p: Int) -> String {
            let rank = max(1, (p * count + 99) / 100)
            return exact ? "\(sortedIntegers[rank - 1])" : "\(sortedDoubles[rank - 1])"
        }
        let minimum = exact ? "\(sortedIntegers[0])" : "\(sortedDoubles[0])"
        let maximum = exact ? "\(sortedIntegers[count - 1])" : "\(sortedDoubles[count - 1])"
        let mean = format(doubles.reduce(0, +) / Double(count))
        let values: [(String, String)] = [("min", minimum), ("p50", percentile(50)), ("p90", percentile(90)),
                                          ("p99", percentile(99)), ("max", maximum), ("mean", mean)]
        return [
            "field \(name): \(count) values in \(eventNames.sorted().joined(separator: ", "))",
            "  " + values.map { "\($0.0) \($0.1)" }.joined(separator: "   "),
            "field: name=\(name) count=\(count) " + values.map { "\($0.0)=\($0.1)" }.joined(separator: " "),
        ]
    }
}
