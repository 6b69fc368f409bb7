#if canImport(Glibc)
import Glibc
#endif
import RseqTrace

/// Sends a trace to `lttng-relayd`: one relay session holding a metadata stream and one stream
/// per ring, written by the relay under its output directory as
/// `<hostname>/<session>-<yyyymmdd>-<hhmmss>/` (the layout of an LTTng session).
///
/// A relay that cannot be reached or refuses the session makes `init` throw, before anything is
/// recorded. A connection lost later does not throw: the sink keeps the error in `failure`,
/// stops sending, and the writer goes on (with its local directory, if it has one); packets not
/// delivered are counted in `undeliveredEvents`. The relay closes the streams of a lost
/// connection, so its copy ends cleanly at the last packet it received.
public final class RelayTraceSink: CTFPacketSink {
    /// The relay daemon.
    public let endpoint: RelayEndpoint
    /// The relay's session name.
    public let sessionName: String
    /// The host name the relay files the session under.
    public let hostname: String
    /// Where the relay writes the trace, relative to its output directory.
    public let path: String
    /// The first error that ended the connection, nil while it works.
    public private(set) var failure: TraceError?
    /// Events in the packets that did not reach the relay (after `failure`).
    public private(set) var undeliveredEvents: UInt64 = 0
    /// Packets the relay received.
    public private(set) var deliveredPackets: UInt64 = 0

    private let connection: RelayConnection
    private let timeout: Duration
    private let metadataHandle: UInt64
    private var streams: [(handle: UInt64, next: UInt64)]
    /// Metadata text not sent yet (sent before the next packet, so that a description completed
    /// before the first packet reaches the relay as one text).
    private var pendingMetadata: String?
    private var sentMetadata: [UInt8] = []
    private var metadataVersion: UInt64 = 0

    /// Connects to the relay daemon at `endpoint`, creates session `sessionName` for `hostname`
    /// and its streams (the metadata and rings `0...ringCount`).
    /// - Parameter timeout: the longest wait for connecting and for each send or reply.
    /// - Throws: `TraceError` saying what failed (unreachable, refused, incompatible relay).
    public init(endpoint: RelayEndpoint, sessionName: String, hostname: String, ringCount: Int,
                timeout: Duration = .seconds(5)) throws(TraceError) {
        self.endpoint = endpoint
        self.sessionName = RelayTraceSink.pathSafe(sessionName)
        self.hostname = RelayTraceSink.pathSafe(hostname)
        self.path = "\(self.hostname)/\(self.sessionName)-\(RelayTraceSink.localDateTime())"
        self.timeout = timeout
        connection = try RelayConnection(endpoint: endpoint, timeout: timeout)
        do throws(TraceError) {
            try connection.createSession(name: self.sessionName, hostname: self.hostname, liveTimer: 0)
            metadataHandle = try connection.addStream(channel: "metadata", path: path)
            var streams: [(handle: UInt64, next: UInt64)] = []
            for ring in 0...ringCount {
                streams.append((try connection.addStream(channel: "channel0_\(ring)", path: path), 0))
            }
            self.streams = streams
            try connection.streamsSent()
        } catch {
            connection.close()
            throw error
        }
    }

    deinit { connection.close() }

    /// `text` with every character other than letters, digits, `-`, `_` and `.` replaced by `_`.
    static func pathSafe(_ text: String) -> String {
        let safe = String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "_" })
        return safe.isEmpty || safe.allSatisfy({ $0 == "." }) ? "rseqtrace" : String(safe.prefix(200))
    }

    /// The local date and time as LTTng names session directories: `yyyymmdd-hhmmss`.
    static func localDateTime() -> String {
        var now = time(nil)
        // SAFETY: a zeroed tm (its zone pointer null), filled by localtime_r.
        var parts = unsafe tm()
        // SAFETY: localtime_r reads `now` and writes `parts` during the call.
        _ = unsafe localtime_r(&now, &parts)
        // SAFETY: plain integer fields of `parts`.
        let fields = unsafe [parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(fields[0])\(two(fields[1]))\(two(fields[2]))-\(two(fields[3]))\(two(fields[4]))\(two(fields[5]))"
    }

    package func writeMetadata(_ text: String) throws(TraceError) {
        pendingMetadata = text
    }

    /// Sends the pending metadata: what it adds to the text already sent, or, when the text
    /// changed in place, the whole text after a metadata reset.
    private func sendPendingMetadata() throws(TraceError) {
        guard let text = pendingMetadata else { return }
        pendingMetadata = nil
        let bytes = Array(text.utf8)
        if bytes.starts(with: sentMetadata) {
            if bytes.count > sentMetadata.count {
                try connection.sendMetadata(handle: metadataHandle, bytes[sentMetadata.count...])
            }
        } else {
            metadataVersion += 1
            try connection.resetMetadata(handle: metadataHandle, version: metadataVersion)
            try connection.sendMetadata(handle: metadataHandle, bytes[...])
        }
        sentMetadata = bytes
    }

    /// Runs `body`; a failure ends the connection and is kept in `failure`.
    private func sending(_ body: () throws(TraceError) -> Void) -> Bool {
        guard failure == nil else { return false }
        do throws(TraceError) {
            try body()
            return true
        } catch {
            failure = error
            connection.close()
            return false
        }
    }

    package func writePacket(ring: Int, _ bytes: ArraySlice<UInt8>, entry: CTFPacketIndexEntry) throws(TraceError) {
        let sent = sending { () throws(TraceError) in
            try sendPendingMetadata()
            let stream = streams[ring]
            try connection.sendPacket(handle: stream.handle, sequence: stream.next, bytes)
            try connection.sendIndex(handle: stream.handle, sequence: stream.next, entry)
            streams[ring].next += 1
        }
        if sent {
            deliveredPackets += 1
        } else {
            undeliveredEvents += entry.events
        }
    }

    /// Sends the last metadata, waits until the relay has written every packet to its files (at
    /// most the timeout), and closes every stream.
    package func close() throws(TraceError) {
        _ = sending { () throws(TraceError) in
            try sendPendingMetadata()
            let deadline = ContinuousClock.now + timeout
            for stream in streams where stream.next > 0 {
                while try connection.dataPending(handle: stream.handle, lastSequence: stream.next - 1) {
                    guard ContinuousClock.now < deadline else {
                        throw TraceError(.systemCallFailed, "the relay daemon at \(endpoint) had not written the trace's last packets \(timeout) after they were sent: its copy may lack them")
                    }
                    var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
                    // SAFETY: nanosleep reads `pause` during the call (no remainder wanted).
                    _ = unsafe nanosleep(&pause, nil)
                }
            }
            try connection.closeStream(handle: metadataHandle, lastSequence: .max)
            for stream in streams {
                try connection.closeStream(handle: stream.handle, lastSequence: stream.next == 0 ? .max : stream.next - 1)
            }
        }
        connection.close()
    }
}
