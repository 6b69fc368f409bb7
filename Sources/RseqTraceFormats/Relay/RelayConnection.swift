import RseqTrace

/// Where a relay daemon listens: `net://HOST[:CONTROL_PORT[:DATA_PORT]]` (LTTng's URL form;
/// the ports default to LTTng's 5342 and 5343). An IPv6 address is written in brackets.
public struct RelayEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The host name or address.
    public var host: String
    /// The port of the control connection (commands, metadata, indexes).
    public var controlPort: UInt16
    /// The port of the data connection (stream packets).
    public var dataPort: UInt16

    /// LTTng's default control port.
    public static let defaultControlPort: UInt16 = 5342
    /// LTTng's default data port.
    public static let defaultDataPort: UInt16 = 5343

    /// Parses `net://HOST[:CONTROL_PORT[:DATA_PORT]]` (also `tcp://`, `net6://`, `tcp6://`).
    /// - Throws: `TraceError` `.invalidConfiguration` naming what is wrong with `url`.
    public init(parsing url: String) throws(TraceError) {
        let schemes = ["net://", "net6://", "tcp://", "tcp6://"]
        guard let scheme = schemes.first(where: { url.hasPrefix($0) }) else {
            throw TraceError(.invalidConfiguration, "relay URL \(url) must start with net:// (net://HOST[:CONTROL_PORT[:DATA_PORT]])")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        let host: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw TraceError(.invalidConfiguration, "relay URL \(url): an IPv6 address needs its closing ]")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            rest = rest[rest.index(after: close)...]
        } else {
            let end = rest.firstIndex(of: ":") ?? rest.endIndex
            host = rest[..<end]
            rest = rest[end...]
        }
        guard !host.isEmpty, !host.contains("/") else {
            throw TraceError(.invalidConfiguration, "relay URL \(url) has no host (net://HOST[:CONTROL_PORT[:DATA_PORT]])")
        }
        var ports: [UInt16] = []
        if !rest.isEmpty {
            guard rest.hasPrefix(":") else { throw TraceError(.invalidConfiguration, "relay URL \(url): unexpected \(rest) after the host") }
            for part in rest.dropFirst().split(separator: ":", omittingEmptySubsequences: false) {
                guard let port = UInt16(part), port > 0 else {
                    throw TraceError(.invalidConfiguration, "relay URL \(url): \(part) is not a port (1-65535)")
                }
                ports.append(port)
            }
            guard ports.count <= 2 else { throw TraceError(.invalidConfiguration, "relay URL \(url) has more than two ports") }
        }
        self.host = String(host)
        self.controlPort = ports.first ?? RelayEndpoint.defaultControlPort
        self.dataPort = ports.count > 1 ? ports[1] : RelayEndpoint.defaultDataPort
    }

    /// `net://HOST:CONTROL_PORT:DATA_PORT`.
    public var description: String {
        "net://\(host.contains(":") ? "[\(host)]" : host):\(controlPort):\(dataPort)"
    }
}

/// A client of `lttng-relayd`'s relay protocol (lttng-tools' `sessiond-comm/relayd.h`): a control
/// connection for commands, metadata and packet indexes, and a data connection for packets.
///
/// It announces protocol 2.10, which every relay daemon from 2.10 on accepts: sessions are
/// created with a name and host name, streams with a path relative to the relay's output
/// directory, and index entries carry the packet sequence numbers. Every message is big-endian.
final class RelayConnection {
    enum Command: UInt32 {
        case addStream = 1, createSession = 2, version = 5, sendMetadata = 6, closeStream = 7, dataPending = 8
        case sendIndex = 13, streamsSent = 16, resetMetadata = 17
    }

    /// The protocol version announced (the relay answers with the lower of it and its own).
    static let announcedMajor: UInt32 = 2
    static let announcedMinor: UInt32 = 10
    /// LTTng's `LTTNG_OK` return code.
    static let ok: UInt32 = 10
    /// Field sizes of the 2.4 create-session and 2.2 add-stream messages.
    static let sessionNameSize = 255, hostNameSize = 64, channelNameSize = 264, pathSize = 4096

    let endpoint: RelayEndpoint
    private let control: RelaySocket
    private let data: RelaySocket
    /// The version the relay answered.
    private(set) var relayVersion: (major: UInt32, minor: UInt32) = (0, 0)

