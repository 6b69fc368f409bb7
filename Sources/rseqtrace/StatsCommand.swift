import ArgumentParser
import RseqTraceFormats
import RseqTraceSupport

/// `rseqtrace stats DIR`: event counts per name and per CPU, losses, time span and rate.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Summarize a CTF trace written by rseqtrace: events per name and per CPU, losses, span, rate.",
        discussion: """
            Reads every event (validating the whole trace). The last line is machine-readable:
              stats: events=<n> discarded=<n> streams=<n> duration_ns=<n>
            where duration_ns is the time from the first to the last event.
            """)

    @Argument(help: "The trace directory (holding `metadata` and the `channel0_<n>` stream files).")
    var directory: String

    func run() throws {
        let reader = try TraceText.open(directory)
        var perName: [String: UInt64] = [:]
        var perCPU: [UInt32: (events: UInt64, discarded: UInt64)] = [:]
        var events: UInt64 = 0
        var discarded: UInt64 = 0
        var first: CTFEvent?
        var last: CTFEvent?
        do {
            var records = reader.records()
            while let record = try records.next() {
                switch record {
                case .event(let event):
                    events += 1
                    perName[event.name, default: 0] += 1
                    perCPU[event.cpuID, default: (0, 0)].events += 1
                    if first == nil { first = event }
                    last = event
                case .discarded(let loss):
                    discarded &+= loss.count
                    perCPU[loss.cpuID, default: (0, 0)].discarded &+= loss.count
                }
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
        let duration = first.flatMap { f in last.map { $0.timestamp - f.timestamp } } ?? 0
        print("trace: \(directory): \(reader.streamNames.count) streams, \(reader.metadata.events.count) event types declared")
        if let hostname = reader.metadata.environmentValue("hostname"), let name = reader.metadata.environmentValue("trace_name") {
            print("recorded: \(name) on \(hostname)")
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
        print("")
        if let first, let last {
            print("span: [\(TraceText.timeOfDay(first.realtime))] to [\(TraceText.timeOfDay(last.realtime))] UTC, \(TraceText.seconds(duration)) s")
            let rate = duration > 0 ? Double(events) / (Double(duration) / 1e9) : 0
            print("rate: \(duration > 0 ? format(rate) + " events/s" : "n/a (a single instant)")")
        } else {
            print("span: no events")
        }
        print("stats: events=\(events) discarded=\(discarded) streams=\(reader.streamNames.count) duration_ns=\(duration)")
    }
}
