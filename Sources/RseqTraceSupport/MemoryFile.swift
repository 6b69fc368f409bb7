#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceSupport
import RseqTrace
import SystemPackage

/// Anonymous shared memory files (`memfd_create`): a trace object with no name under /dev/shm,
/// which disappears with the last process holding it and which no other user can open or
/// replace. Handed to a child by inheritance (`ChildProcess.spawn(inheriting:)`).
package enum MemoryFile {
    /// Creates an empty anonymous memory file labelled `label` (shown as `/memfd:<label>` in
    /// /proc/<pid>/fd), close-on-exec and sealable, with a descriptor number above 2.
    package static func create(label: String) throws(TraceError) -> FileDescriptor {
        // SAFETY: the call copies the NUL-terminated label Swift passes for its duration.
        let fd = unsafe rseqtrace_support_memfd_create(label)
        guard fd >= 0 else {
            throw TraceError(.systemCallFailed, "cannot create an anonymous memory file for the trace buffer (memfd_create)",
                             errno: Errno(rawValue: -fd))
        }
        guard fd < 3 else { return FileDescriptor(rawValue: fd) }
        // Standard input, output or error was closed and the file took its number: move it above
        // them, or a child would read or write the trace buffer as one of its standard streams.
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, Int32(3))
        let error = errno
        close(fd)
        guard moved >= 0 else {
            throw TraceError(.systemCallFailed, "cannot move the trace buffer's memory file above descriptor 2 (fcntl F_DUPFD_CLOEXEC)",
                             errno: Errno(rawValue: error))
        }
        return FileDescriptor(rawValue: moved)
    }

    /// Seals the size of `fd` (no shrinking, no growing, no further seals): a process sharing it
    /// cannot truncate it under the others' mappings.
    package static func sealSize(_ fd: FileDescriptor) throws(TraceError) {
        let rc = rseqtrace_support_add_seals(
            fd.rawValue, Int32(RSEQTRACE_SEAL_SHRINK | RSEQTRACE_SEAL_GROW | RSEQTRACE_SEAL_SEAL))
        guard rc == 0 else {
            throw TraceError(.systemCallFailed, "cannot seal the size of the trace buffer's memory file (descriptor \(fd.rawValue))",
                             errno: Errno(rawValue: -rc))
        }
    }

    /// The seals of `fd` (`RSEQTRACE_SEAL_*` bits), or nil if it takes none.
    package static func seals(_ fd: FileDescriptor) -> Int32? {
        let seals = rseqtrace_support_get_seals(fd.rawValue)
        return seals >= 0 ? seals : nil
    }
}

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
