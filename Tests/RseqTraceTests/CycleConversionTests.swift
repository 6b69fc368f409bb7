import Testing
import RseqTraceTestPayloads
@testable import RseqTrace

/// `CycleConversion` (the reciprocal the CTF writer converts timestamps with) must give exactly
/// `CycleClock.monotonicNanoseconds`, whatever the frequency and however far from the reference.
@Suite("Clock: CycleConversion equals the exact division")
struct CycleConversionTests {
    static let frequencies: [UInt64] = [
        1, 3, 24_000_000, 25_000_000, 999_999_999, 1_000_000_000, 1_000_000_001,
        2_399_999_977, 2_600_000_000, 3_000_000_000, 4_999_999_937, UInt64.max / 3, UInt64.max,
    ]

    @Test("random and edge timestamps on both sides of the reference", arguments: frequencies)
    func matchesTheDivision(frequency: UInt64) {
        var random = SeededRandom(state: frequency)
        for reference in [UInt64(0), 1 << 40, UInt64.max / 2, UInt64.max] {
            let clock = CycleClock(frequency: frequency, cycleReference: reference,
                                   monotonicReference: 5_000_000_000_000, realtimeReference: 0)
            let conversion = CycleConversion(clock)
            var samples: [UInt64] = [0, 1, reference, reference &+ 1, reference &- 1, UInt64.max, UInt64.max - 1,
                                     reference &+ frequency, reference &+ frequency &- 1, reference &+ 18_446_744_073]
            for shift in stride(from: 0, to: 64, by: 3) {
                let bits = random.next()
                samples.append(bits >> shift)
                samples.append(reference &+ (bits >> shift))
                samples.append(reference &- (bits >> shift))
            }
            for cycles in samples {
                #expect(conversion.monotonicNanoseconds(cycles) == clock.monotonicNanoseconds(cycles),
                        "frequency \(frequency), reference \(reference), cycles \(cycles)")
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
