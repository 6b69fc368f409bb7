import ArgumentParser

/// `rseqtrace`: the RseqTrace consumer tool.
@main
struct RseqTraceCommand: ParsableCommand {
    /// The version `rseqtrace --version` prints: the RseqTrace package's.
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "rseqtrace",
        abstract: "Per-CPU rseq ring-buffer tracing for Linux: run, drain and inspect traces.",
        version: version,
        subcommands: [DemoCommand.self, RecordCommand.self, ListCommand.self, AttachCommand.self, SnapshotCommand.self,
                      ViewCommand.self, StatsCommand.self, ExportCommand.self])

    /// Refuses an unknown subcommand with the nearest one ("did you mean"), then parses as usual.
    static func main() {
        if let word = CommandLine.arguments.dropFirst().first, let message = unknownSubcommand(word) {
            Self.exit(withError: ValidationError(message))
        }
        Self.main(nil)
    }

    /// The names `rseqtrace` accepts as its first word besides options.
    static var subcommandNames: [String] {
        configuration.subcommands.map { $0.configuration.commandName ?? "" } + ["help"]
    }

    /// The error for a first word that is not a subcommand (nil for a subcommand or an option).
    static func unknownSubcommand(_ word: String) -> String? {
        guard !word.hasPrefix("-"), !subcommandNames.contains(word) else { return nil }
        let names = configuration.subcommands.map { $0.configuration.commandName ?? "" }
        let scored = names.map { (name: $0, distance: editDistance(word, $0)) }
        let close = scored.filter { $0.distance <= 2 || ($0.name.hasPrefix(word) && word.count >= 2) }
        if let best = close.min(by: { $0.distance < $1.distance }) {
            return "unknown subcommand '\(word)': did you mean '\(best.name)'?"
        }
        return "unknown subcommand '\(word)'; the subcommands are \(names.joined(separator: ", "))"
    }

    /// The number of single-character insertions, deletions, substitutions and transpositions of
    /// adjacent characters that turn `a` into `b` (optimal string alignment distance).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        guard !x.isEmpty else { return y.count }
        guard !y.isEmpty else { return x.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { table[i][0] = i }
        for j in 0...y.count { table[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[x.count][y.count]
    }
}
