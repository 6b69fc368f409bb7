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
    /// The CTF writer, when recording to a directory or a relay daemon.
    public private(set) var writer: CTFTraceWriter?
    /// The longest time a drained record waits in the writer before it reaches its stream file
    /// (`CTFTraceWriter.checkpoint()`): what a recorder killed without warning can lose. With a
    /// live relay session, at most its live timer (what a live viewer waits for a record).
    public var checkpointInterval: Duration = .seconds(1)
    private var lastCheckpoint = ContinuousClock.now
    /// When set, a round reads only the sub-buffers producers have left (discard mode; see
    /// `TraceDrainer.drainOnce(quiescent:wholeSubbuffers:batches:)`), except once per this interval,
    /// when it reads everything committed: a consumer that keeps up with fast producers then
    /// neither pays a round's fixed costs for a handful of records nor takes the cache lines
    /// producers are writing. Records then wait at most this long (plus a round) to be drained.
    package var partialSubbufferInterval: Duration?
    private var lastCompleteRound = ContinuousClock.now
    /// Threads (`pid << 32 | tid`) seen in the drained records, and the last one seen.
    private var knownThreads = Set<UInt64>()
    private var lastThread: UInt64 = 0
    /// The first error reading the buffer's event registry (`.corrupted` when another process
    /// damaged it) or registering `metrics:counter` in it, or nil. Recording goes on: events whose
    /// id has no schema are written as `rseqtrace:unknown_<id>`, and counters are not sampled.
    public private(set) var registryProblem: TraceError?
    /// The rings quarantined so far, with the errors naming them (`TraceDrainer.quarantinedRings`).
    /// `round` does not throw for them: the other rings keep being recorded.
    public var quarantinedRings: [Int: TraceError] { drainer.quarantinedRings }
    /// The process id counter samples are attributed to (the traced program's).
    private let processID: Int32
    /// Counter names by slot, read once each (names never change).
    private var counterNames: [String] = []
    /// The value of each counter at its latest sample, by slot.
    private var sampledCounterValues: [Int64] = []
    /// The event id of `metrics:counter`: `.unknown` until the first sample, `.unavailable` once
    /// the registry refused it (the samples are then skipped, not asked for again every round).
    private var counterSampleEvent: CounterSampleEvent = .unknown

    private enum CounterSampleEvent {
        case unknown
        case registered(UInt16)
        case unavailable
    }

    /// - Parameters:
    ///   - output: a directory prepared with `CTFTraceWriter.prepareDirectory`, or nil.
    ///   - relay: a relay daemon session to send the trace to (as well as to `output`), or nil.
    ///   - hostname: the trace's `hostname`; nil: this machine's.
    public init(buffer: SharedTraceBuffer, output: String?, relay: RelayTraceSink? = nil, traceName: String,
                procname: String, pid: Int32, hostname: String? = nil) throws(TraceError) {
        self.buffer = buffer
        self.drainer = TraceDrainer(buffer: buffer)
        self.processID = pid
        if output != nil || relay != nil {
            var schemas: [UInt16: EventSchema] = [:]
            do { schemas = try buffer.registeredEvents() } catch { registryProblem = error }
            writer = try CTFTraceWriter(directory: output, relay: relay, description: CTFTraceDescription(
                uuid: TraceRecorder.randomUUID(), clock: buffer.clock, bootID: buffer.bootID,
                hostname: hostname ?? TraceRecorder.hostname(),
                traceName: traceName, procname: procname, pid: pid,
                cpuRingCount: buffer.layout.cpuRingCount, schemas: schemas))
            // A producer registers an event before publishing its first record, so a record of an
            // id without a schema yet means the registry has grown since the writer read it. A
            // damaged registry is noted, not thrown: the event is written without its schema.
            if let relay, relay.isLive { checkpointInterval = min(checkpointInterval, relay.liveTimer) }
            writer?.schemaSource = { [weak self] () throws(TraceError) in
                do throws(TraceError) {
                    return try buffer.registeredEvents()
                } catch {
                    if self?.registryProblem == nil { self?.registryProblem = error }
                    return [:]
                }
            }
        }
    }

    /// Drains every ring once, passing each record to the trace; returns the number of records
    /// drained. When `checkpointInterval` has passed since the last checkpoint, writes the pending
    /// packets.
    /// A ring quarantined by this round does not make it throw (see
    /// `quarantinedRings`): its records before the damage are recorded, the other rings go on.
    /// - Throws: `TraceError` when a CPU cannot be reached or the trace cannot be written.
    @discardableResult
    public func round(quiescent: Bool = false) throws(TraceError) -> Int {
        try drainRound(quiescent: quiescent, visiting: false) { _ in }
    }

    /// Drains every ring once, passing each record to `visit` and to the trace; otherwise as
    /// `round(quiescent:)`. `visit` may use `writer`.
    @discardableResult
    public func round(quiescent: Bool = false, _ visit: (borrowing DrainedRecord) -> Void) throws(TraceError) -> Int {
        try drainRound(quiescent: quiescent, visiting: true, visit)
    }

    /// Names `thread` (`pid << 32 | tid`) in the trace the first time it is seen, with its name in
    /// `/proc/<pid>/task/<tid>/comm` (`pthread_setname_np`'s, or the program's); a thread that has
    /// already exited, or whose process is in another pid namespace, stays unnamed.
    private func noteThread(_ thread: UInt64, _ writer: CTFTraceWriter) {
        lastThread = thread
        guard knownThreads.insert(thread).inserted else { return }
        let pid = Int32(truncatingIfNeeded: thread >> 32), tid = Int32(truncatingIfNeeded: thread)
        guard pid > 0, tid > 0, let comm = SystemInfo.readSmallFile("/proc/\(pid)/task/\(tid)/comm", limit: 64) else { return }
        let name = comm.hasSuffix("\n") ? String(comm.dropLast()) : comm
        if !name.isEmpty { writer.nameThread(tid, name) }
    }

    private func drainRound(quiescent: Bool, visiting: Bool, _ visit: (borrowing DrainedRecord) -> Void) throws(TraceError) -> Int {
        var failure: TraceError?
        var count = 0
        let writer = self.writer
        // Counters are read before the records: a sample is stamped when its values were read.
        let counters = writer == nil ? nil : readCounters()
        var wholeSubbuffers = false
        if let partialSubbufferInterval, !quiescent {
            let now = ContinuousClock.now
            if now - lastCompleteRound >= partialSubbufferInterval {
                lastCompleteRound = now
            } else {
                wholeSubbuffers = true
            }
        }
        do {
            if let writer {
                // The writer's per-record state is held by the appender for the round (given back to
                // the writer around `visit`, which may use it).
                try writer.withAppender { (appender) throws(TraceError) in
                    guard visiting else {
                        // SAFETY: the drainer hands over records whose payloads are readable during the call.
                        _ = try unsafe drainer.drainOnce(quiescent: quiescent, wholeSubbuffers: wholeSubbuffers,
                                                         batches: { (ring, records) in
                            count += records.count
                            guard failure == nil else { return }
                            // SAFETY: the records are readable during the call (the drainer's promise).
                            for index in 0..<records.count where unsafe records[index].thread != lastThread {
                                // SAFETY: as above.
                                noteThread(unsafe records[index].thread, writer)
                            }
                            do throws(TraceError) {
                                // SAFETY: as above.
                                try unsafe appender.append(ring: ring, records: records)
                            } catch {
                                failure = error
                            }
                        })
                        return
                    }
                    _ = try drainer.drainOnce(quiescent: quiescent) { record in
                        count += 1
                        let thread = CTFStream.thread(processID: record.processID, threadID: record.threadID)
                        if thread != lastThread { noteThread(thread, writer) }
                        if visiting { appender.returningState { _ in visit(record) } }
                        guard failure == nil else { return }
                        do throws(TraceError) {
                            // (The writer reads new schemas from the registry itself: see `schemaSource`.)
                            // The payload goes from the ring to the stream without an intermediate array.
                            try record.withPayload { (payload) throws(TraceError) in
                                try appender.append(ring: record.ring, eventID: record.eventID, cycles: record.timestamp,
                                                    thread: thread, payload: payload)
                            }
                        } catch {
                            failure = error
                        }
                    }
                }
            } else {
                _ = try drainer.drainOnce(quiescent: quiescent) { record in
                    count += 1
                    visit(record)
                }
            }
        } catch {
            // A quarantine is reported through `quarantinedRings`; anything else is thrown.
            guard error.code == .corrupted, drainer.quarantinedRings.values.contains(where: { $0.message == error.message }) else {
                throw error
            }
        }
        if let failure { throw failure }
        guard let writer else { return count }
        if let counters { try writeCounterSamples(counters, all: false, to: writer) }
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

    /// Writes the value of every counter (a final `metrics:counter` sample each), the remaining
    /// packets and the metadata.
    public func finish() throws(TraceError) -> CTFTraceWriter.Summary? {
        guard let writer else { return nil }
        try writeCounterSamples(readCounters(), all: true, to: writer)
        return try writer.finish()
    }

    /// The buffer's counters now: the cycle counter, then each registered counter's value by slot.
    private func readCounters() -> (cycles: UInt64, values: [Int64]) {
        let cycles = CycleClock.now()
        let count = buffer.registeredCounterCount
        while counterNames.count < count { counterNames.append(buffer.counterName(slot: counterNames.count)) }
        return (cycles, (0..<count).map { buffer.counterValue(slot: $0) })
    }

    /// Writes a `metrics:counter` event for each counter whose value changed since its latest
    /// sample (every counter when `all`), into the slow lane's stream (docs/BufferProtocol.md §8).
    private func writeCounterSamples(_ counters: (cycles: UInt64, values: [Int64]), all: Bool,
                                     to writer: CTFTraceWriter) throws(TraceError) {
        guard !counters.values.isEmpty else { return }
        let id: UInt16
        switch counterSampleEvent {
        case .registered(let registered):
            id = registered
        case .unavailable:
            return
        case .unknown:
            let schema = SharedTraceBuffer.counterSampleSchema
            if let registered = (try? buffer.registeredEvents())?.first(where: { $0.value == schema })?.key {
                id = registered
            } else {
                do throws(TraceError) {
                    id = try buffer.registerEvent(schema)
                } catch {
                    // A full or damaged registry costs the counter samples, not the recording.
                    if registryProblem == nil { registryProblem = error }
                    counterSampleEvent = .unavailable
                    return
                }
            }
            writer.updateSchemas([id: schema])
            counterSampleEvent = .registered(id)
        }
        for (slot, value) in counters.values.enumerated() {
            let isNew = slot >= sampledCounterValues.count
            guard all || isNew || sampledCounterValues[slot] != value else { continue }
            if isNew { sampledCounterValues.append(value) } else { sampledCounterValues[slot] = value }
            var payload: [UInt8] = []
            payload.reserveCapacity(10 + counterNames[slot].utf8.count)
            payload.appendLittleEndian(value)
            let name = Array(counterNames[slot].utf8.prefix(TraceLayout.maximumCounterNameSize))
            payload.appendLittleEndian(UInt16(name.count))
            payload.append(contentsOf: name)
            try writer.append(ring: buffer.layout.slowLaneRing, eventID: id, cycles: counters.cycles,
                              processID: processID, threadID: 0, payload: payload)
        }
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
