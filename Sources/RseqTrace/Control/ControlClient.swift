#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A process found by ``ControlClient/discover()``: it listens on a control socket.
package struct ControlEndpoint: Sendable, Equatable {
    /// The process id the socket's name gives (checked against the kernel's at connection).
    package var pid: Int32
    /// The abstract socket name, without its leading `@`.
    package var socketName: String
}

/// A flight recorder found under /dev/shm (`rseqtrace-flight.<pid>.<start time>[.<random>]`).
package struct FlightRecorderObject: Sendable, Equatable {
    /// The name under /dev/shm.
    package var name: String
    /// The process that created it.
    package var pid: Int32
    /// That process's start time (`SystemInfo.processStartTime`), 0 when unknown.
    package var startTime: UInt64
    /// The owner of the file.
    package var ownerUID: UInt32

    /// Whether its process has exited: no process has that pid (or only its zombie), or it
    /// started at another time (the pid was reused).
    package var processHasExited: Bool {
        guard let start = SystemInfo.runningProcessStartTime(pid) else { return true }
        return startTime != 0 && start != startTime
    }
}

/// The consumer's end of the control protocol (docs/LiveTracing.md): finds traceable processes,
/// asks them for their status and events, and opens attach and snapshot sessions.
///
/// Every answer is validated (``ControlMessage``); the peer must be the process the socket name
/// says, of this user (or any user for root); every wait is bounded by the timeout given at
/// connection, so a stopped or hostile process gives an error, never a hang.
package final class ControlClient {
    /// The process this client talks to.
    package let pid: Int32
    /// Its user id, as the kernel recorded it.
    package let uid: UInt32
    private let socket: ControlSocket
    /// The connection's descriptor: it polls readable (end of file) once the process has exited.
    package var descriptor: Int32 { socket.descriptor }

    /// The control sockets of this machine's (network namespace's) RseqTrace processes, from
    /// `/proc/net/unix`, by pid.
    package static func discover() -> [ControlEndpoint] {
        guard let table = SystemInfo.readFile("/proc/net/unix", limit: 16 << 20) else { return [] }
        var endpoints: [ControlEndpoint] = []
        for line in table.split(separator: "\n").dropFirst() {
            guard let path = line.split(separator: " ").last, path.hasPrefix("@" + ControlServer.socketPrefix) else { continue }
            let name = String(path.dropFirst())
            let parts = name.dropFirst(ControlServer.socketPrefix.count).split(separator: ".")
            guard parts.count == 2, let pid = Int32(parts[0]), pid > 0,
                  parts[1].count == 16, parts[1].allSatisfy(\.isHexDigit) else { continue }
            let endpoint = ControlEndpoint(pid: pid, socketName: name)
            // A listening socket and its accepted connections share the name: list it once.
            if !endpoints.contains(endpoint) { endpoints.append(endpoint) }
        }
        return endpoints.sorted { $0.pid < $1.pid }
    }

    /// The flight recorders under /dev/shm that this user may read (all of them for root),
    /// whether or not their process still runs.
    package static func flightRecorders() -> [FlightRecorderObject] {
        let me = geteuid()
        var found: [FlightRecorderObject] = []
        for name in SystemInfo.directoryEntries("/dev/shm") ?? [] where name.hasPrefix(TraceRuntime.flightRecorderPrefix) {
            let parts = name.dropFirst(TraceRuntime.flightRecorderPrefix.count).split(separator: ".")
            guard parts.count == 2 || parts.count == 3, let pid = Int32(parts[0]), pid > 0,
                  let start = UInt64(parts[1]) else { continue }
            guard let info = try? FilePath(SharedTraceBuffer.path(forName: name)).stat(followTargetSymlink: false),
                  info.type == .regular else { continue }
            let owner = info.userID.rawValue
            guard owner == me || me == 0 else { continue }
            found.append(FlightRecorderObject(name: name, pid: pid, startTime: start, ownerUID: owner))
        }
        return found.sorted { ($0.pid, $0.name) < ($1.pid, $1.name) }
    }

    /// The control socket of process `pid`, or nil when it has none.
    package static func endpoint(of pid: Int32) -> ControlEndpoint? {
        discover().first { $0.pid == pid }
    }

    /// Connects to `endpoint` and checks that the kernel's record of the peer matches it.
    /// - Throws: `.notFound` (exited), `.permissionDenied` (another user's process: only that
    ///   user or root may trace it; or a socket held by a process other than the one its name
    ///   gives), `.systemCallFailed`.
    package init(connectingTo endpoint: ControlEndpoint, timeoutMilliseconds: Int = 2000) throws(TraceError) {
        socket = try ControlSocket.connect(name: endpoint.socketName, timeoutMilliseconds: timeoutMilliseconds)
        let peer = try socket.peer()
        let me = geteuid()
        guard peer.pid == endpoint.pid else {
            throw TraceError(.permissionDenied, """
                the control socket '@\(endpoint.socketName)' is held by process \(peer.pid), not by process \(endpoint.pid) \
                as its name says: refusing to use it
                """)
        }
        guard peer.uid == me || me == 0 else {
            throw TraceError(.permissionDenied, """
                process \(endpoint.pid) belongs to uid \(peer.uid), not to you (uid \(me)): only that user or root may trace it
                """)
        }
        pid = peer.pid
        uid = peer.uid
    }

    /// Sends `request` and returns the `ok` reply and the descriptor passed with it (the
    /// caller's to close).
    /// - Throws: the error an `error` reply carries, or `.notFound` when the process closed the
    ///   connection (it exited, or refused this user).
    package func request(_ request: ControlMessage) throws(TraceError) -> (reply: ControlMessage, descriptor: FileDescriptor?) {
        var request = request
        request["version"] = "\(ControlServer.protocolVersion)"
        try socket.send(request)
        guard let (reply, descriptor) = try socket.receive() else {
            throw TraceError(.notFound, "process \(pid) closed its control connection while answering '\(request.verb)': it has exited")
        }
        guard reply.verb == "ok" else {
            try? descriptor?.close()
            if reply.verb == "error" { throw reply.carriedError }
            throw TraceError(.corrupted, "process \(pid) answered '\(request.verb)' with '\(reply.verb)', neither ok nor error")
        }
        return (reply, descriptor)
    }

    /// The process's status (`pid`, `command`, `state`, `tracepoints`, `events`, `buffer_bytes`,
    /// `resident_bytes`, ...; see `TraceRuntime.controlStatus`).
    package func status() throws(TraceError) -> ControlMessage {
        let (reply, descriptor) = try request(ControlMessage("status"))
        try? descriptor?.close()
        return reply
    }

    /// One registered event of a traced process.
    package struct Event: Sendable, Equatable {
        package var name: String
        package var enabled: Bool
        /// `field:type` pairs, comma-separated (`FieldType.spelling`).
        package var fields: String
    }

    /// Every event the process registered so far.
    package func events() throws(TraceError) -> [Event] {
        var events: [Event] = []
        while true {
            let (reply, descriptor) = try request(ControlMessage("events", ["offset": "\(events.count)"]))
            try? descriptor?.close()
            let total = try reply.integer("total", in: 0...1_000_000)
            let count = try reply.integer("count", in: 0...ControlServer.eventsPerReply)
            for i in 0..<count {
                let line = try reply.text("event_\(i)")
                let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
                guard parts.count >= 2, parts[0] == "0" || parts[0] == "1" else {
                    throw TraceError(.corrupted, "process \(pid) described an event as '\(line)'")
                }
                events.append(Event(name: String(parts[1]), enabled: parts[0] == "1", fields: parts.count > 2 ? String(parts[2]) : ""))
            }
            if count == 0 || events.count >= total { return events }
        }
    }

    /// Opens an attach (`verb` `attach`) or snapshot session and maps the buffer the process
    /// passes; the session lasts until ``detach()`` or until this client is released.
    /// - Returns: the buffer and the reply (`buffer`: its name).
    package func openSession(_ request: ControlMessage) throws(TraceError) -> (buffer: SharedTraceBuffer, reply: ControlMessage) {
        let (reply, descriptor) = try self.request(request)
        guard let descriptor else {
            throw TraceError(.corrupted, "process \(pid) accepted '\(request.verb)' but passed no buffer")
        }
        defer { try? descriptor.close() }
        // A flight recorder is passed as its /dev/shm file, named in the reply.
        let buffer = try SharedTraceBuffer.open(descriptor: descriptor.rawValue, expectedOwner: uid, sharedName: reply["buffer"])
        return (buffer, reply)
    }

    /// Ends the session: the process stops writing to the buffer for this session (rules and
    /// buffer back as before) before it answers.
    package func detach() throws(TraceError) {
        let (_, descriptor) = try request(ControlMessage("detach"))
        try? descriptor?.close()
    }
}
