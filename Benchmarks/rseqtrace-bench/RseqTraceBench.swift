import ArgumentParser

/// `rseqtrace-bench`: the benchmark harness behind `Tools/bench`.
@main
struct RseqTraceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rseqtrace-bench",
        abstract: "RseqTrace side by side with LTTng-UST and hand-written baselines (run it through Tools/bench).",
        subcommands: [RunCommand.self, WorkerCommand.self, SustainedCommand.self],
        defaultSubcommand: RunCommand.self)
}
