// Self-checking payloads and seeded randomness shared by the test suite and the helper programs.

/// A 32-byte self-checking payload: a record that was torn or overwritten while read fails `isIntact`.
package struct CheckedPayload: BitwiseCopyable {
    package var source: UInt64
    package var sequence: UInt64
    package var check: UInt64
    package var inverse: UInt64

    package init(source: UInt64, sequence: UInt64) {
        self.source = source
        self.sequence = sequence
        self.check = CheckedPayload.mix(source, sequence)
        self.inverse = ~check
    }

    package static func mix(_ source: UInt64, _ sequence: UInt64) -> UInt64 {
        (source &* 0x9E37_79B9_7F4A_7C15) ^ (sequence &* 0xC2B2_AE3D_27D4_EB4F) ^ 0x5BD1_E995_0000_0001
    }

    package var isIntact: Bool { check == CheckedPayload.mix(source, sequence) && inverse == ~check }
}


/// SplitMix64: deterministic test randomness, so that a failing mutation or payload is reproducible
/// from its seed.
package struct SeededRandom: RandomNumberGenerator {
    package var state: UInt64
    package init(state: UInt64) { self.state = state }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
