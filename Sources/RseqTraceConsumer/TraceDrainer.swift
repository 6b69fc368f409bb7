import RseqTrace

/// Drains the rings of a trace object, from this or another process.
///
/// - **Discard mode** never disturbs producers: it reads committed records up to the published
///   head (acquiring) and then publishes how far it got (`consumed`, releasing). Producers only
///   ever see `consumed` grow, so a stale view can only make them drop (and count) a record.
/// - **Overwrite mode** (flight recorder) races with producers recycling old sub-buffers, so
///   committing what was read must be atomic with them: the drainer copies the readable part of a
///   ring, then publishes `consumed` with an rseq sequence that runs on the ring's CPU
///   (`CPUPinner`) and only succeeds if no sub-buffer it copied was recycled meanwhile. Rings of
///   the lock-free protocol (fallback buffers, the slow lane) are copied a sub-buffer at a time
///   and a copy is delivered only if no producer can have reached it since; what producers
///   overwrote is counted, never delivered.
/// - `quiescent: true` tells the drainer that no producer runs any more (all joined or exited),
///   so it can read and publish without pinning, and a record still marked as being written was
///   abandoned by a producer that died between reserve and commit: it is skipped and counted
///   (`abandoned`). A live drain stops at such a record (it cannot tell a dead producer from a
///   slow one), so that ring waits for the final quiescent drain.
///
/// Lost records are counted exactly: `dropped` and `tooLarge` counters per ring, plus the
/// `lost` count carried by each sub-buffer begin record in overwrite mode.
///
/// The drainer is policy (rounds, statistics, callbacks); the read side of the protocol itself
/// (walk and validation, snapshot and commit) lives with the write side in RseqTrace.
@safe
public final class TraceDrainer {
    /// The trace object this drainer reads.
    public let buffer: SharedTraceBuffer
    /// The object's geometry.
    public let layout: TraceLayout
    private let reader: RingReader

    /// Per-ring totals since this drainer was created.
    public struct RingStatistics: Sendable, Hashable {
        /// Zero counts.
        public init() {}
        /// Records delivered to the callback.
        public var recorded: UInt64 = 0
        /// Records overwritten before they could be read (overwrite mode).
        public var overwritten: UInt64 = 0
        /// Records refused because the ring was full or recycling was blocked (ring counter).
        public var dropped: UInt64 = 0
        /// Records refused because they could never fit (ring counter).
        public var tooLarge: UInt64 = 0
        /// Records reserved by a producer that died before committing them (found by a quiescent drain).
        public var abandoned: UInt64 = 0
        /// Every record lost on this ring.
        public var lost: UInt64 { overwritten + dropped + tooLarge + abandoned }
    }

    /// Totals per ring, indexed like the rings (the last one is the slow lane).
    public private(set) var statistics: [RingStatistics]
    private let scratch: UnsafeMutableRawBufferPointer
    /// Counts taken out of the ring counters by `resetCounters()`, per ring (dropped, tooLarge).
    private var resetBase: [(dropped: UInt64, tooLarge: UInt64)]

