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
///   (`abandoned`). A live drain stops at such a record; when it stays unchanged for a while and
///   its producer thread certainly no longer exists (docs/BufferProtocol.md §4.6), the drain
///   replaces it with padding, counts it `abandoned` and goes on. A producer that is only slow
///   (preempted, stopped, traced) still exists, and one the drainer cannot see for sure (another
///   pid namespace) counts as alive: that ring waits for the producer or the final
///   quiescent drain.
///
/// Lost records are counted exactly: `dropped` and `tooLarge` counters per ring, plus the
/// `lost` count carried by each sub-buffer begin record in overwrite mode.
///
/// Nothing read from the shared object is trusted: another process of the same user can write
/// anything into it. Record words, begin records, `head` and `consumed` are validated before use
/// (`head` only grows and stays within what producers can reach; only this drainer moves
/// `consumed`), and counters are summed saturating. A ring found damaged is **quarantined**: the
/// round that finds it throws a `.corrupted` error naming the ring, the position or control word
/// and what to do, after draining the other rings; from then on the ring is no longer read, its
/// statistics say so (`RingStatistics.quarantined`, and `hidden`: the published bytes left
/// unread), and later rounds keep draining the other rings without throwing again.
///
/// The drainer is policy (rounds, statistics, callbacks); the read side of the protocol itself
/// (walk and validation, snapshot and commit) lives with the write side in RseqTrace.
@safe
public final class TraceDrainer {
    /// The trace object this drainer reads.
    public let buffer: SharedTraceBuffer
    /// The object's geometry.
    public let layout: TraceLayout
    private var reader: RingReader

    /// How long a busy record must stay unchanged at a live read's position before the drainer
    /// looks up whether its producer died (and then between look-ups while it lives).
    package var abandonmentDelay: Duration {
        get { reader.abandonmentDelay }
        set { reader.abandonmentDelay = newValue }
    }

