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
///
/// A live session (`liveTimer` above zero) can also be read while it is recorded, with
/// `babeltrace2 -i lttng-live net://HOST:5344/host/<hostname>/<session>`: the writer then
/// closes a packet of every stream at least once per live timer period (`CTFTraceWriter`'s
/// `checkpoint()`), and the sink sends a beacon (`sendBeacon(ring:timestampEnd:)`) for each
/// stream that had no packet during the period. The relay does not take a metadata text changed
/// in place for a live session: such a sink appends only what the text gains (`liveAddition`):
/// new `env` entries (thread names) in an `env` block of their own, and new event declarations.
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
    /// The live timer of the session: the longest a live viewer waits for what was recorded
    /// (zero: the session is not live).
    public let liveTimer: Duration
    /// Whether live viewers can read the session while it is recorded.
    public var isLive: Bool { liveTimer > .zero }

    /// LTTng's default live viewer port (`lttng-relayd -L`).
    public static let defaultLivePort: UInt16 = 5344

    /// Where live viewers read the session, `net://HOST:PORT/host/HOSTNAME/SESSION` (the relay's
    /// host, its live port `livePort`); nil when the session is not live.
    public func liveURL(livePort: UInt16 = RelayTraceSink.defaultLivePort) -> String? {
        guard isLive else { return nil }
        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        return "net://\(host):\(livePort)/host/\(hostname)/\(sessionName)"
    }

    private let connection: RelayConnection
    private let timeout: Duration
    private let metadataHandle: UInt64
    private var streams: [(handle: UInt64, next: UInt64)]
    /// Metadata text not sent yet (sent before the next packet, so that a description completed
    /// before the first packet reaches the relay as one text).
    private var pendingMetadata: String?
    private var sentMetadata: [UInt8] = []
    private var metadataVersion: UInt64 = 0
    /// When the last packet was sent.
    private var lastPacketSent = ContinuousClock.now

    /// Connects to the relay daemon at `endpoint`, creates session `sessionName` for `hostname`
    /// and its streams (the metadata and rings `0...ringCount`).
    /// - Parameters:
    ///   - liveTimer: the live timer of the session (zero, the default: not live), at most 4294 s.
    ///   - timeout: the longest wait for connecting and for each send or reply.
    /// - Throws: `TraceError` saying what failed (unreachable, refused, incompatible relay).
    public init(endpoint: RelayEndpoint, sessionName: String, hostname: String, ringCount: Int,
                liveTimer: Duration = .zero, timeout: Duration = .seconds(5)) throws(TraceError) {
        // Compared before it is converted: a huge duration would overflow the microseconds.
        guard liveTimer >= .zero, liveTimer <= .microseconds(Int64(UInt32.max)) else {
            throw TraceError(.invalidConfiguration, "live timer \(liveTimer) for the relay daemon at \(endpoint) must be between 0 and 4294 s")
        }
        let liveMicroseconds = liveTimer.components.seconds * 1_000_000 + liveTimer.components.attoseconds / 1_000_000_000_000
        self.liveTimer = liveTimer
        self.endpoint = endpoint
        self.sessionName = RelayTraceSink.pathSafe(sessionName)
        self.hostname = RelayTraceSink.pathSafe(hostname)
        self.path = "\(self.hostname)/\(self.sessionName)-\(RelayTraceSink.localDateTime())"
        self.timeout = timeout
        connection = try RelayConnection(endpoint: endpoint, timeout: timeout)
        do throws(TraceError) {
            try connection.createSession(name: self.sessionName, hostname: self.hostname, liveTimer: UInt32(liveMicroseconds))
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
        if isLive && !sentMetadata.isEmpty {
            let addition = RelayTraceSink.liveAddition(sent: sentMetadata, bytes)
            guard !addition.isEmpty else { return }
            try connection.sendMetadata(handle: metadataHandle, addition[...])
            sentMetadata += addition
            return
        }
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

    /// What a live session's metadata gains when its text becomes `text`, the relay having `sent`:
    /// after the CTF signature line (a TSDL comment: a live viewer reads each addition as a text of
    /// its own and wants it to open with the signature), an `env` block of the entries of `text`
    /// whose names `sent` lacks (babeltrace2 adds a later env block's entries to the trace's), then
    /// each `event` declaration of `text` that `sent` lacks; empty when there is none. The relay
    /// takes only additions for a live session, so an entry whose value changed keeps the value
    /// first sent.
    package static func liveAddition(sent: [UInt8], _ text: [UInt8]) -> [UInt8] {
        let sentBlocks = Set(eventDeclarations(sent))
        var addition: [UInt8] = []
        let sentNames = Set(environmentEntries(sent).map(\.name))
        let entries = environmentEntries(text).filter { !sentNames.contains($0.name) }
        if !entries.isEmpty {
            addition.append(contentsOf: "env {\n".utf8)
            for entry in entries { addition.append(contentsOf: (entry.line + "\n").utf8) }
            addition.append(contentsOf: "};\n\n".utf8)
        }
        for block in eventDeclarations(text) where !sentBlocks.contains(block) {
            addition.append(contentsOf: block)
            addition.append(contentsOf: "\n".utf8)
        }
        guard !addition.isEmpty else { return [] }
        return Array((CTFMetadata.signature + "\n\n").utf8) + addition
    }

    /// The entries of the `env` blocks of a metadata text, each a line `\tname = value;` of its
    /// own (`CTFMetadata.text`'s layout), in order.
    package static func environmentEntries(_ text: [UInt8]) -> [(name: String, line: String)] {
        var entries: [(name: String, line: String)] = []
        var inBlock = false
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if !inBlock {
                inBlock = line == "env {"
            } else if line == "};" {
                inBlock = false
            } else if let equals = line.firstRange(of: " = ") {
                let name = line[..<equals.lowerBound].drop { $0 == "\t" || $0 == " " }
                entries.append((String(name), String(line)))
            }
        }
        return entries
    }

    /// The `event { ... };` declarations of a metadata text, each from its `event {` line to its
    /// closing `};` line (`CTFMetadata.text`'s layout).
    package static func eventDeclarations(_ text: [UInt8]) -> [ArraySlice<UInt8>] {
        let opening = Array("\nevent {\n".utf8), closing = Array("\n};\n".utf8)
        func find(_ pattern: [UInt8], from start: Int) -> Int? {
            var index = start
            while index + pattern.count <= text.count {
                if text[index] == pattern[0] && text[index..<(index + pattern.count)].elementsEqual(pattern) { return index }
                index += 1
            }
            return nil
        }
        var blocks: [ArraySlice<UInt8>] = []
        var from = 0
        while let open = find(opening, from: from), let close = find(closing, from: open + opening.count) {
            blocks.append(text[(open + 1)..<(close + closing.count)])
            from = close + 1
        }
        return blocks
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
            lastPacketSent = ContinuousClock.now
        }
        if sent {
            deliveredPackets += 1
        } else {
            undeliveredEvents += entry.events
        }
    }

    /// Sends a live beacon for stream `ring`, which had no packet since the last one: it holds no
    /// event before `timestampEnd` (trace clock nanoseconds) that the relay has not received. Does
    /// nothing for a session that is not live or a stream without a packet yet (the relay ignores
    /// a beacon before a stream's first packet).
    package func sendBeacon(ring: Int, timestampEnd: UInt64) {
        guard isLive, streams[ring].next > 0 else { return }
        _ = sending { () throws(TraceError) in
            try connection.sendBeacon(handle: streams[ring].handle, lastSequence: streams[ring].next - 1,
                                      timestampEnd: timestampEnd)
        }
    }

    /// Sends the last metadata, waits until the relay has written every packet to its files (at
    /// most the timeout), and closes every stream. A live session's streams close two live timer
    /// periods (at most the timeout) after the last packet was sent: a live viewer that asks the relay for new streams
    /// once every stream is closed ends the session there, whatever it has not read yet, so the
    /// viewers that keep up read the last packets first.
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
            let linger = lastPacketSent + min(liveTimer * 2, timeout) - ContinuousClock.now
            if isLive && linger > .zero {
                var pause = timespec(tv_sec: Int(linger.components.seconds),
                                     tv_nsec: Int(linger.components.attoseconds / 1_000_000_000))
                // SAFETY: nanosleep reads `pause` during the call (no remainder wanted).
                _ = unsafe nanosleep(&pause, nil)
            }
            try connection.closeStream(handle: metadataHandle, lastSequence: .max)
            for stream in streams {
                try connection.closeStream(handle: stream.handle, lastSequence: stream.next == 0 ? .max : stream.next - 1)
            }
        }
        connection.close()
    }
}
