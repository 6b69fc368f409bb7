import Testing
import RseqTraceTestPayloads
@testable import RseqTrace

/// Cycle-counter timestamps become nanoseconds through a fixed-point reciprocal
/// (`CycleConversion`, behind `CycleClock.monotonicNanoseconds`): checked here against the exact
/// 128-bit division, for frequencies from 1 Hz to UInt64.max, on both sides of the reference.
@Suite("Clock: timestamp conversion")
struct CycleConversionTests {
    static let frequencies: [UInt64] = [
        1, 3, 24_000_000, 25_000_000, 999_999_999, 1_000_000_000, 1_000_000_001,
        2_399_999_977, 2_600_000_000, 3_000_000_000, 4_999_999_937, UInt64.max / 3, UInt64.max,
    ]

    /// `floor(delta * 1e9 / frequency)` by a 128-bit division, or nil when it does not fit 64 bits.
    static func exactQuotient(_ delta: UInt64, _ frequency: UInt64) -> UInt64? {
        let product = delta.multipliedFullWidth(by: 1_000_000_000)
        guard product.high < frequency else { return nil }
        return frequency.dividingFullWidth(product).quotient
    }

    @Test("the exact quotient or 1 ns below it, saturating, never decreasing", arguments: frequencies)
    func withinOneNanosecondAndMonotonic(frequency: UInt64) {
        var random = SeededRandom(state: frequency)
        for reference in [UInt64(0), 1 << 40, UInt64.max / 2, UInt64.max] {
            let base: UInt64 = 5_000_000_000_000
            let clock = CycleClock(frequency: frequency, cycleReference: reference,
                                   monotonicReference: base, realtimeReference: 0)
            let conversion = CycleConversion(clock)
            var samples: [UInt64] = [0, 1, reference, reference &+ 1, reference &- 1, UInt64.max, UInt64.max - 1,
                                     reference &+ frequency, reference &+ frequency &- 1, reference &+ 18_446_744_073,
                                     // Both sides of the end of the unchecked path.
                                     reference &+ conversion.forwardSpan, reference &+ conversion.forwardSpan &- 1,
                                     reference &+ conversion.forwardSpan &+ 1]
            for shift in stride(from: 0, to: 64, by: 3) {
                let bits = random.next()
                samples.append(bits >> shift)
                samples.append(reference &+ (bits >> shift))
                samples.append(reference &- (bits >> shift))
            }
            samples.sort()
            var previous: UInt64 = 0
            for cycles in samples {
                let ns = conversion.monotonicNanoseconds(cycles)
                #expect(ns == clock.monotonicNanoseconds(cycles))
                #expect(ns >= previous, "decreased at \(cycles) (frequency \(frequency), reference \(reference))")
                previous = ns
                let forward = cycles >= reference
                let exact = Self.exactQuotient(forward ? cycles - reference : reference - cycles, frequency)
                let expected: (low: UInt64, high: UInt64)
                if forward {
                    let (sum, overflow) = base.addingReportingOverflow(exact ?? .max)
                    expected = exact == nil || overflow ? (.max, .max) : (sum == 0 ? 0 : sum - 1, sum)
                } else if let exact, exact < base {
                    expected = (base - exact, base - exact + 1)
                } else {
                    expected = (0, exact == base ? 1 : 0)
                }
                #expect(ns >= expected.low && ns <= expected.high,
                        "frequency \(frequency), reference \(reference), cycles \(cycles): \(ns) not in \(expected)")
            }
        }
    }

    @Test("a clock without a frequency maps everything to its reference")
    func zeroFrequency() {
        let clock = CycleClock(frequency: 0, cycleReference: 7, monotonicReference: 42, realtimeReference: 0)
        #expect(CycleConversion(clock).monotonicNanoseconds(123) == 42)
        #expect(clock.monotonicNanoseconds(123) == 42)
    }
}
