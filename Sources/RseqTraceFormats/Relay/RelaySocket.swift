#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import SystemPackage

/// A connected TCP socket whose every operation is bounded in time: connecting waits at most
/// `timeout` (a non-blocking connect and poll), and each send or receive fails once `timeout`
/// passes without progress (SO_SNDTIMEO, SO_RCVTIMEO), so a relay daemon that stops answering
/// never hangs the recorder. Writes never raise SIGPIPE (MSG_NOSIGNAL).
package final class RelaySocket {
    /// What the socket talks to, for messages: `host:port (role)`.
    let peer: String
    private var fd: Int32

    /// Connects to `host` (a name or an address) on `port`, trying each address it resolves to.
    package init(host: String, port: UInt16, role: String, timeout: Duration) throws(TraceError) {
        self.peer = "\(host):\(port) (\(role))"
        // SAFETY: a zeroed addrinfo (null pointers), only read by getaddrinfo.
        var hints = unsafe addrinfo()
        unsafe hints.ai_family = AF_UNSPEC  // SAFETY: a plain field of the struct above.
        unsafe hints.ai_socktype = Int32(SOCK_STREAM.rawValue)  // SAFETY: as above.
        var list: UnsafeMutablePointer<addrinfo>?
        // SAFETY: getaddrinfo reads the two strings and `hints` during the call and stores a list it
        // allocated in `list`, freed below with freeaddrinfo.
        let status = unsafe getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else {
            // SAFETY: gai_strerror returns a static string for any status.
            let reason = unsafe String(cString: gai_strerror(status))
            throw TraceError(.notFound, "cannot resolve the relay daemon's host \(host): \(reason); check the name in --relayd")
        }
        // SAFETY: `list` is the list getaddrinfo allocated, freed once here.
        defer { unsafe freeaddrinfo(list) }
        var lastError: TraceError?
        var entry = unsafe list  // SAFETY: the list head, walked below.
        // SAFETY: each `entry` is a node of the list getaddrinfo returned (alive until the defer above).
        while let node = unsafe entry {
            // SAFETY: as above.
            let info = unsafe node.pointee
            unsafe entry = info.ai_next  // SAFETY: the next node of the same list, or nil.
            do throws(TraceError) {
                // SAFETY: `ai_addr` points to `ai_addrlen` bytes of the node's address.
                fd = try unsafe RelaySocket.connect(info.ai_family, info.ai_addr, info.ai_addrlen,
                                                    peer: peer, timeout: timeout)
                return
            } catch {
                lastError = error
            }
        }
        throw lastError ?? TraceError(.notFound, "no address for the relay daemon's host \(host); check the name in --relayd")
    }

    deinit { close() }

    /// Closes the socket (a later send or receive fails).
    package func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    /// A socket of `family` connected to `address` within `timeout`, with send and receive timeouts set.
    @unsafe
    private static func connect(_ family: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t,
                                peer: String, timeout: Duration) throws(TraceError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else {
            throw TraceError(.systemCallFailed, "cannot create a socket for the relay daemon at \(peer)", errno: Errno(rawValue: errno))
        }
        var done = false
        defer { if !done { _ = Glibc.close(fd) } }
        // SAFETY: `address` points to `length` bytes (the caller's promise), read during the call.
        if unsafe Glibc.connect(fd, address, length) != 0 {
            let error = Errno(rawValue: errno)
            guard error == .nowInProgress else {
                throw TraceError(.systemCallFailed, "cannot connect to the relay daemon at \(peer): is lttng-relayd running and listening there?", errno: error)
            }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            // SAFETY: one pollfd, read and written during the call.
            let ready = unsafe poll(&poller, 1, Int32(RelaySocket.milliseconds(timeout)))
            guard ready == 1 else {
                throw TraceError(.systemCallFailed, "connecting to the relay daemon at \(peer) timed out after \(timeout): check the host, the port and any firewall")
            }
            var result: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            // SAFETY: getsockopt writes at most `size` bytes into `result`.
            _ = unsafe getsockopt(fd, SOL_SOCKET, SO_ERROR, &result, &size)
            guard result == 0 else {
                throw TraceError(.systemCallFailed, "cannot connect to the relay daemon at \(peer): is lttng-relayd running and listening there?", errno: Errno(rawValue: result))
            }
        }
        // Blocking from here on, each operation bounded by the timeouts.
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        let microseconds = RelaySocket.milliseconds(timeout) * 1000
        var interval = timeval(tv_sec: microseconds / 1_000_000, tv_usec: microseconds % 1_000_000)
        for option in [SO_SNDTIMEO, SO_RCVTIMEO] {
            // SAFETY: setsockopt reads `interval` (its size given) during the call.
            guard unsafe setsockopt(fd, SOL_SOCKET, option, &interval, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw TraceError(.systemCallFailed, "cannot set a timeout on the socket to \(peer)", errno: Errno(rawValue: errno))
            }
        }
        var one: Int32 = 1
        // SAFETY: setsockopt reads `one` during the call. (Small control messages go out at once.)
        _ = unsafe setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        done = true
        return fd
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }

    /// Sends all of `bytes`.
    func send(_ bytes: ArraySlice<UInt8>, what: String) throws(TraceError) {
        var sent = 0
        while sent < bytes.count {
            guard fd >= 0 else { throw TraceError(.systemCallFailed, "cannot send \(what) to the relay daemon at \(peer): the connection is closed") }
            // SAFETY: the slice's own bytes from `sent` on, read during the call.
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            let error = Errno(rawValue: errno)
            if n < 0 && error == .interrupted { continue }
            if error == .wouldBlock || error == .resourceTemporarilyUnavailable {
                throw TraceError(.systemCallFailed, "sending \(what) to the relay daemon at \(peer) timed out: the relay stopped reading")
            }
            throw TraceError(.systemCallFailed, "cannot send \(what) to the relay daemon at \(peer): the connection was lost", errno: error)
        }
    }

    /// Receives exactly `count` bytes.
    func receive(_ count: Int, what: String) throws(TraceError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            guard fd >= 0 else { throw TraceError(.systemCallFailed, "cannot receive \(what) from the relay daemon at \(peer): the connection is closed") }
            // SAFETY: the array's own bytes from `received` on, written during the call.
            let n = unsafe bytes.withUnsafeMutableBytes { unsafe recv(fd, $0.baseAddress! + received, count - received, 0) }
            if n > 0 { received += n; continue }
            if n == 0 {
                throw TraceError(.systemCallFailed, "the relay daemon at \(peer) closed the connection while \(what) was expected")
            }
            let error = Errno(rawValue: errno)
            if error == .interrupted { continue }
            if error == .wouldBlock || error == .resourceTemporarilyUnavailable {
                throw TraceError(.systemCallFailed, "waiting for \(what) from the relay daemon at \(peer) timed out: the relay does not answer")
            }
            throw TraceError(.systemCallFailed, "cannot receive \(what) from the relay daemon at \(peer): the connection was lost", errno: error)
        }
        return bytes
    }
}