    /// Connects both connections and checks the protocol version.
    init(endpoint: RelayEndpoint, timeout: Duration) throws(TraceError) {
        self.endpoint = endpoint
        control = try RelaySocket(host: endpoint.host, port: endpoint.controlPort, role: "control port", timeout: timeout)
        data = try RelaySocket(host: endpoint.host, port: endpoint.dataPort, role: "data port", timeout: timeout)
        var message: [UInt8] = []
        message.appendBigEndian(RelayConnection.announcedMajor)
        message.appendBigEndian(RelayConnection.announcedMinor)
        let reply = try command(.version, message, replySize: 8, what: "the version handshake")
        relayVersion = (reply.bigEndianUInt32(at: 0), reply.bigEndianUInt32(at: 4))
        guard relayVersion.major == RelayConnection.announcedMajor, relayVersion.minor >= 8 else {
            throw TraceError(.unsupportedVersion, "the relay daemon at \(endpoint) speaks relay protocol \(relayVersion.major).\(relayVersion.minor); rseqtrace needs 2.8 or later (lttng-relayd 2.8+)")
        }
    }

    /// Closes both connections.
    func close() {
        control.close()
        data.close()
    }

    /// Sends a control command and reads its `replySize`-byte reply (none when 0).
    @discardableResult
    private func command(_ command: Command, _ payload: [UInt8], replySize: Int, what: String) throws(TraceError) -> [UInt8] {
        var message: [UInt8] = []
        message.reserveCapacity(24 + payload.count)
        message.appendBigEndian(UInt64(0))                      // circuit_id
        message.appendBigEndian(UInt64(payload.count))          // data_size
        message.appendBigEndian(command.rawValue)               // cmd
        message.appendBigEndian(UInt32(0))                      // cmd_version
        message.append(contentsOf: payload)
        try control.send(message[...], what: what)
        return replySize == 0 ? [] : try control.receive(replySize, what: "the reply to \(what)")
    }

    /// Sends a command whose reply is a bare return code, and checks it.
    private func checkedCommand(_ command: Command, _ payload: [UInt8], what: String) throws(TraceError) {
        let reply = try self.command(command, payload, replySize: 4, what: what)
        let code = reply.bigEndianUInt32(at: 0)
        guard code == RelayConnection.ok else {
            throw TraceError(.systemCallFailed, "the relay daemon at \(endpoint) refused \(what) (LTTng error code \(code)); see lttng-relayd's log")
        }
    }

    /// Creates the session the streams belong to; `liveTimer` (microseconds, 0: not live) makes
    /// it readable by live viewers. Returns the relay's session id.
    @discardableResult
    func createSession(name: String, hostname: String, liveTimer: UInt32) throws(TraceError) -> UInt64 {
        var message: [UInt8] = []
        message.appendFixedString(name, size: RelayConnection.sessionNameSize)
        message.appendFixedString(hostname, size: RelayConnection.hostNameSize)
        message.appendBigEndian(liveTimer)
        message.appendBigEndian(UInt32(0))                      // snapshot
        let reply = try command(.createSession, message, replySize: 12, what: "creating session \(name)")
        let code = reply.bigEndianUInt32(at: 8)
        guard code == RelayConnection.ok else {
            throw TraceError(.systemCallFailed, "the relay daemon at \(endpoint) refused to create session \(name) (LTTng error code \(code)); see lttng-relayd's log")
        }
        return reply.bigEndianUInt64(at: 0)
    }

    /// Adds a stream (`channel` is `metadata` for the metadata stream) whose files go to `path`
    /// under the relay's output directory; returns its handle.
    func addStream(channel: String, path: String) throws(TraceError) -> UInt64 {
        var message: [UInt8] = []
        message.appendFixedString(channel, size: RelayConnection.channelNameSize)
        message.appendFixedString(path, size: RelayConnection.pathSize)
        message.appendBigEndian(UInt64(0))                      // tracefile_size: unlimited
        message.appendBigEndian(UInt64(0))                      // tracefile_count
        let reply = try command(.addStream, message, replySize: 12, what: "adding stream \(channel)")
        let code = reply.bigEndianUInt32(at: 8)
        guard code == RelayConnection.ok else {
            throw TraceError(.systemCallFailed, "the relay daemon at \(endpoint) refused stream \(channel) at \(path) (LTTng error code \(code)); see lttng-relayd's log")
        }
        return reply.bigEndianUInt64(at: 0)
    }

    /// Says every stream of the session was added (live viewers see them from then on).
    func streamsSent() throws(TraceError) {
        try checkedCommand(.streamsSent, [], what: "the end of the stream list")
    }

