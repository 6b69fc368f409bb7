/// Byte counts as people write them: `4096`, `64K`, `16M`, `1G` (binary multiples). The one
/// parser behind the CLI's size options and `RSEQTRACE_FLIGHT_RECORDER`.
package enum ByteCount {
    /// The count `text` writes, or nil when it is not a positive integer with an optional
    /// `K`/`M`/`G` suffix (either case), or overflows.
    package static func parse<S: StringProtocol>(_ text: S) -> Int? {
        var digits = Substring(text)
        var multiplier = 1
        switch digits.last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        default: break
        }
        if multiplier != 1 { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// The shortest way to write `bytes` back: `16M`, `64K`, `3000`.
    package static func format(_ bytes: Int) -> String {
        for (suffix, shift) in [("G", 30), ("M", 20), ("K", 10)] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)"
    }
}
