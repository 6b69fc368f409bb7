#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceSupport
import RseqTrace
import SystemPackage

/// Termination signals received through a signalfd instead of a handler: from its creation the
/// signals are blocked in the creating thread and queue on the descriptor, which `poll` can
/// watch with other descriptors (e.g. `ChildProcess.waitForExit(milliseconds:alsoWaking:)`).
/// Create it before starting other threads, so that none of them receives the signals instead.
/// The signals stay blocked after it is gone (a signal that comes late is then never acted on,
/// e.g. while a recorder finishes its trace and exits) until `unblock()`.
package final class SignalReceiver {
    /// The signalfd (non-blocking, close-on-exec).
    package let descriptor: Int32
    private let signals: [Int32]

    /// Blocks `signals` and opens the descriptor that reads them.
    package init(_ signals: [Int32]) throws(TraceError) {
        // SAFETY: the array's buffer is valid for the call, which reads `count` ints from it.
        let fd = unsafe signals.withUnsafeBufferPointer { unsafe rseqtrace_support_signalfd_block($0.baseAddress, Int32($0.count)) }
        guard fd >= 0 else {
            throw TraceError(.systemCallFailed, "cannot receive termination signals through a signalfd", errno: Errno(rawValue: -fd))
        }
        descriptor = fd
        self.signals = signals
    }

    deinit {
        close(descriptor)
    }

    /// Unblocks the signals: one still pending is acted on at once (by its handler or default action).
    package func unblock() {
        // SAFETY: as in init.
        _ = unsafe signals.withUnsafeBufferPointer { unsafe rseqtrace_support_unblock_signals($0.baseAddress, Int32($0.count)) }
    }

    /// The next pending signal, or nil when none is pending.
    package func next() -> Int32? {
        let signal = rseqtrace_support_signalfd_read(descriptor)
        return signal > 0 ? signal : nil
    }
}
