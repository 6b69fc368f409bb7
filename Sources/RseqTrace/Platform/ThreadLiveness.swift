#if canImport(Glibc)
import Glibc
#endif

/// Whether the thread a record names (`pid << 32 | tid`, as `getpid()` and `gettid()` returned them
/// in the writer's pid namespace) can still run, decided from `/proc` (docs/BufferProtocol.md §4.6).
///
/// The answer is `.dead` only when it is certain: the consumer is in the initial pid namespace with
/// its own `/proc` (so every thread of the system, in every pid namespace, is visible in it),
/// `/proc` hides no process from it, and no thread anywhere whose innermost ids are `pid` and
/// `tid` exists except as a zombie. A thread that is stopped (`SIGSTOP`, a debugger), preempted
/// or blocked exists, so it is `.alive`; so is a new thread that reused the ids (the safe side),
/// unless the caller says by when the owner existed (`existedBy`) and the thread certainly started
/// later than that: then it is another thread, not the owner.
/// Anything the consumer cannot see for sure gives `.unknown`, and the caller waits as if the
/// owner were alive.
package enum ThreadLiveness: Equatable, Sendable {
    case alive
    case dead
    case unknown(String)

    /// The inode of the initial pid namespace (`PROC_PID_INIT_INO` of the kernel).
    static let initialPIDNamespace = "pid:[4026531836]"

    /// How much later than `existedBy` a thread must have started to be certainly not the owner:
    /// more than the clock-tick resolution of `/proc` start times.
    static let startMargin: UInt64 = 50_000_000

    /// Decides for the thread `tid` of process `pid` (ids of the writer's pid namespace).
    /// - Parameter existedBy: a CLOCK_BOOTTIME time (ns, `bootTimeNow()`) by which the owner
    ///   certainly existed (when the consumer first saw the word it stored), or nil: a thread of
    ///   those ids whose `/proc` start time (clock ticks of CLOCK_BOOTTIME) is more than
    ///   `startMargin` later reused the ids and is not the owner.
    package static func of(pid: Int32, tid: Int32, existedBy: UInt64? = nil) -> ThreadLiveness {
        guard pid > 0, tid > 0 else { return .unknown("the record names pid \(pid), tid \(tid)") }
        if let reason = visibilityProblem() { return .unknown(reason) }
        let startedAfter = existedBy.map(latestPossibleOwnerStart)
        // A thread of these numbers in this (the initial) namespace that may be the owner: alive,
        // whether or not it is the writer (the safe side), without listing every process.
        if threadCanRun("/proc/\(pid)/task/\(tid)/stat", startedAfter: startedAfter) != false { return .alive }
        guard let entries = SystemInfo.directoryEntries("/proc") else { return .unknown("/proc cannot be listed") }
        // Every process whose innermost pid (its own namespace's, what it wrote) is `pid`.
        for name in entries {
            guard let outer = Int32(name), outer > 0 else { continue }
            guard let ids = namespacePIDs("/proc/\(outer)/status") else {
                // Gone meanwhile, or unreadable: only the first is certain.
                if SystemInfo.processStartTime(outer) != nil { return .unknown("/proc/\(outer)/status cannot be read") }
                continue
            }
            guard ids.last == pid else { continue }
            switch threadState(process: outer, nested: ids.count > 1, tid: tid, startedAfter: startedAfter) {
            case .some(true): return .alive
            case .some(false): continue
            case .none: return .unknown("the threads of process \(outer) cannot be read")
            }
        }
        return .dead
    }

    /// Why this process cannot see every thread of the system in `/proc`, or nil when it can.
    package static func visibilityProblem() -> String? {
        guard let namespace = readLink("/proc/self/ns/pid") else { return "/proc/self/ns/pid cannot be read" }
        guard namespace == initialPIDNamespace else {
            return "this consumer runs in pid namespace \(namespace), not the initial one: threads of other namespaces are not visible to it"
        }
        guard readLink("/proc/self") == String(getpid()) else {
            return "/proc is not the procfs of this consumer's pid namespace"
        }
        if geteuid() != 0, let mounts = SystemInfo.readFile("/proc/self/mounts", limit: 1 << 20) {
            for line in mounts.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count > 3, fields[1] == "/proc", fields[2] == "proc" else { continue }
                for option in fields[3].split(separator: ",") where option.hasPrefix("hidepid=") {
                    if option != "hidepid=0" && option != "hidepid=off" {
                        return "/proc is mounted with \(option): it hides other users' processes"
                    }
                }
            }
        }
        return nil
    }

    /// The `NSpid` line of a `/proc/.../status` file: the pid in this namespace, then in each nested
    /// one, the last being the process's own. nil when the file cannot be read.
    static func namespacePIDs(_ path: String) -> [Int32]? {
        guard let status = SystemInfo.readSmallFile(path, limit: 16 << 10) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
            let ids = line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int32($0) }
            return ids.isEmpty ? nil : ids
        }
        return nil
    }

    /// Whether process `process` (a pid of this namespace) has a thread whose innermost tid is
    /// `tid` that is not a zombie: true, false, or nil when its threads cannot be read.
    static func threadState(process: Int32, nested: Bool, tid: Int32, startedAfter: UInt64?) -> Bool? {
        if !nested {
            return threadCanRun("/proc/\(process)/task/\(tid)/stat", startedAfter: startedAfter)
        }
        guard let threads = SystemInfo.directoryEntries("/proc/\(process)/task") else {
            return SystemInfo.processStartTime(process) == nil ? false : nil
        }
        for name in threads {
            guard let ids = namespacePIDs("/proc/\(process)/task/\(name)/status") else { continue }
            if ids.last == tid {
                return threadCanRun("/proc/\(process)/task/\(name)/stat", startedAfter: startedAfter)
            }
        }
        return false
    }

    /// Whether the thread of a `/proc/.../stat` path exists, is not a zombie (state `Z` or `X`) and
    /// may be the owner: false too when its start time, in clock ticks after boot (field 22), is
    /// later than `startedAfter` (boot-time ticks, see `latestPossibleOwnerStart`). nil when it
    /// exists but cannot be read.
    static func threadCanRun(_ statPath: String, startedAfter: UInt64? = nil) -> Bool? {
        guard let stat = SystemInfo.readSmallFile(statPath), let close = stat.lastIndex(of: ")") else {
            // SAFETY: access reads the NUL-terminated copy of the path Swift passes for the call.
            return unsafe access(statPath, F_OK) == 0 ? nil : false
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard let state = fields.first, state != "Z", state != "X" else { return false }
        if let startedAfter, fields.count > 19, let start = UInt64(fields[19]), start > startedAfter {
            return false
        }
        return true
    }

    /// The latest start time, in clock ticks after boot (as `/proc` reports it), that the owner of
    /// ids that existed at CLOCK_BOOTTIME `existedBy` can have: `existedBy + startMargin` in
    /// ticks, rounded up.
    static func latestPossibleOwnerStart(_ existedBy: UInt64) -> UInt64 {
        let tick = 1_000_000_000 / UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return (existedBy &+ startMargin &+ tick &- 1) / tick
    }

    /// CLOCK_BOOTTIME now, in nanoseconds (the clock of `/proc` start times); 0 if unreadable,
    /// which makes every thread of the owner's ids count as the owner.
    package static func bootTimeNow() -> UInt64 {
        var now = timespec()
        // SAFETY: clock_gettime writes the local timespec.
        guard unsafe clock_gettime(CLOCK_BOOTTIME, &now) == 0 else { return 0 }
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    /// The target of a symbolic link, or nil.
    static func readLink(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        // SAFETY: readlink writes at most count bytes into the array's own storage.
        let length = unsafe buffer.withUnsafeMutableBytes { raw in unsafe readlink(path, raw.baseAddress!, raw.count) }
        guard length > 0, length < buffer.count else { return nil }
        return String(decoding: buffer[..<length], as: UTF8.self)
    }
}
