#if canImport(Glibc)
import Glibc
#endif

/// Writes `text` to standard error (file descriptor 2) unbuffered, followed by a newline unless
/// `newline` is false. Used for diagnostics and progress lines, so they never mix into stdout.
package func printError(_ text: String, newline: Bool = true) {
    var line = newline ? text + "\n" : text
    line.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            // SAFETY: writing the string's own UTF-8 buffer, valid for the closure; `offset` stays
            // within it.
            let written = unsafe write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
