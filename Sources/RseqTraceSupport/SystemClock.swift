#if canImport(Glibc)
import Glibc
#endif
import RseqTrace

/// Clocks and sleeping for the executables and tests, without Foundation. Readings are
/// nanoseconds (`SystemInfo.nanoseconds`, the one clock_gettime reader of the package).
package enum SystemClock {
    /// CLOCK_MONOTONIC in nanoseconds.
    package static func monotonic() -> UInt64 { SystemInfo.nanoseconds(CLOCK_MONOTONIC) }

    /// CPU time of the calling thread in nanoseconds.
    package static func threadCPUTime() -> UInt64 { SystemInfo.nanoseconds(CLOCK_THREAD_CPUTIME_ID) }

    /// CPU time of this process (all threads) in nanoseconds.
    package static func processCPUTime() -> UInt64 { SystemInfo.nanoseconds(CLOCK_PROCESS_CPUTIME_ID) }

    /// The timespec for `nanoseconds`, normalised (0 <= tv_nsec < 1e9, as nanosleep requires).
    package static func timespec(nanoseconds: UInt64) -> timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    /// Sleeps for `nanoseconds` (any length), resuming after signal interruptions until the time
    /// has passed.
    package static func sleep(nanoseconds: UInt64) {
        var remaining = timespec(nanoseconds: nanoseconds)
        var rest = Glibc.timespec()
        // SAFETY: both arguments are local timespecs; on EINTR `rest` holds the time left.
        while unsafe nanosleep(&remaining, &rest) != 0 && errno == EINTR {
            remaining = rest
        }
    }

    /// Sleeps for `microseconds` (any length).
    package static func sleep(microseconds: Int) {
        sleep(nanoseconds: UInt64(max(0, microseconds)) &* 1000)
    }

    /// Sleeps for `milliseconds` (any length).
    package static func sleep(milliseconds: Int) {
        sleep(nanoseconds: UInt64(max(0, milliseconds)) &* 1_000_000)
    }
}
