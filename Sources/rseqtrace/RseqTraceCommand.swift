import ArgumentParser

/// `rseqtrace`: the RseqTrace consumer tool.
@main
struct RseqTraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rseqtrace",
        abstract: "Per-CPU rseq ring-buffer tracing for Linux: run, drain and inspect traces.",
        subcommands: [DemoCommand.self, RecordCommand.self, ViewCommand.self, StatsCommand.self, ExportCommand.self])
}
