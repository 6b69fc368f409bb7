#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

/// What `list`, `attach` and `snapshot` share: finding the processes named on the command line.
enum LiveTargets {
    /// The control sockets of `pids` (or of every traceable process but this one, with `all`).
    /// - Throws: `.notFound` naming a process that does not exist or cannot be traced, and why.
    static func endpoints(pids: [Int32], all: Bool) throws(TraceError) -> [ControlEndpoint] {
        let found = ControlClient.discover()
        if all {
            let me = getpid()
            let others = found.filter { $0.pid != me }
            guard !others.isEmpty else {
                throw TraceError(.notFound, "no traceable process is running ('rseqtrace list' shows them once they reach a tracepoint)")
            }
            return others
        }
        var endpoints: [ControlEndpoint] = []
        for pid in pids {
            guard !endpoints.contains(where: { $0.pid == pid }) else { continue }
            guard let endpoint = found.first(where: { $0.pid == pid }) else { throw notTraceable(pid) }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    /// Why process `pid` has no control socket.
    static func notTraceable(_ pid: Int32) -> TraceError {
        guard SystemInfo.runningProcessStartTime(pid) != nil else {
            return TraceError(.notFound, "no process \(pid) is running")
        }
        let name = SystemInfo.processName(pid).map { " (\($0))" } ?? ""
        return TraceError(.notFound, """
            process \(pid)\(name) is not traceable: it has no RseqTrace control socket. Either it does not use RseqTrace, \
            has not reached a tracepoint yet, runs with \(TraceRuntime.controlVariable)=off, is recorded by rseqtrace \
            record, or runs in another network namespace (container)
            """)
    }

    /// `PREFIX-YYYYMMDD-HHMMSS` (UTC, now), with `-2`, `-3`... appended while that name exists in
    /// the current directory.
    static func defaultOutput(prefix: String) -> String {
        let base = prefix + "-" + TraceText.compactDateTime(Int64(SystemInfo.nanoseconds(CLOCK_REALTIME)))
        let existing = Set(SystemInfo.directoryEntries(".") ?? [])
        var name = base
        var suffix = 2
        while existing.contains(name) {
            name = base + "-\(suffix)"
            suffix += 1
        }
        return name
    }

    /// A command name made safe as a directory name and a CTF string: characters other than
    /// letters, digits, `.`, `_` and `-` become `_`.
    static func safeName(_ name: String) -> String {
        let safe = String(name.unicodeScalars.prefix(64).map { scalar -> Character in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "._-".unicodeScalars.contains(scalar))
                ? Character(scalar) : "_"
        })
        return safe.isEmpty || safe.hasPrefix(".") ? "process" + safe : safe
    }

    /// Waits up to `milliseconds` for one of the control connections `descriptors` to end (its
    /// process exited) or for `signal` to become readable; returns the indices of the ended ones.
    static func waitForExits(_ descriptors: [Int32], orSignal signal: Int32, milliseconds: Int) -> [Int] {
        var polled = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        polled.append(pollfd(fd: signal, events: Int16(POLLIN), revents: 0))
        // SAFETY: the array's storage holds `count` pollfds for the call.
        let ready = unsafe polled.withUnsafeMutableBufferPointer { unsafe poll($0.baseAddress, nfds_t($0.count), Int32(milliseconds)) }
        guard ready > 0 else { return [] }
        // A connection with nothing to read that polls readable or hung up has ended: the process
        // answers only requests, so no message is ever pending on it.
        return polled.indices.dropLast().filter { polled[$0].revents != 0 }
    }
}