    /// Test injection point: overwrite-mode snapshots copied backward word by word, calling this
    /// before each word (`RingReader.snapshotCopyInterleave`); nil copies with `memcpy`.
    package var snapshotCopyInterleave: ((_ position: UInt64) -> Void)? {
        get { reader.snapshotCopyInterleave }
        set { reader.snapshotCopyInterleave = newValue }
    }

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
        /// Records reserved by a producer that died before committing them (found by a quiescent
        /// drain, or by a live drain that found the producer thread gone).
        public var abandoned: UInt64 = 0
        /// Rings no longer read because something other than RseqTrace damaged them (0 or 1 for one
        /// ring; the number of such rings in `totals`). See `TraceDrainer.quarantinedRings`.
        public var quarantined: Int = 0
        /// Bytes of records published in a quarantined ring that were not read when it was
        /// quarantined (at most one ring's size per ring); records written into it afterwards are
        /// counted by `dropped` (discard mode) or not at all (overwrite mode).
        public var hidden: UInt64 = 0
        /// Every record lost on this ring (saturating at `UInt64.max`).
        public var lost: UInt64 {
            overwritten.addingSaturated(dropped).addingSaturated(tooLarge).addingSaturated(abandoned)
        }
    }

    /// Totals per ring, indexed like the rings (the last one is the slow lane).
    public private(set) var statistics: [RingStatistics]
    private let scratch: UnsafeMutableRawBufferPointer
    /// Where reads collect the records they hand over (`RecordBatch.capacity` of them).
    private let batchStorage: UnsafeMutablePointer<VisitedRecord>
    /// Counts taken out of the ring counters by `resetCounters()`, per ring (dropped, tooLarge).
    private var resetBase: [(dropped: UInt64, tooLarge: UInt64)]
    /// What earlier reads established about each ring's positions.
    private var cursors: [RingReader.Cursor]

    /// The rings no longer read because something other than RseqTrace wrote impossible values
    /// into them, each with the `.corrupted` error that quarantined it (naming the ring, the
    /// position or control word, and what to do). Empty while every ring is sound.
    public private(set) var quarantinedRings: [Int: TraceError] = [:]

    /// A drainer of `buffer`, with a private scratch buffer of one ring (for overwrite mode).
    public init(buffer: SharedTraceBuffer) {
        self.buffer = buffer
        self.layout = buffer.layout
        self.reader = RingReader(buffer: buffer)
        self.statistics = Array(repeating: RingStatistics(), count: buffer.layout.ringCount)
        self.resetBase = Array(repeating: (0, 0), count: buffer.layout.ringCount)
        self.cursors = Array(repeating: RingReader.Cursor(), count: buffer.layout.ringCount)
        // SAFETY: freshly allocated, freed in deinit, only used inside this object.
        unsafe self.scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.layout.ringSize, alignment: 8)
        // SAFETY: as above.
        unsafe self.batchStorage = UnsafeMutablePointer<VisitedRecord>.allocate(capacity: RecordBatch.capacity)
    }

    deinit {
        // SAFETY: allocated in init, not referenced elsewhere.
        unsafe scratch.deallocate()
        // SAFETY: as above (its records are plain values: nothing to deinitialize).
        unsafe batchStorage.deallocate()
    }

    /// Total records delivered and lost over all rings (each count saturating at `UInt64.max`);
    /// `quarantined` is the number of quarantined rings.
    public var totals: RingStatistics {
        statistics.reduce(into: RingStatistics()) { sum, s in
            sum.recorded.addSaturated(s.recorded)
            sum.overwritten.addSaturated(s.overwritten)
            sum.dropped.addSaturated(s.dropped)
            sum.tooLarge.addSaturated(s.tooLarge)
            sum.abandoned.addSaturated(s.abandoned)
            sum.quarantined += s.quarantined
            sum.hidden.addSaturated(s.hidden)
        }
    }

    /// Drains every ring once (except quarantined ones), calling `deliver` for each record in ring
    /// order.
    /// - Returns: the number of records delivered in this round.
    /// - Throws: `TraceError`, after every other ring was drained and the counters refreshed:
    ///   `.systemCallFailed` when a CPU cannot be reached in overwrite mode; `.corrupted` when this
    ///   round quarantined a ring (the error names the ring and the damaged position or control
    ///   word; see `quarantinedRings`). The records of the round were delivered and are counted.
    @discardableResult
    public func drainOnce(quiescent: Bool = false, _ deliver: (borrowing DrainedRecord) -> Void) throws(TraceError) -> Int {
        // SAFETY: each record's payload is valid during the batch's delivery, which contains `deliver`'s;
        // the record is borrowed by `deliver`, so it cannot outlive it.
        try unsafe drainOnce(quiescent: quiescent, batches: { (ring: Int, records: UnsafeBufferPointer<VisitedRecord>) in
            // SAFETY: the batch is readable during this call.
            for unsafe record in unsafe records {
                // SAFETY: the payload is readable while the batch is delivered (this call).
                let drained = unsafe DrainedRecord(
                    ring: ring, eventID: record.word.eventID, timestamp: record.timestamp, position: record.position,
                    processID: record.processID, threadID: record.threadID, payload: record.payload, payloadSize: record.word.length - TraceLayout.recordHeaderSize)
                deliver(drained)
            }
        })
    }

    /// As `drainOnce(quiescent:_:)`, handing the records over a batch at a time (in ring order, at
    /// most `RecordBatch.capacity` per call): what a consumer whose per-record work is a few
    /// nanoseconds uses, so that the work runs in its own loop. A record's payload is
    /// `word.length - TraceLayout.recordHeaderSize` bytes at `payload`, valid only during the call.
    @discardableResult
    /// With `wholeSubbuffers`, rings of the rseq protocol in discard mode are read only up to the
    /// sub-buffer their producers are writing (`RingReader.readInPlace`); the rest waits for a round without it.
    package func drainOnce(quiescent: Bool = false, wholeSubbuffers: Bool = false,
                           batches deliver: (_ ring: Int, _ records: UnsafeBufferPointer<VisitedRecord>) -> Void) throws(TraceError) -> Int {
        var delivered = 0
        var failure: TraceError?
        var quarantine: TraceError?
        for index in 0..<layout.ringCount where statistics[index].quarantined == 0 {
            do {
                // SAFETY: `deliver` is the caller's, handed batches valid for its call.
                delivered += try unsafe drainRing(index, quiescent: quiescent, wholeSubbuffers: wholeSubbuffers, deliver)
            } catch {
                failure = failure ?? error
            }
            if quarantine == nil, let error = quarantinedRings[index] { quarantine = error }
        }
        refreshCounters()
        if let failure { throw failure }
        if let quarantine { throw quarantine }
        return delivered
    }

    /// Re-reads the per-ring `dropped` and `tooLarge` counters (of quarantined rings too: what
    /// producers drop there is still lost).
    public func refreshCounters() {
        for index in 0..<layout.ringCount {
            let counters = reader.counters(index)
            statistics[index].dropped = resetBase[index].dropped.addingSaturated(counters.dropped)
            statistics[index].tooLarge = resetBase[index].tooLarge.addingSaturated(counters.tooLarge)
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
            resetBase[index].dropped.addSaturated(taken.dropped)
            resetBase[index].tooLarge.addSaturated(taken.tooLarge)
        }
        refreshCounters()
    }

    // MARK: - One ring

    /// Drains ring `index` once; damage quarantines it (`quarantinedRings`) instead of throwing.
    /// - Throws: only when the ring's CPU cannot be reached (overwrite mode).
    func drainRing(_ index: Int, quiescent: Bool, wholeSubbuffers: Bool = false,
                   _ deliver: (_ ring: Int, _ records: UnsafeBufferPointer<VisitedRecord>) -> Void) throws(TraceError) -> Int {
        var delivered = 0
        // SAFETY: the reader passes records whose payloads are valid for the call (see RingReader.Visit).
        let outcome = try unsafe read(index, quiescent: quiescent, wholeSubbuffers: wholeSubbuffers) { records in
            unsafe deliver(index, records)
            delivered += records.count
        }
        // Account for what was delivered before reporting damage, so nothing is delivered twice.
        statistics[index].recorded.addSaturated(UInt64(delivered))
        statistics[index].overwritten.addSaturated(outcome.overwritten)
        statistics[index].abandoned.addSaturated(outcome.abandoned)
        if let problem = outcome.problem {
            statistics[index].quarantined = 1
            statistics[index].hidden = outcome.hidden
            quarantinedRings[index] = corruption(ring: index, problem, hidden: outcome.hidden)
        }
        return delivered
    }

    /// Reads ring `index` with the reader's method for its protocol and mode.
    private func read(_ index: Int, quiescent: Bool, wholeSubbuffers: Bool,
                      _ visit: RingReader.Visit) throws(TraceError) -> RingReader.Outcome {
        // SAFETY: the storage holds `RecordBatch.capacity` records and serves one read at a time.
        var batch = unsafe RecordBatch(storage: batchStorage)
        if !reader.usesRseq(index) {
            // SAFETY: `scratch` holds ringSize bytes and is used by this drainer only; the reader
            // passes `visit` payload pointers valid for the call.
            return unsafe reader.readLockFree(index, quiescent: quiescent, scratch: scratch, cursor: &cursors[index], batch: &batch, visit)
        } else if buffer.mode == .discard || quiescent {
            // SAFETY: the reader passes `visit` payload pointers valid for the call (see RingReader.Visit).
            return unsafe reader.readInPlace(index, quiescent: quiescent, wholeSubbuffers: wholeSubbuffers,
                                             cursor: &cursors[index], batch: &batch, visit)
        } else {
            // SAFETY: `scratch` holds ringSize bytes and is used by this drainer only.
            return try unsafe reader.readSnapshot(index, scratch: scratch, cursor: &cursors[index], batch: &batch, visit)
        }
    }

    private func corruption(ring: Int, _ problem: RecordWalk.Problem, hidden: UInt64) -> TraceError {
        let path = SharedTraceBuffer.path(forName: buffer.name)
        let what: String
        if let field = problem.field {
            what = "has an impossible \(field.name) (offset \(field.rawValue) of its control block): \(problem.reason)"
        } else {
            what = "is damaged at position \(problem.position): \(problem.reason)"
        }
        return TraceError(.corrupted, """
            ring \(ring) of trace '\(buffer.name)' \(what); something other than RseqTrace wrote into \(path). \
            Ring \(ring) is quarantined: it is no longer read (\(hidden) published bytes left unread), the other \
            rings keep draining; stop the process writing into \(path), and trace again for a complete record
            """)
    }
}
