#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats

/// Drains a trace buffer round by round and, with an output directory, writes it as a CTF trace.
/// (The pattern of `TraceRecorder` in Tools/rseqtrace, which an executable target cannot share.)
final class BenchRecorder {
    let buffer: SharedTraceBuffer
    let drainer: TraceDrainer
    private(set) var writer: CTFTraceWriter?

    /// - Parameter output: a directory that does not exist yet or is empty, or nil for no trace.
    init(buffer: SharedTraceBuffer, output: String?) throws(TraceError) {
        self.buffer = buffer
        self.drainer = TraceDrainer(buffer: buffer)
        if let output {
            writer = try CTFTraceWriter(directory: output, description: CTFTraceDescription(
                uuid: SystemInfo.randomBytes(16), clock: buffer.clock, bootID: buffer.bootID,
                hostname: "localhost", traceName: "rseqtrace-bench", procname: "rseqtrace-bench", pid: getpid(),
                cpuRingCount: buffer.layout.cpuRingCount, schemas: try buffer.registeredEvents()))
        }
    }

    /// Drains every ring once into the trace; returns the number of records drained.
    @discardableResult
    func round(quiescent: Bool = false) throws(TraceError) -> Int {
        guard let writer else { return try drainer.drainOnce(quiescent: quiescent) { _ in } }
        var failure: TraceError?
        let count = try drainer.drainOnce(quiescent: quiescent) { record in
            guard failure == nil else { return }
            do throws(TraceError) {
                // A record of an id not seen yet means the registry has grown since the round began.
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
