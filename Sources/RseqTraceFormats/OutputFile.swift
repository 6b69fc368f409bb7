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