    /// A drainer of `buffer`, with a private scratch buffer of one ring (for overwrite mode).
    public init(buffer: SharedTraceBuffer) {
        self.buffer = buffer
        self.layout = buffer.layout
        self.reader = RingReader(buffer: buffer)
        self.statistics = Array(repeating: RingStatistics(), count: buffer.layout.ringCount)
        self.resetBase = Array(repeating: (0, 0), count: buffer.layout.ringCount)
        // SAFETY: freshly allocated, freed in deinit, only used inside this object.
        unsafe self.scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.layout.ringSize, alignment: 8)
    }

    deinit {
        // SAFETY: allocated in init, not referenced elsewhere.
        unsafe scratch.deallocate()
    }

    /// Total records delivered and lost over all rings.
    public var totals: RingStatistics {
        statistics.reduce(into: RingStatistics()) { sum, s in
            sum.recorded += s.recorded
            sum.overwritten += s.overwritten
            sum.dropped += s.dropped
            sum.tooLarge += s.tooLarge
            sum.abandoned += s.abandoned
        }
    }

    /// Drains every ring once, calling `deliver` for each record in ring order.
    /// - Returns: the number of records delivered in this round.
    /// - Throws: `TraceError` (`.corrupted` names the ring and position of a damaged record;
    ///   `.systemCallFailed` when a CPU cannot be reached in overwrite mode).
    @discardableResult
    public func drainOnce(quiescent: Bool = false, _ deliver: (borrowing DrainedRecord) -> Void) throws(TraceError) -> Int {
        var delivered = 0
        for index in 0..<layout.ringCount {
            delivered += try drainRing(index, quiescent: quiescent, deliver)
        }
        refreshCounters()
        return delivered
    }

    /// Re-reads the per-ring `dropped` and `tooLarge` counters.
    public func refreshCounters() {
        for index in 0..<layout.ringCount {
            let counters = reader.counters(index)
            statistics[index].dropped = resetBase[index].dropped + counters.dropped
            statistics[index].tooLarge = resetBase[index].tooLarge + counters.tooLarge
        }
    }

    /// Sets every ring's `dropped` and `tooLarge` counters back to zero, atomically with the
    /// producers that update them, so another tool (or a new session on the same object) starts
    /// from zero. This drainer's totals keep counting what was reset, so they stay exact.
    ///
    /// Rings of the rseq protocol are reset by a compare-and-zero sequence run on the ring's CPU,
    /// which fails and is retried if a producer counted in between; lock-free rings by an atomic exchange.
    /// - Throws: `.systemCallFailed` when a CPU cannot be reached (offline, outside the allowed set).
    public func resetCounters() throws(TraceError) {
        for index in 0..<layout.ringCount {
            let taken = try reader.takeCounters(index)
            resetBase[index].dropped += taken.dropped
            resetBase[index].tooLarge += taken.tooLarge
        }
        refreshCounters()
    }

    // MARK: - One ring

    func drainRing(_ index: Int, quiescent: Bool, _ deliver: (borrowing DrainedRecord) -> Void) throws(TraceError) -> Int {
        var delivered = 0
        let visit: RingReader.Visit = { position, word, timestamp, payload in
            // SAFETY: the reader keeps the payload valid during this call, which contains `deliver`'s;
            // the record is borrowed by `deliver`, so it cannot outlive it.
            let record = unsafe DrainedRecord(
                ring: index, eventID: word.eventID, timestamp: timestamp, position: position,
                payload: payload, payloadSize: word.length - TraceLayout.recordHeaderSize)
            deliver(record)
            delivered += 1
        }
        let outcome: RingReader.Outcome
        if !reader.usesRseq(index) {
            // SAFETY: `scratch` holds ringSize bytes and is used by this drainer only; the reader
            // passes `visit` payload pointers valid for the call.
            outcome = unsafe reader.readLockFree(index, quiescent: quiescent, scratch: scratch, visit)
        } else if buffer.mode == .discard || quiescent {
            // SAFETY: the reader passes `visit` payload pointers valid for the call (see RingReader.Visit).
            outcome = unsafe reader.readInPlace(index, quiescent: quiescent, visit)
        } else {
            // SAFETY: `scratch` holds ringSize bytes and is used by this drainer only.
            outcome = try unsafe reader.readSnapshot(index, scratch: scratch, visit)
        }
        // Account for what was delivered before reporting damage, so nothing is delivered twice.
        statistics[index].recorded += UInt64(delivered)
        statistics[index].overwritten += outcome.overwritten
        statistics[index].abandoned += outcome.abandoned
        if let problem = outcome.problem { throw corruption(ring: index, problem) }
        return delivered
    }

    private func corruption(ring: Int, _ problem: RecordWalk.Problem) -> TraceError {
        TraceError(.corrupted, """
            ring \(ring) of trace '\(buffer.name)' is damaged at position \(problem.position): \
            \(problem.reason); something other than RseqTrace wrote into \(SharedTraceBuffer.path(forName: buffer.name))
            """)
    }
}
