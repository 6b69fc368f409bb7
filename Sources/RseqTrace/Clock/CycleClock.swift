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

    /// Converts a timestamp to CLOCK_MONOTONIC nanoseconds: exact integer arithmetic (so the
    /// conversion is monotonic), saturating at 0 and UInt64.max for values no clock produces.
    public func monotonicNanoseconds(_ cycles: UInt64) -> UInt64 {
        guard frequency > 0 else { return monotonicReference }
        let forward = cycles >= cycleReference
        let product = (forward ? cycles - cycleReference : cycleReference - cycles).multipliedFullWidth(by: 1_000_000_000)
        // (A product that fits 64 bits, i.e. within seconds of the reference: the same quotient
        // by a 64-bit division.)
        let ns = product.high == 0 ? product.low / frequency
            : product.high >= frequency ? UInt64.max : frequency.dividingFullWidth(product).quotient
        if forward {
            let (sum, overflow) = monotonicReference.addingReportingOverflow(ns)
            return overflow ? .max : sum
        }
        return monotonicReference >= ns ? monotonicReference - ns : 0
    }
}
