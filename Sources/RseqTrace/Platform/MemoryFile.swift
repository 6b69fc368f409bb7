#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import SystemPackage

/// Anonymous shared memory files (`memfd_create`): a trace object with no name under /dev/shm,
/// which disappears with the last process holding it and which no other user can open or
/// replace. Handed to a child by inheritance (`rseqtrace record`) or to another process over a
/// control socket (live tracing).
package enum MemoryFile {
    /// Creates an empty anonymous memory file labelled `label` (shown as `/memfd:<label>` in
    /// /proc/<pid>/fd), close-on-exec and sealable, with a descriptor number above 2.
    package static func create(label: String) throws(TraceError) -> FileDescriptor {
        // SAFETY: the call copies the NUL-terminated label Swift passes for its duration.
        let fd = unsafe rseqtrace_memfd_create(label)
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

    /// The seals that make a memory file's size fixed: no shrinking, no growing.
    package static let sizeSeals = Int32(RSEQTRACE_SEAL_SHRINK | RSEQTRACE_SEAL_GROW)

    /// Seals the size of `fd` (no shrinking, no growing, no further seals): a process sharing it
    /// cannot truncate it under the others' mappings.
    package static func sealSize(_ fd: FileDescriptor) throws(TraceError) {
        let rc = rseqtrace_add_seals(fd.rawValue, sizeSeals | Int32(RSEQTRACE_SEAL_SEAL))
        guard rc == 0 else {
            throw TraceError(.systemCallFailed, "cannot seal the size of the trace buffer's memory file (descriptor \(fd.rawValue))",
                             errno: Errno(rawValue: -rc))
        }
    }

    /// The seals of `fd` (`RSEQTRACE_SEAL_*` bits), or nil if it takes none.
    package static func seals(_ fd: FileDescriptor) -> Int32? {
        let seals = rseqtrace_get_seals(fd.rawValue)
        return seals >= 0 ? seals : nil
    }
}
