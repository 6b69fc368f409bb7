#if canImport(Glibc)
import Glibc
#else
#error("RseqTrace supports Linux with glibc only")
#endif
import SystemPackage

/// Facts about the machine read from /sys and /proc, without Foundation.
package enum SystemInfo {
    /// The `fstat` of an open file, or a `.systemCallFailed` error naming `path`.
    package static func status(of fd: FileDescriptor, path: String) throws(TraceError) -> Stat {
        do {
            return try fd.stat()
        } catch {
            throw TraceError(.systemCallFailed, "cannot stat \(path)", errno: error)
        }
    }

    /// A file type in words, for messages that refuse what is not a regular file ("a FIFO (named
    /// pipe)", "a character device", ...).
    package static func describe(_ type: FileType) -> String {
        switch type {
        case .fifo: "a FIFO (named pipe)"
        case .characterSpecial: "a character device"
        case .blockSpecial: "a block device"
        case .socket: "a socket"
        case .directory: "a directory"
        case .symbolicLink: "a symbolic link"
        default: "of file type \(String(type.rawValue, radix: 8))"
        }
    }

    /// Reads a small text file (at most `limit` bytes); `nil` if it cannot be read or is not a
    /// regular file (a FIFO or device is opened without blocking and refused, never read).
    package static func readSmallFile(_ path: String, limit: Int = 4096) -> String? {
        guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .nonBlocking]) else {
            return nil
        }
        defer { try? fd.close() }
        guard let info = try? fd.stat(), info.type == .regular else { return nil }
        var bytes = [UInt8](repeating: 0, count: limit)
        // SAFETY: reading into the array's own storage, at most its count.
        let count = unsafe (try? bytes.withUnsafeMutableBytes { buffer in
            // SAFETY: `buffer` is the array's own storage, valid for the closure.
            try unsafe fd.read(into: buffer)
        }) ?? 0
        return String(decoding: bytes[0..<count], as: UTF8.self)
    }

    /// Reads a whole file of at most `limit` bytes by repeated reads (for /proc files that a
    /// single read returns in parts); `nil` if it cannot be read or is not a regular file.
    package static func readFile(_ path: String, limit: Int) -> String? {
        guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .nonBlocking]) else {
            return nil
        }
        defer { try? fd.close() }
        guard let info = try? fd.stat(), info.type == .regular else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < limit {
            // SAFETY: reading into the chunk's own storage, at most its count.
            let count = unsafe (try? chunk.withUnsafeMutableBytes { buffer in
                // SAFETY: `buffer` is the chunk's own storage, valid for the closure.
                try unsafe fd.read(into: buffer)
            }) ?? 0
            guard count > 0 else { break }
            bytes += chunk[0..<min(count, limit - bytes.count)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `count` random bytes from /dev/urandom (zeros if it cannot be read).
    package static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard let fd = try? FileDescriptor.open(FilePath("/dev/urandom"), .readOnly, options: [.closeOnExec]) else {
            return bytes
        }
        defer { try? fd.close() }
        // SAFETY: reading into the array's own storage, at most its count.
        _ = try? unsafe bytes.withUnsafeMutableBytes { try unsafe fd.read(into: $0) }
        return bytes
    }

    /// Parses a kernel CPU list such as "0-3,8,10-11" into the highest CPU number + 1.
    package static func cpuListUpperBound(_ list: String) -> Int? {
        var upper = -1
        for part in list.split(whereSeparator: { $0 == "," || $0 == "\n" }) {
            let bounds = part.split(separator: "-")
            guard let last = bounds.last, let value = Int(last.trimmingASCIIWhitespace()) else { return nil }
            upper = max(upper, value)
        }
        return upper >= 0 ? upper + 1 : nil
    }

    /// Number of CPU numbers the kernel may ever use (`/sys/devices/system/cpu/possible`).
    package static var possibleCPUCount: Int {
        // Tests simulate a machine with many possible CPUs (a 384-CPU host) with this variable.
        if let simulated = environmentValue(simulatedCPUsVariable).flatMap({ Int($0) }),
           (1...TraceLayout.maximumCPURingCount).contains(simulated) {
            return simulated
        }
        if let text = readSmallFile("/sys/devices/system/cpu/possible"), let n = cpuListUpperBound(text) {
            return n
        }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_CONF))))
    }

    /// For tests only: the number of possible CPUs to assume instead of the machine's.
    package static let simulatedCPUsVariable = "RSEQTRACE_TEST_POSSIBLE_CPUS"

    /// Names in a directory (without "." and ".."); `nil` if it cannot be listed.
    package static func directoryEntries(_ path: String) -> [String]? {
        // SAFETY: opendir takes a path string; the handle is closed below.
        guard let dir = unsafe opendir(path) else { return nil }
        defer { unsafe closedir(dir) }  // SAFETY: closing the handle opened above, once
        var names: [String] = []
        // SAFETY: readdir on the handle opened above; each entry is used before the next call.
        while let entry = unsafe readdir(dir) {
            // SAFETY: `entry` is valid until the next readdir call; d_name is NUL-terminated.
            let name = unsafe withUnsafeBytes(of: entry.pointee.d_name) { raw in
                unsafe String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The NUMA node of `cpu`, from the `nodeN` link in its sysfs directory; `nil` if unknown.
    package static func numaNode(ofCPU cpu: Int) -> Int? {
        for name in directoryEntries("/sys/devices/system/cpu/cpu\(cpu)") ?? [] where name.hasPrefix("node") {
            if let node = Int(name.dropFirst(4)) { return node }
        }
        return nil
    }

    /// The boot id as 16 bytes (what LTTng uses as the clock UUID); zeros if unreadable.
    package static var bootID: [UInt8] {
        guard let text = readSmallFile("/proc/sys/kernel/random/boot_id") else {
            return [UInt8](repeating: 0, count: 16)
        }
        return parseUUID(text) ?? [UInt8](repeating: 0, count: 16)
    }

    /// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into 16 bytes.
    package static func parseUUID(_ text: String) -> [UInt8]? {
        let hex = text.utf8.filter { $0 != UInt8(ascii: "-") && $0 != UInt8(ascii: "\n") }
        guard hex.count == 32 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            guard let hi = hexValue(hex[index]), let lo = hexValue(hex[index + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// When process `pid` started, in clock ticks after boot (`/proc/<pid>/stat` field 22): with
    /// the pid, it names one process for the life of the system (pids are reused, this pair is
    /// not). nil when the process does not exist (any more) or its stat cannot be read.
    package static func processStartTime(_ pid: Int32) -> UInt64? {
        guard pid > 0, let stat = readSmallFile("/proc/\(pid)/stat") else { return nil }
        // The command name (field 2) is in parentheses and may contain anything: fields after
        // it are counted from the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// The start time of process `pid` (as `processStartTime`) while it can still run: nil when it
    /// does not exist or has exited (a zombie waiting for its parent, state `Z` or `X`).
    package static func runningProcessStartTime(_ pid: Int32) -> UInt64? {
        guard pid > 0, let stat = readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }

    /// The command name of process `pid` (`/proc/<pid>/comm`, at most 15 bytes), or nil.
    package static func processName(_ pid: Int32) -> String? {
        guard pid > 0, let comm = readSmallFile("/proc/\(pid)/comm", limit: 64) else { return nil }
        let name = String(Substring(comm).trimmingASCIIWhitespace())
        return name.isEmpty ? nil : name
    }

    /// The command line of process `pid` with its arguments separated by spaces (at most
    /// `limit` bytes, control characters replaced), or nil.
    package static func commandLine(_ pid: Int32, limit: Int = 512) -> String? {
        guard pid > 0, let text = readSmallFile("/proc/\(pid)/cmdline", limit: limit) else { return nil }
        var line = String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
        while line.last == " " { line.removeLast() }
        return line.isEmpty ? nil : line
    }

    /// The bytes of memory or disk allocated to the file open as `file` (`st_blocks` * 512): for
    /// a shared-memory object, what it holds resident (or swapped). nil if `fstat` fails.
    package static func allocatedBytes(of file: FileDescriptor) -> Int? {
        var info = stat()
        // SAFETY: `info` is a local stat the call fills.
        guard unsafe fstat(file.rawValue, &info) == 0 else { return nil }
        return Int(info.st_blocks) * 512
    }

    /// The value of the environment variable `name`, or nil when it is unset.
    package static func environmentValue(_ name: String) -> String? {
        // SAFETY: getenv returns nil or a NUL-terminated string owned by the environment; it is
        // copied at once.
        guard let value = unsafe getenv(name) else { return nil }
        // SAFETY: as above.
        return unsafe String(cString: value)
    }

    /// Nanoseconds of `clock`.
    /// Sleeps about one millisecond (test hooks and bounded waits only).
    package static func sleepBriefly() {
        var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        // SAFETY: both arguments are local timespecs (the remainder is not needed).
        _ = unsafe nanosleep(&pause, nil)
    }

    package static func nanoseconds(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        // SAFETY: `ts` is a local timespec.
        unsafe clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

extension Substring {
    func trimmingASCIIWhitespace() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\n" || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\n" || l == "\t" { s = s.dropLast() }
        return s
    }
}
