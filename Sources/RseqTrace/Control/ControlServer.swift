#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import SystemPackage

/// The control thread of an instrumented process: what makes it visible to `rseqtrace list` and
/// lets `rseqtrace attach` and `snapshot` reach it, with no daemon (docs/LiveTracing.md).
///
/// Started at the runtime's first use. It listens on the abstract Unix socket
/// `@rseqtrace.<pid>.<random>` and spends its life blocked in `poll`: a process nobody looks at
/// spends no CPU on it. Each connection's peer is identified by the kernel (`SO_PEERCRED`);
/// only the same user or root is answered. A session (attach or snapshot) lasts as long as the
/// connection that opened it: a `detach`, the consumer closing it, or the consumer dying all end
/// it, and the process goes back to its state before.
package final class ControlServer {
    /// The prefix of every control socket's abstract name.
    package static let socketPrefix = "rseqtrace."
    /// The protocol version spoken (the `version` field of `status`).
    package static let protocolVersion = 1
    /// Connections served at once; more are refused with an error message.
    static let maximumConnections = 16
    /// Events per `events` reply.
    package static let eventsPerReply = 200

    private let listener: ControlSocket
    private var connections: [(id: Int, socket: ControlSocket, pid: Int32)] = []
    private var nextID = 1

    private init(listener: ControlSocket) { self.listener = listener }

    /// Listens on a fresh abstract name and starts the thread; returns the name.
    static func start() throws(TraceError) -> String {
        let pid = getpid()
        var socket: ControlSocket?
        var name = ""
        for _ in 0..<4 where socket == nil {
            name = socketPrefix + "\(pid)." + SystemInfo.randomBytes(8).map { byte in
                let digits = String(byte, radix: 16)
                return digits.count == 1 ? "0" + digits : digits
            }.joined()
            do throws(TraceError) {
                socket = try ControlSocket.listen(name: name)
            } catch where error.code == .alreadyExists {
                continue
            }
        }
        guard let socket else {
            throw TraceError(.alreadyExists, "every control socket name tried for process \(pid) was taken")
        }
        let server = ControlServer(listener: socket)
        // SAFETY: a +1 reference handed to the new thread, which takes it back (below).
        let context = unsafe Unmanaged.passRetained(server).toOpaque()
        var thread = pthread_t()
        // SAFETY: `thread` is a local the call fills; the entry point takes back the +1 reference
        // passed as its argument, which stays valid until then.
        let rc = unsafe pthread_create(&thread, nil, { context in
            // SAFETY: the +1 reference passed by `start`.
            let server = unsafe Unmanaged<ControlServer>.fromOpaque(context!).takeRetainedValue()
            server.run()
        }, context)
        guard rc == 0 else {
            // SAFETY: the thread was not created, so the reference is still ours to release.
            unsafe Unmanaged<ControlServer>.fromOpaque(context).release()
            throw TraceError(.systemCallFailed, "cannot start the control thread", errno: Errno(rawValue: rc))
        }
        pthread_detach(thread)
        return name
    }

    private func run() -> Never {
        // Process-directed signals go to the program's own threads, never to this one.
        var all = sigset_t()
        // SAFETY: `all` is a local sigset the calls fill and read.
        unsafe sigfillset(&all)
        // SAFETY: as above; the previous mask is not needed.
        unsafe pthread_sigmask(SIG_BLOCK, &all, nil)
        // SAFETY: the call copies the NUL-terminated name for its duration.
        _ = unsafe rseqtrace_name_current_thread("rseqtrace-ctl")
        while true {
            var descriptors = [pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)]
            descriptors += connections.map { pollfd(fd: $0.socket.descriptor, events: Int16(POLLIN), revents: 0) }
            // SAFETY: the array's storage holds `count` pollfds for the call.
            let ready = unsafe descriptors.withUnsafeMutableBufferPointer { unsafe poll($0.baseAddress, nfds_t($0.count), -1) }
            guard ready > 0 else { continue }   // EINTR
            var closed: [Int] = []
            for (index, descriptor) in descriptors.enumerated().dropFirst() where descriptor.revents != 0 {
                let connection = connections[index - 1]
                if !serve(connection) { closed.append(connection.id) }
            }
            for id in closed {
                TraceRuntime.closeControlSession(connection: id)
                connections.removeAll { $0.id == id }
            }
            if descriptors[0].revents != 0 { acceptPending() }
        }
    }

    private func acceptPending() {
        while let socket = try? listener.accept() {
            let me = geteuid()
            guard let peer = try? socket.peer() else { continue }
            guard peer.uid == me || peer.uid == 0 else {
                try? socket.send(.error("""
                    process \(getpid()) belongs to uid \(me); only that user or root may list, attach to or snapshot it \
                    (you are uid \(peer.uid))
                    """, code: .permissionDenied))
                continue
            }
            guard connections.count < Self.maximumConnections else {
                try? socket.send(.error("process \(getpid()) already serves \(Self.maximumConnections) control connections; try again later"))
                continue
            }
            connections.append((nextID, socket, peer.pid))
            nextID += 1
        }
    }

    /// Answers one request on `connection`; false when the connection is to be closed.
    private func serve(_ connection: (id: Int, socket: ControlSocket, pid: Int32)) -> Bool {
        let request: ControlMessage
        do throws(TraceError) {
            guard let received = try connection.socket.receive() else { return false }
            try? received.descriptor?.close()   // requests carry no descriptor
            request = received.message
        } catch {
            try? connection.socket.send(.error("malformed request: \(error.message)"))
            return false
        }
        var reply: ControlMessage
        var passed: Int32?
        switch request.verb {
        case "status":
            reply = TraceRuntime.controlStatus()
            reply["version"] = "\(Self.protocolVersion)"
            reply["control"] = TraceRuntime.shared.withLock { $0.controlName } ?? ""
        case "events":
            let offset = (try? request.integer("offset", in: 0...Int(Int32.max))) ?? 0
            reply = TraceRuntime.controlEvents(offset: offset, limit: Self.eventsPerReply)
        case "attach", "snapshot":
            do throws(TraceError) {
                (reply, passed) = try TraceRuntime.openControlSession(request, consumer: connection.pid, connection: connection.id)
            } catch {
                reply = .error(error.message, code: error.code)
            }
        case "detach":
            TraceRuntime.closeControlSession(connection: connection.id)
            reply = ControlMessage("ok")
        default:
            reply = .error("unknown request '\(request.verb)' (this process speaks control protocol version \(Self.protocolVersion))")
        }
        do throws(TraceError) {
            try connection.socket.send(reply, passing: passed)
        } catch {
            return false
        }
        return true
    }
}
