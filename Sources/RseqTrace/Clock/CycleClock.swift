#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace

/// The clock behind record timestamps: the CPU cycle counter (`rdtsc` on x86_64, `cntvct_el0` on
/// aarch64), plus what a reader needs to turn its ticks into nanoseconds.
///
/// A trace object stores one reference instant — the counter, CLOCK_MONOTONIC and CLOCK_REALTIME
/// read together — and the counter frequency. A reader converts a timestamp `t` to monotonic
/// nanoseconds as `monotonicReference + (t - cycleReference) * 1e9 / frequency`.
public struct CycleClock: Sendable, Hashable {
    /// Counter ticks per second.
    public var frequency: UInt64
    /// Counter value at the reference instant.
    public var cycleReference: UInt64
    /// CLOCK_MONOTONIC nanoseconds at the reference instant.
    public var monotonicReference: UInt64
    /// CLOCK_REALTIME nanoseconds at the reference instant.
    public var realtimeReference: UInt64

    package init(frequency: UInt64, cycleReference: UInt64, monotonicReference: UInt64, realtimeReference: UInt64) {
        self.frequency = frequency
        self.cycleReference = cycleReference
        self.monotonicReference = monotonicReference
        self.realtimeReference = realtimeReference
    }

    /// Name recorded in the trace header.
    package static var sourceName: String {
        #if arch(x86_64)
        return "tsc"
        #else
        return "cntvct"
        #endif
    }

    /// Counter value now.
    @inlinable public static func now() -> UInt64 { rseqtrace_read_cycles() }

    /// Counter frequency, measured once per process (about 10 ms against CLOCK_MONOTONIC) unless
    /// the architecture states it.
    package static let measuredFrequency: UInt64 = {
        let hint = rseqtrace_cycles_frequency_hint()
        if hint > 0 { return hint }
        let start = sample()
        var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
        var remaining = timespec()
        // SAFETY: both arguments are local timespecs.
        while unsafe nanosleep(&pause, &remaining) != 0 { pause = remaining }
        let end = sample()
        let ns = end.monotonic &- start.monotonic
        let cycles = end.cycles &- start.cycles
        guard ns > 0 else { return 1_000_000_000 }
        return UInt64((Double(cycles) * 1e9 / Double(ns)).rounded())
    }()

    /// A reference instant: the counter read as close as possible to both clocks.
    package static func reference() -> CycleClock {
        // The first use of measuredFrequency sleeps ~10 ms: it must not fall between the
        // CLOCK_MONOTONIC sample and the CLOCK_REALTIME read, whose difference is the trace's
        // realtime offset (it was 10+ ms off, misaligning traces with LTTng's).
        let frequency = measuredFrequency
        let s = sample()
        let realtime = SystemInfo.nanoseconds(CLOCK_REALTIME)
        return CycleClock(frequency: frequency, cycleReference: s.cycles,
                          monotonicReference: s.monotonic, realtimeReference: realtime)
    }

    /// Reads the counter on both sides of CLOCK_MONOTONIC and keeps the tightest of a few tries.
    static func sample() -> (cycles: UInt64, monotonic: UInt64) {
        var best: (width: UInt64, cycles: UInt64, monotonic: UInt64) = (.max, 0, 0)
        for _ in 0..<5 {
            let before = now()
            let mono = SystemInfo.nanoseconds(CLOCK_MONOTONIC)
            let after = now()
            let width = after &- before
            if width < best.width { best = (width, before &+ width / 2, mono) }
        }
        return (best.cycles, best.monotonic)
    }

    /// Converts a timestamp to CLOCK_MONOTONIC nanoseconds: `(t - cycleReference) * 1e9 /
    /// frequency` in integer arithmetic through a 64.64 fixed-point reciprocal of the frequency
    /// (`CycleConversion`), which is the exact quotient or 1 ns below it and never decreases as `t`
    /// grows; saturating at 0 and UInt64.max for values no clock produces.
    public func monotonicNanoseconds(_ cycles: UInt64) -> UInt64 {
        CycleConversion(self).monotonicNanoseconds(cycles)
    }
}

/// The conversion of cycle-counter timestamps to CLOCK_MONOTONIC nanoseconds, with the
/// reciprocal of the frequency computed once: no division per timestamp.
///
/// `1e9 / frequency` is held as an integer part `q` and a 64-bit binary fraction
/// `f = floor(2^64 * (1e9 mod frequency) / frequency)`; `delta * q + high64(delta * f)` is
/// `floor(delta * 1e9 / frequency)` or one less (the fraction's truncation loses under
/// `delta / 2^64` ns), and never decreases as `delta` grows.
@frozen
@usableFromInline
package struct CycleConversion: Sendable {
    @usableFromInline let clock: CycleClock
    @usableFromInline let integerPart: UInt64
    @usableFromInline let fraction: UInt64
    /// Cycle counts `cycleReference + d` with `d < forwardSpan` convert without saturating: for
    /// them `monotonicNanoseconds` is the sum, with no overflow check, of `monotonicReference`,
    /// `d * integerPart` and `high64(d * fraction)` (`high64(d * fraction) < d`, and
    /// `d * (integerPart + 1) <= UInt64.max - monotonicReference`). 0 when the frequency is unknown.
    @usableFromInline let forwardSpan: UInt64

    package init(_ clock: CycleClock) {
        self.clock = clock
        guard clock.frequency > 0 else {
            integerPart = 0
            fraction = 0
            forwardSpan = 0
            return
        }
        integerPart = 1_000_000_000 / clock.frequency
        let remainder = 1_000_000_000 % clock.frequency
        // remainder < frequency, so the quotient of (remainder * 2^64) / frequency fits 64 bits.
        fraction = clock.frequency.dividingFullWidth((high: remainder, low: 0)).quotient
        forwardSpan = min(UInt64.max &- clock.cycleReference,
                          (UInt64.max &- clock.monotonicReference) / (integerPart &+ 1))
    }

    /// The timestamp in CLOCK_MONOTONIC nanoseconds (see `CycleClock.monotonicNanoseconds`).
    @inlinable @inline(__always)
    package func monotonicNanoseconds(_ cycles: UInt64) -> UInt64 {
        let delta = cycles &- clock.cycleReference
        if cycles >= clock.cycleReference && delta < forwardSpan {
            // No sum below can overflow (see `forwardSpan`): the same value as the checked path.
            return clock.monotonicReference &+ delta &* integerPart &+ delta.multipliedFullWidth(by: fraction).high
        }
        guard clock.frequency > 0 else { return clock.monotonicReference }
        let forward = cycles >= clock.cycleReference
        let ns = quotient(forward ? cycles &- clock.cycleReference : clock.cycleReference &- cycles)
        if forward {
            let (sum, overflow) = clock.monotonicReference.addingReportingOverflow(ns)
            return overflow ? .max : sum
        }
        return clock.monotonicReference >= ns ? clock.monotonicReference &- ns : 0
    }

    /// `floor(delta * 1e9 / frequency)` or one less, or UInt64.max when it does not fit.
    @inlinable @inline(__always)
    func quotient(_ delta: UInt64) -> UInt64 {
        let whole = delta.multipliedReportingOverflow(by: integerPart)
        let (sum, overflow) = whole.partialValue.addingReportingOverflow(delta.multipliedFullWidth(by: fraction).high)
        return whole.overflow || overflow ? .max : sum
    }
}
