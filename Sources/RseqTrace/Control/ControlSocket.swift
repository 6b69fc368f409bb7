#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import SystemPackage

/// A `SOCK_SEQPACKET` Unix socket on an abstract address (no file, nothing to leak): one
/// ``ControlMessage`` per packet, descriptors passed with `SCM_RIGHTS`, the peer's identity taken
/// from the kernel (`SO_PEERCRED`). Owns its descriptor; used by one thread at a time.
package final class ControlSocket {
    /// The socket's descriptor (close-on-exec).
    package let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }

    /// Listens on the abstract address `name` (non-blocking).
    /// - Throws: `.alreadyExists` when another socket holds the name, `.systemCallFailed` otherwise.
    package static func listen(name: String) throws(TraceError) -> ControlSocket {
        let bytes = Array(name.utf8)
        // SAFETY: the call reads `count` bytes of the array, valid for its duration.
        let fd = unsafe bytes.withUnsafeBufferPointer { unsafe rseqtrace_control_listen($0.baseAddress, $0.count) }
        guard fd >= 0 else {
            if -fd == EADDRINUSE {
                throw TraceError(.alreadyExists, "the control socket name '@\(name)' is taken", errno: Errno(rawValue: -fd))
            }
            throw TraceError(.systemCallFailed, "cannot listen on the control socket '@\(name)'", errno: Errno(rawValue: -fd))
        }
        return ControlSocket(descriptor: fd)
    }

    /// Accepts one pending connection, or returns nil when none is pending.
    package func accept() throws(TraceError) -> ControlSocket? {
        let fd = rseqtrace_control_accept(descriptor)
        guard fd >= 0 else {
            if -fd == EAGAIN || -fd == EWOULDBLOCK || -fd == ECONNABORTED || -fd == EINTR { return nil }
            throw TraceError(.systemCallFailed, "cannot accept a connection on the control socket", errno: Errno(rawValue: -fd))
        }
        return ControlSocket(descriptor: fd)
    }

    /// Connects to the control socket `name`; every later send and receive waits at most
    /// `timeoutMilliseconds`.
    /// - Throws: `.notFound` when nothing listens there (the process exited), `.systemCallFailed`.
    package static func connect(name: String, timeoutMilliseconds: Int) throws(TraceError) -> ControlSocket {
        let bytes = Array(name.utf8)
        let timeout = Int32(clamping: max(1, timeoutMilliseconds))
        // SAFETY: the call reads `count` bytes of the array, valid for its duration.
        let fd = unsafe bytes.withUnsafeBufferPointer { unsafe rseqtrace_control_connect($0.baseAddress, $0.count, timeout) }
        guard fd >= 0 else {
            if -fd == ECONNREFUSED || -fd == ENOENT {
                throw TraceError(.notFound, "nothing listens on the control socket '@\(name)' any more: the process has exited",
                                 errno: Errno(rawValue: -fd))
            }
            throw TraceError(.systemCallFailed, "cannot connect to the control socket '@\(name)'", errno: Errno(rawValue: -fd))
        }
        return ControlSocket(descriptor: fd)
    }

    /// Sends `message`, with `passing` attached as a descriptor when given.
    /// - Throws: `.notFound` when the peer has gone, `.systemCallFailed` (a timeout is `EAGAIN`).
    package func send(_ message: ControlMessage, passing passed: Int32? = nil) throws(TraceError) {
        let bytes = message.encoded()
        guard bytes.count <= ControlMessage.maximumSize else {
            throw TraceError(.invalidConfiguration, "control message '\(message.verb)' is \(bytes.count) bytes, above the protocol's \(ControlMessage.maximumSize)")
        }
        // SAFETY: the call reads `count` bytes of the array, valid for its duration.
        let sent = unsafe bytes.withUnsafeBufferPointer { unsafe rseqtrace_control_send(descriptor, $0.baseAddress, $0.count, passed ?? -1) }
        guard sent == bytes.count else {
            if sent < 0, -sent == EPIPE || -sent == ECONNRESET {
                throw TraceError(.notFound, "the other end of the control connection has gone (sending '\(message.verb)')", errno: Errno(rawValue: Int32(-sent)))
            }
            if sent < 0, -sent == EAGAIN {
                throw TraceError(.systemCallFailed, "the traced process did not take the control message '\(message.verb)' in time: is it stopped (SIGSTOP, a debugger)?", errno: Errno(rawValue: Int32(-sent)))
            }
            throw TraceError(.systemCallFailed, "cannot send control message '\(message.verb)'", errno: sent < 0 ? Errno(rawValue: Int32(-sent)) : nil)
        }
    }

    /// Receives one message and the descriptor passed with it; nil when the peer closed the
    /// connection. The caller owns the descriptor.
    /// - Throws: `.corrupted` for a malformed or oversized message, `.systemCallFailed` (a timeout
    ///   is `EAGAIN`).
    package func receive() throws(TraceError) -> (message: ControlMessage, descriptor: FileDescriptor?)? {
        var bytes = [UInt8](repeating: 0, count: ControlMessage.maximumSize + 1)
        var passed: Int32 = -1
        // SAFETY: the call writes at most `count` bytes into the array and one int into `passed`.
        let received = unsafe bytes.withUnsafeMutableBufferPointer { unsafe rseqtrace_control_receive(descriptor, $0.baseAddress, $0.count, &passed) }
        guard received >= 0 else {
            if -received == ECONNRESET { return nil }
            if -received == EAGAIN {
                throw TraceError(.systemCallFailed, "no answer on the control connection in time: is the traced process stopped (SIGSTOP, a debugger)?",
                                 errno: Errno(rawValue: Int32(-received)))
            }
            if -received == EMSGSIZE || -received == EBADMSG {
                throw TraceError(.corrupted, "the control connection delivered an oversized message or more than one descriptor", errno: Errno(rawValue: Int32(-received)))
            }
            throw TraceError(.systemCallFailed, "cannot receive on the control connection", errno: Errno(rawValue: Int32(-received)))
        }
        let file = passed >= 0 ? FileDescriptor(rawValue: passed) : nil
        guard received > 0 else {
            try? file?.close()
            return nil
        }
        do throws(TraceError) {
            return (try ControlMessage(decoding: bytes.prefix(received)), file)
        } catch {
            try? file?.close()
            throw error
        }
    }

    /// The connected peer's process id and user id, as the kernel recorded them at connection.
    package func peer() throws(TraceError) -> (pid: Int32, uid: UInt32) {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        // SAFETY: `pid` and `uid` are locals the call fills.
        let rc = unsafe rseqtrace_control_peer(descriptor, &pid, &uid)
        guard rc == 0 else {
            throw TraceError(.systemCallFailed, "cannot read the credentials of the control connection's peer", errno: Errno(rawValue: -rc))
        }
        return (pid, uid)
    }
}
