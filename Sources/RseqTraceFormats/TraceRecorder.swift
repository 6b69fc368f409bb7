#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer

/// Drains a trace buffer round by round and, with an output directory, writes what it drains as
/// a CTF trace (event schemas come from the buffer's registry, read when the writer starts and
/// again whenever a record carries an id it has not seen). Used by `rseqtrace` and the benchmarks.
public final class TraceRecorder {
    /// The buffer being drained.
    package let buffer: SharedTraceBuffer
    /// The drainer (its statistics are the recording's).
    package let drainer: TraceDrainer
    /// The CTF writer, when recording to a directory.
    public private(set) var writer: CTFTraceWriter?
    /// The longest time a drained record waits in the writer before it reaches its stream file
    /// (`CTFTraceWriter.checkpoint()`): what a recorder killed without warning can lose.
    public var checkpointInterval: Duration = .seconds(1)
    private var lastCheckpoint = ContinuousClock.now

    /// - Parameters:
    ///   - output: a directory prepared with `CTFTraceWriter.prepareDirectory`, or nil.
    ///   - hostname: the trace's `hostname`; nil: this machine's.
    public init(buffer: SharedTraceBuffer, output: String?, traceName: String, procname: String, pid: Int32,
                hostname: String? = nil) throws(TraceError) {
        self.buffer = buffer
        self.drainer = TraceDrainer(buffer: buffer)
        if let output {
            writer = try CTFTraceWriter(directory: output, description: CTFTraceDescription(
                uuid: TraceRecorder.randomUUID(), clock: buffer.clock, bootID: buffer.bootID,
                hostname: hostname ?? TraceRecorder.hostname(),
                traceName: traceName, procname: procname, pid: pid,
                cpuRingCount: buffer.layout.cpuRingCount, schemas: try buffer.registeredEvents()))
            // A producer registers an event before publishing its first record, so a record of an
            // id without a schema yet means the registry has grown since the writer read it.
            writer?.schemaSource = { () throws(TraceError) in try buffer.registeredEvents() }
        }
    }

    /// Drains every ring once, passing each record to `visit` and to the trace; returns the
    /// number of records drained. When `checkpointInterval` has passed since the last
    /// checkpoint, writes the pending packets.
    @discardableResult
    public func round(quiescent: Bool = false, _ visit: (borrowing DrainedRecord) -> Void = { _ in }) throws(TraceError) -> Int {
        guard let writer else { return try drainer.drainOnce(quiescent: quiescent, visit) }
        var failure: TraceError?
        let count = try drainer.drainOnce(quiescent: quiescent) { record in
            visit(record)
            guard failure == nil else { return }
            do throws(TraceError) {
                // (The writer reads new schemas from the registry itself: see `schemaSource`.)
                // The payload goes from the ring to the stream without an intermediate array.
                try record.withPayload { (payload) throws(TraceError) in
                    try writer.append(ring: record.ring, eventID: record.eventID, cycles: record.timestamp,
                                      payload: payload)
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        for (ring, statistics) in drainer.statistics.enumerated() {
            try writer.noteLost(ring: ring, total: statistics.lost)
        }
        let now = ContinuousClock.now
        if now - lastCheckpoint >= checkpointInterval {
            try writer.checkpoint()
            lastCheckpoint = now
        }
        return count
    }

    /// Writes the remaining packets and the metadata.
    public func finish() throws(TraceError) -> CTFTraceWriter.Summary? {
        try writer?.finish()
    }

    /// This machine's host name, or `localhost`.
    package static func hostname() -> String {
        var name = [CChar](repeating: 0, count: 256)
        // SAFETY: gethostname writes at most `count` bytes into the array.
        guard unsafe gethostname(&name, name.count) == 0 else { return "localhost" }
        return String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A random version-4 UUID.
    package static func randomUUID() -> [UInt8] {
        var bytes = SystemInfo.randomBytes(16)
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        return bytes
    }
}
