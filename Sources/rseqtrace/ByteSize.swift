import ArgumentParser
import RseqTrace

/// A byte count written as `4096`, `64K`, `1M`, `1G` (binary multiples; parsed by `ByteCount`).
struct ByteSize: ExpressibleByArgument, Sendable, Equatable {
    let bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        guard let bytes = ByteCount.parse(argument) else { return nil }
        self.bytes = bytes
    }

    /// The shortest way to write it back as an argument: `16M`, `64K`, `3000`.
    var argument: String { ByteCount.format(bytes) }

    var defaultValueDescription: String { argument }

    static var defaultCompletionKind: CompletionKind { .default }
}
