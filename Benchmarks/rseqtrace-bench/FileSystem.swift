#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport
import SystemPackage

/// The few file-system and /proc reads the harness needs, without Foundation.
enum FileSystem {
    /// Names in `directory` (without `.` and `..`); empty if it cannot be read.
    static func entries(of directory: String) -> [String] {
        // SAFETY: opendir returns nil or a stream closed below.
        guard let stream = unsafe opendir(directory) else { return [] }
        // SAFETY: closing the stream opened above, once.
        defer { unsafe closedir(stream) }
        var names: [String] = []
        // SAFETY: readdir returns entries of the open stream until nil.
        while let entry = unsafe readdir(stream) {
            // SAFETY: d_name is a NUL-terminated array inside the entry, valid until the next readdir.
            let name = unsafe withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                unsafe String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Size of a regular file, or nil.
    static func size(of path: String) -> UInt64? {
        guard let info = try? FilePath(path).stat(), info.type == .regular else { return nil }
        return UInt64(info.size)
    }

    static func isDirectory(_ path: String) -> Bool {
        (try? FilePath(path).stat())?.type == .directory
    }

    /// Every regular file under `directory` (recursively) as (path, size).
    static func files(under directory: String) -> [(path: String, size: UInt64)] {
        var found: [(String, UInt64)] = []
        for name in entries(of: directory) {
            let path = directory + "/" + name
            if isDirectory(path) {
                found += files(under: path)
            } else if let size = size(of: path) {
                found.append((path, size))
            }
        }
        return found
    }

    /// A text file's contents (small files: /proc, /sys), or nil.
    static func read(_ path: String, limit: Int = 1 << 16) -> String? {
        SystemInfo.readSmallFile(path, limit: limit)
    }

    /// Removes a directory tree the harness created (through `rm -rf`, which handles every case).
    static func removeTree(_ path: String) {
        guard !path.isEmpty, path != "/" else { return }
        _ = ChildProcess.runCaptured(["rm", "-rf", "--", path])
    }

    /// Creates a fresh directory with mkdtemp under `parent`; nil on failure.
    static func makeTemporaryDirectory(in parent: String, prefix: String) -> String? {
        var template = Array((parent + "/" + prefix + "XXXXXX").utf8CString)
        // SAFETY: mkdtemp rewrites the NUL-terminated template in place.
        guard unsafe template.withUnsafeMutableBufferPointer({ unsafe mkdtemp($0.baseAddress!) }) != nil else { return nil }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// CPU time of a process (all its threads), from /proc/<pid>/task/*/schedstat, in nanoseconds.
func processCPUNanoseconds(_ pid: Int32) -> UInt64? {
    let tasks = FileSystem.entries(of: "/proc/\(pid)/task")
    guard !tasks.isEmpty else { return nil }
    var total: UInt64 = 0
    for task in tasks {
        if let text = FileSystem.read("/proc/\(pid)/task/\(task)/schedstat"),
           let first = text.split(separator: " ").first, let value = UInt64(first) {
            total += value
        }
    }
    return total
}

/// The children of `parent` whose command name is `name` (/proc/<pid>/stat).
func childProcesses(of parent: Int32, named name: String) -> [Int32] {
    FileSystem.entries(of: "/proc").compactMap { entry -> Int32? in
        guard let pid = Int32(entry), let stat = FileSystem.read("/proc/\(pid)/stat", limit: 4096),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        let command = stat[stat.index(after: open)..<close]
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard command == name, rest.count > 1, Int32(rest[1]) == parent else { return nil }
        return pid
    }
}

/// Aggregate CPU time from /proc/stat (jiffies): stolen by the hypervisor, and in total.
struct CPUJiffies {
    var steal: UInt64 = 0
    var total: UInt64 = 0

    static func now() -> CPUJiffies? {
        guard let text = FileSystem.read("/proc/stat"),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let values = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard values.count >= 8 else { return nil }
        // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
        return CPUJiffies(steal: values[7], total: values[0..<8].reduce(0, +))
    }
}
