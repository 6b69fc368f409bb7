#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats

/// Drains a trace buffer round by round and, with an output directory, writes what it drains as
/// a CTF trace (event schemas come from the buffer's registry, read when the writer starts and again whenever a record carries an id it has not seen).
final class TraceRecorder {
    let buffer: SharedTraceBuffer
    let drainer: TraceDrainer
    private(set) var writer: CTFTraceWriter?

    /// - Parameter output: a directory prepared with `CTFTraceWriter.prepareDirectory`, or nil.
    init(buffer: SharedTraceBuffer, output: String?, traceName: String, procname: String, pid: Int32) throws(TraceError) {
        self.buffer = buffer
        self.drainer = TraceDrainer(buffer: buffer)
        if let output {
            writer = try CTFTraceWriter(directory: output, description: CTFTraceDescription(
                uuid: randomUUID(), clock: buffer.clock, bootID: buffer.bootID, hostname: hostname(),
                traceName: traceName, procname: procname, pid: pid,
                cpuRingCount: buffer.layout.cpuRingCount, schemas: try buffer.registeredEvents()))
        }
    }

    /// Drains every ring once, passing each record to `visit` and to the trace.
    @discardableResult
    func round(quiescent: Bool = false, _ visit: (DrainedRecord) -> Void = { _ in }) throws(TraceError) -> Int {
        guard let writer else { return try drainer.drainOnce(quiescent: quiescent, visit) }
        var failure: TraceError?
        let count = try drainer.drainOnce(quiescent: quiescent) { record in
            visit(record)
            guard failure == nil else { return }
            do throws(TraceError) {
                // A producer registers an event before publishing its first record, so a record
                // of an id not seen yet means the registry has grown since the round began.
                if !writer.hasDecided(record.eventID) { writer.updateSchemas(try buffer.registeredEvents()) }
                try writer.append(ring: record.ring, eventID: record.eventID, cycles: record.timestamp,
                                  payload: record.bytes)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        for (ring, statistics) in drainer.statistics.enumerated() {
            try writer.noteLost(ring: ring, total: statistics.lost)
        }
        return count
    }

    /// Writes the remaining packets and the metadata.
    func finish() throws(TraceError) -> CTFTraceWriter.Summary? {
        try writer?.finish()
    }
}

func hostname() -> String {
    var name = [CChar](repeating: 0, count: 256)
    // SAFETY: gethostname writes at most `count` bytes into the array.
    guard unsafe gethostname(&name, name.count) == 0 else { return "localhost" }
    return String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A random version-4 UUID.
func randomUUID() -> [UInt8] {
    var bytes = SystemInfo.randomBytes(16)
    bytes[6] = bytes[6] & 0x0F | 0x40
    bytes[8] = bytes[8] & 0x3F | 0x80
    return bytes
}
