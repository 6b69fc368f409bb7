#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import RseqTrace
import SystemPackage

/// What the writers of trace files share: creating an output file, and bytes as hex text.
enum OutputFile {
    /// Opens `path` for writing, created (mode 0644) or truncated, close-on-exec.
    static func create(_ path: String) throws(TraceError) -> FileDescriptor {
        do {
            return try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                           permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw TraceError(.systemCallFailed, "cannot create \(path): \(error)")
        }
    }

    /// `bytes` as lowercase hexadecimal digits, two per byte.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// A file's blocks reserved ahead of what is written to it, `CTFTraceWriter.streamReserveStep` at
/// a time, with `fallocate(FALLOC_FL_KEEP_SIZE)`: the file's size stays that of what was written, so
/// a reader never sees the reserve, and a write into reserved blocks skips the file system's block
/// reservation for each page. `release` gives back what was not used.
package struct BlockReserve {
    /// The file's blocks are reserved up to this offset (0: nothing reserved).
    package private(set) var end: UInt64 = 0

    package init() {}

    /// Reserves the blocks of `fd` up to at least `offset`, in whole steps. Returns false when the
    /// file system refused (it cannot reserve, or is full): the file is then written without.
    package mutating func extend(_ fd: Int32, through offset: UInt64) -> Bool {
        guard offset > end else { return true }
        let step = CTFTraceWriter.streamReserveStep
        let length = (offset &- end &+ step &- 1) / step * step
        guard rseqtrace_preallocate_beyond_end(fd, end, length) == 0 else { return false }
        end &+= length
        return true
    }

    /// Truncates `fd` to its size, which frees the blocks reserved past its end (none when
    /// nothing was reserved past it).
    package mutating func release(_ fd: Int32) {
        var status = stat()
        // SAFETY: fstat writes the caller's stat value only.
        guard end > 0, unsafe fstat(fd, &status) == 0, UInt64(status.st_size) < end else { return }
        // The same size: only the reserve past the end goes.
        _ = ftruncate(fd, status.st_size)
        end = UInt64(status.st_size)
    }
}
