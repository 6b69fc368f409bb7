import ArgumentParser

/// A byte count written as `4096`, `64K`, `1M`, `1G` (binary multiples).
struct ByteSize: ExpressibleByArgument, Sendable, Equatable {
    let bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        var digits = Substring(argument)
        var multiplier = 1
        switch digits.last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        default: break
        }
        if multiplier != 1 { digits = digits.dropLast() }
        if digits.hasSuffix("i") || digits.hasSuffix("B") { return nil }
        guard let value = Int(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        bytes = product
    }

    /// The shortest way to write it back as an argument: `16M`, `64K`, `3000`.
    var argument: String {
        for (suffix, shift) in [("G", 30), ("M", 20), ("K", 10)] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)"
    }

    var defaultValueDescription: String { argument }

    static var defaultCompletionKind: CompletionKind { .default }
}
