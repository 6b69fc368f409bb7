extension UInt64 {
    /// `self + other`, or `UInt64.max` when the sum does not fit. Counters summed from shared
    /// memory (ring counters, loss counts of begin records) use it: another process can write any
    /// value there, and a total that saturates is still a correct "at least".
    @inlinable
    package func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// Adds `other` to `self`, saturating at `UInt64.max` (see `addingSaturated`).
    @inlinable
    package mutating func addSaturated(_ other: UInt64) {
        self = addingSaturated(other)
    }
}
