import ArgumentParser
import RseqTraceFormats
import RseqTraceSupport
import SystemPackage

/// `rseqtrace export DIR --format chrome --output FILE`.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert a CTF trace written by rseqtrace to another format.",
        discussion: """
            chrome: Chrome Trace Event Format JSON, opened by the Perfetto UI (ui.perfetto.dev, \
            "Open trace file") and chrome://tracing. The same tracks as perfetto: events are instants \
            on their thread's track (per CPU when the trace does not record threads), spans are \
            slices, discarded events are ranges named "discarded events" plus a counter per CPU.
            perfetto: Perfetto's native protobuf trace (TracePacket / TrackEvent, interned names), \
            smaller and faster to load than JSON: a track per thread grouped by process (per CPU when \
            the trace does not record threads), spans as slices, events as instants with their fields \
            as arguments, a counter of discarded events per CPU.
            A directory holding one trace per process (as attach writes) is exported as one trace in \
            either format: each traced process is a process of its own (its pid, named by its \
            program); a trace of it that cannot be read is left out (from where it is damaged on), \
            with a warning on stderr.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case chrome
        case perfetto
    }

    @Argument(help: "The trace directory, or a directory holding one trace per process (attach -o DIR).")
    var directory: String

    @Option(help: "Output format: chrome (the default) or perfetto.")
    var format: Format = .chrome

    @Option(name: [.customShort("o"), .long], help: "File to write (replaced if it exists); - writes to standard output.")
    var output: String

    func run() throws {
        let set = try TraceText.open(directory)
        do {
            let report = { (problem: CTFTraceSet.Problem) in printError("warning: \(problem)") }
            if format == .perfetto {
                let exporter = PerfettoTraceExporter()
                let summary = output == "-" ? try exporter.export(set, to: .standardOutput, named: "standard output", problems: report)
                                            : try exporter.export(set, to: output, problems: report)
                let message = "exported \(summary.instants) events, \(summary.slices) spans (\(summary.unfinishedSlices) unfinished) and \(summary.discardedRanges) discarded-event ranges on \(summary.threadTracks) thread tracks to \(output == "-" ? "standard output" : output) (\(summary.bytes) bytes, \(summary.packets) packets, Perfetto protobuf)"
                if output == "-" { printError(message) } else { print(message) }
                return
            }
            let exporter = ChromeTraceExporter()
            let summary: ChromeTraceExporter.Summary
            if output == "-" {
                summary = try exporter.export(set, to: .standardOutput, named: "standard output", problems: report)
            } else {
                summary = try exporter.export(set, to: output, problems: report)
            }
            let processes = set.isSet ? " of \(summary.processes) processes" : ""
            let spans = summary.spans > 0 ? ", \(summary.spans) spans (\(summary.unfinishedSpans) unfinished)" : ""
            let message = "exported \(summary.events) events\(processes)\(spans) and \(summary.discardedRanges) discarded-event ranges to \(output == "-" ? "standard output" : output) (\(summary.bytes) bytes, Chrome trace JSON)"
            // With the JSON on standard output, the report goes to standard error.
            if output == "-" { printError(message) } else { print(message) }
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
