import ArgumentParser
import RseqTraceFormats
import RseqTraceSupport

/// `rseqtrace export DIR --format chrome --output FILE`.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert a CTF trace written by rseqtrace to another format.",
        discussion: """
            chrome: Chrome Trace Event Format JSON, opened by the Perfetto UI (ui.perfetto.dev, \
            "Open trace file") and chrome://tracing. Events are instants on one track per CPU, \
            discarded events are ranges named "discarded events".
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case chrome
    }

    @Argument(help: "The trace directory.")
    var directory: String

    @Option(help: "Output format: chrome.")
    var format: Format

    @Option(help: "File to write (replaced if it exists).")
    var output: String

    func run() throws {
        let reader = try TraceText.open(directory)
        do {
            let summary = try ChromeTraceExporter().export(reader, to: output)
            print("exported \(summary.events) events and \(summary.discardedRanges) discarded-event ranges to \(output) (\(summary.bytes) bytes, Chrome trace JSON)")
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