    /// Appends `text` to the metadata stream `handle` (no reply).
    func sendMetadata(handle: UInt64, _ text: ArraySlice<UInt8>) throws(TraceError) {
        var message: [UInt8] = []
        message.reserveCapacity(12 + text.count)
        message.appendBigEndian(handle)
        message.appendBigEndian(UInt32(0))                      // padding_size
        message.append(contentsOf: text)
        try command(.sendMetadata, message, replySize: 0, what: "the metadata")
    }

    /// Empties the metadata stream `handle` (its text is sent again whole after it).
    func resetMetadata(handle: UInt64, version: UInt64) throws(TraceError) {
        var message: [UInt8] = []
        message.appendBigEndian(handle)
        message.appendBigEndian(version)
        try checkedCommand(.resetMetadata, message, what: "resetting the metadata")
    }

    /// Sends one packet of stream `handle` on the data connection, numbered `sequence` (0, 1, ...
    /// per stream).
    func sendPacket(handle: UInt64, sequence: UInt64, _ bytes: ArraySlice<UInt8>) throws(TraceError) {
        var header: [UInt8] = []
        header.reserveCapacity(32)
        header.appendBigEndian(UInt64(0))                       // circuit_id
        header.appendBigEndian(handle)                          // stream_id
        header.appendBigEndian(sequence)                        // net_seq_num
        header.appendBigEndian(UInt32(bytes.count))             // data_size
        header.appendBigEndian(UInt32(0))                       // padding_size
        try data.send(header[...], what: "a packet header")
        try data.send(bytes, what: "a packet")
    }

    /// Sends the index entry of packet `sequence` of stream `handle` (the relay writes it to the
    /// stream's index file, where live viewers find the packet).
    func sendIndex(handle: UInt64, sequence: UInt64, _ entry: CTFPacketIndexEntry) throws(TraceError) {
        var message: [UInt8] = []
        message.reserveCapacity(80)
        for value in [handle, sequence, entry.packetBits, entry.contentBits, entry.begin, entry.end,
                      entry.discarded, entry.streamID, entry.streamInstanceID, entry.sequence] {
            message.appendBigEndian(value)
        }
        try checkedCommand(.sendIndex, message, what: "a packet index")
    }

    /// Sends a live beacon for stream `handle`: an index entry without a packet (its packet size
    /// 0) saying that the stream holds no event before `timestampEnd` other than those already
    /// sent, so that a live viewer reading every stream in time order need not wait for this one.
    /// The relay takes it only once the stream has a packet; `lastSequence` is that of the last
    /// packet sent.
    func sendBeacon(handle: UInt64, lastSequence: UInt64, timestampEnd: UInt64) throws(TraceError) {
        var message: [UInt8] = []
        message.reserveCapacity(80)
        for value in [handle, lastSequence, 0, 0, 0, timestampEnd, 0, 0, 0, 0] as [UInt64] {
            message.appendBigEndian(value)
        }
        try checkedCommand(.sendIndex, message, what: "a live beacon")
    }

    /// Whether the relay has not yet written packet `lastSequence` of stream `handle` (and every
    /// packet and index entry before it) to its files.
    func dataPending(handle: UInt64, lastSequence: UInt64) throws(TraceError) -> Bool {
        var message: [UInt8] = []
        message.appendBigEndian(handle)
        message.appendBigEndian(lastSequence)
        let code = try command(.dataPending, message, replySize: 4, what: "a data-pending check").bigEndianUInt32(at: 0)
        guard code <= 1 else {
            throw TraceError(.systemCallFailed, "the relay daemon at \(endpoint) does not know a stream it accepted (data-pending check); see lttng-relayd's log")
        }
        return code == 1
    }

    /// Closes stream `handle` once the relay has its packets up to `lastSequence` (UInt64.max:
    /// none, or a metadata stream).
    func closeStream(handle: UInt64, lastSequence: UInt64) throws(TraceError) {
        var message: [UInt8] = []
        message.appendBigEndian(handle)
        message.appendBigEndian(lastSequence)
        try checkedCommand(.closeStream, message, what: "closing a stream")
    }
}

extension Array where Element == UInt8 {
    /// Appends `text` as a NUL-padded field of `size` bytes (cut to `size - 1` bytes).
    mutating func appendFixedString(_ text: String, size: Int) {
        let bytes = Array(text.utf8.prefix(size - 1))
        append(contentsOf: bytes)
        append(contentsOf: repeatElement(0, count: size - bytes.count))
    }

    func bigEndianUInt32(at offset: Int) -> UInt32 {
        self[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    func bigEndianUInt64(at offset: Int) -> UInt64 {
        self[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
