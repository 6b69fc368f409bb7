import CRseqTrace
import RseqTrace
import SystemPackage

/// Drains the rings of a trace object, from this or another process.
///
/// - **Discard mode** never disturbs producers: it reads committed records up to the published
///   head (acquiring) and then publishes how far it got (`consumed`, releasing). Producers only
///   ever see `consumed` grow, so a stale view can only make them drop (and count) a record.
/// - **Overwrite mode** (flight recorder) races with producers recycling old sub-buffers, so
///   committing what was read must be atomic with them: the drainer copies the readable part of a
///   ring, then publishes `consumed` with an rseq sequence that runs on the ring's CPU
///   (`CPUPinner`) and only succeeds if no sub-buffer it copied was recycled meanwhile; rings of
///   the locked protocol do the same under the ring mutex.
/// - `quiescent: true` tells the drainer that no producer runs any more (all joined or exited),
///   so it can read and publish without pinning, and a record still marked as being written was
///   abandoned by a producer that died between reserve and commit: it is skipped and counted
///   (`abandoned`). A live drain stops at such a record (it cannot tell a dead producer from a
///   slow one), so that ring waits for the final quiescent drain.
///
/// Lost records are counted exactly: `dropped` and `tooLarge` counters per ring, plus the
/// `lost` count carried by each sub-buffer begin record in overwrite mode.
@safe
public final class TraceDrainer {
    public let buffer: SharedTraceBuffer
    public let layout: TraceLayout

    /// Per-ring totals since this drainer was created.
    public struct RingStatistics: Sendable, Hashable {
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

    public private(set) var statistics: [RingStatistics]
    private let scratch: UnsafeMutableRawBufferPointer
    /// Counts taken out of the ring counters by `resetCounters()`, per ring (dropped, tooLarge).
    private var resetBase: [(dropped: UInt64, tooLarge: UInt64)]

    public init(buffer: SharedTraceBuffer) {
        self.buffer = buffer
        self.layout = buffer.layout
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
    public func drainOnce(quiescent: Bool = false, _ deliver: (DrainedRecord) -> Void) throws(TraceError) -> Int {
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
            let ring = buffer.ring(index)
            statistics[index].dropped = resetBase[index].dropped + ring.load(ControlField.dropped, ordering: .relaxed)
            statistics[index].tooLarge = resetBase[index].tooLarge + ring.load(ControlField.tooLarge, ordering: .relaxed)
        }
    }

    /// Sets every ring's `dropped` and `tooLarge` counters back to zero, atomically with the
    /// producers that update them, so another tool (or a new session on the same object) starts
    /// from zero. This drainer's totals keep counting what was reset, so they stay exact.
    ///
    /// Rings of the rseq protocol are reset by a compare-and-zero sequence run on the ring's CPU
    /// (`CPUPinner`), which fails and is retried if a producer counted in between; locked rings
    /// under their mutex.
    /// - Throws: `.systemCallFailed` when a CPU cannot be reached (offline, outside the allowed set).
    public func resetCounters() throws(TraceError) {
        for index in 0..<layout.ringCount {
            let ring = buffer.ring(index)
            let usesRseq = buffer.ringProtocol == .rseq && index < layout.cpuRingCount
            let taken: (dropped: UInt64, tooLarge: UInt64)
            if usesRseq {
                taken = try onRingCPU(index, purpose: "resetting its counters") { () throws(TraceError) in
                    (try zeroOnCPU(ring, index, ControlField.dropped), try zeroOnCPU(ring, index, ControlField.tooLarge))
                }
            } else {
                taken = try withRingMutex(ring, index) {
                    let counts = (ring.load(ControlField.dropped, ordering: .relaxed), ring.load(ControlField.tooLarge, ordering: .relaxed))
                    ring.store(ControlField.dropped, 0, ordering: .relaxed)
                    ring.store(ControlField.tooLarge, 0, ordering: .relaxed)
                    return counts
                }
            }
            resetBase[index].dropped += taken.dropped
            resetBase[index].tooLarge += taken.tooLarge
        }
        refreshCounters()
    }

    /// Compare-and-zero of a counter on its ring's CPU (the caller is pinned there); returns the
    /// value it took out.
    private func zeroOnCPU(_ ring: RingView, _ index: Int, _ field: Int) throws(TraceError) -> UInt64 {
        for _ in 0..<1000 {
            let value = ring.load(field, ordering: .relaxed)
            if value == 0 { return 0 }
            // SAFETY: a control word of this ring; the sequence checks it runs on CPU `index`.
            let counter = unsafe ring.controlPointer(field)
            // SAFETY: as above (the try-store targets the counter itself and is overwritten by the commit).
            if unsafe rseqtrace_load_cbne_trystore_store__cpu_id(UInt32(index), counter, value, counter, 0, 0) == 0 {
                return value
            }
        }
        throw TraceError(.systemCallFailed, "ring \(index): could not reset its counter on CPU \(index) (producers kept counting)")
    }

    /// Runs `body` on ring `index`'s CPU (the cpu_opv emulation), mapping failures to TraceError.
    private func onRingCPU<R>(_ index: Int, purpose: String, _ body: () throws(TraceError) -> R) throws(TraceError) -> R {
        guard buffer.indexing == .cpuID else {
            throw TraceError(.invalidConfiguration, "ring \(index): \(purpose) needs cpu_id indexing to reach the ring's CPU")
        }
        guard RseqRuntime.prepareCurrentThread() else {
            throw TraceError(.invalidConfiguration, """
                ring \(index) uses rseq but this consumer runs in \(RseqRuntime.status) mode: it cannot act \
                atomically with the producers (\(purpose)); drain after they stop (quiescent) instead
                """)
        }
        do {
            return try CPUPinner.run(onCPU: index, body)
        } catch {
            switch error {
            case .pin(let pinError):
                throw TraceError(.systemCallFailed, "ring \(index): \(pinError)", errno: pinError.errno)
            case .body(let traceError):
                throw traceError
            }
        }
    }

    /// Runs `body` holding ring `index`'s mutex (rings of the locked protocol).
    private func withRingMutex<R>(_ ring: RingView, _ index: Int, _ body: () throws(TraceError) -> R) throws(TraceError) -> R {
        // SAFETY: the mutex lives in this ring's control block and was initialised at creation.
        let mutex = unsafe ring.controlPointer(ControlField.mutex)
        // SAFETY: as above.
        let rc = unsafe rseqtrace_mutex_lock(mutex, 5_000_000_000)
        guard rc == 0 else {
            throw TraceError(.systemCallFailed, "ring \(index): cannot lock the ring mutex", errno: Errno(rawValue: rc))
        }
        // SAFETY: locked just above.
        defer { unsafe rseqtrace_mutex_unlock(mutex) }
        return try body()
    }

    // MARK: - One ring

    func drainRing(_ index: Int, quiescent: Bool, _ deliver: (DrainedRecord) -> Void) throws(TraceError) -> Int {
        let ring = buffer.ring(index)
        if buffer.mode == .discard || quiescent {
            return try drainInPlace(ring: ring, index: index, quiescent: quiescent, deliver)
        }
        let usesRseq = buffer.ringProtocol == .rseq && index < layout.cpuRingCount
        if !usesRseq {
            let snapshot = try withRingMutex(ring, index) { () throws(TraceError) in
                try takeSnapshot(ring: ring, index: index, commit: { markerField, marker, limit, end in
                    guard ring.load(markerField, ordering: .relaxed) == marker,
                          ring.load(ControlField.head, ordering: .relaxed) <= limit else { return false }
                    ring.store(ControlField.consumed, end, ordering: .releasing)
                    return true
                })
            }
            return try deliverSnapshot(snapshot, ring: index, deliver)
        }
        let snapshot = try onRingCPU(index, purpose: "reading it in overwrite mode") { () throws(TraceError) in
            try takeSnapshot(ring: ring, index: index, commit: { markerField, marker, limit, end in
                let cpu = UInt32(index)
                // SAFETY: control words of this ring; the sequence checks it runs on `cpu`.
                return unsafe rseqtrace_load_cbne_load_cbgtu_store__cpu_id(
                    cpu, ring.controlPointer(markerField), marker,
                    ring.controlPointer(ControlField.head), limit,
                    ring.controlPointer(ControlField.consumed), end) == 0
            })
        }
        return try deliverSnapshot(snapshot, ring: index, deliver)
    }

    /// Discard mode (or no producers left): deliver straight from the ring, then publish.
    private func drainInPlace(ring: RingView, index: Int, quiescent: Bool,
                              _ deliver: (DrainedRecord) -> Void) throws(TraceError) -> Int {
        let head = ring.load(ControlField.head, ordering: .acquiring)
        var start = ring.load(ControlField.consumed, ordering: .acquiring)
        if buffer.mode == .overwrite {
            // No producer runs any more: a slot declared recycled whose opening never happened
            // will never report its loss through a begin record, so count it here.
            let readable = readableRange(ring: ring, head: head, consumed: start)
            start = readable.start
            statistics[index].overwritten += readable.pendingLost
            if readable.pendingLost > 0 {
                // Never count that pending loss twice (the quiescent contract: no producer writes
                // this ring any more, so the drainer may clear a producer-owned marker).
                ring.store(ControlField.recycleMarker(slot: readable.pendingSlot), 0, ordering: .relaxed)
            }
        }
        var delivered = 0
        let walk = RecordWalk.run(layout: layout, from: start, to: head, abandonBusy: quiescent,
                                  word: { ring.loadWord(at: $0, ordering: .acquiring) },
                                  visit: { position, word in
            if word.isBusy {
                statistics[index].abandoned += 1   // its producer died between reserve and commit
            } else if word.kind == .event {
                // SAFETY: a committed record inside the ring; the consumer owns it until `consumed` moves.
                let record = unsafe DrainedRecord(
                    ring: index, eventID: word.eventID,
                    timestamp: ring.loadWord(at: position + 8, ordering: .relaxed), position: position,
                    payload: UnsafeRawPointer(ring.pointer(at: position + UInt64(TraceLayout.recordHeaderSize))),
                    payloadSize: word.length - TraceLayout.recordHeaderSize)
                deliver(record)
                delivered += 1
            } else if word.kind == .subbufferBegin {
                statistics[index].overwritten += ring.loadWord(at: position + 16, ordering: .relaxed)
            }
        })
        // Account for what was delivered before reporting damage, so nothing is delivered twice.
        statistics[index].recorded += UInt64(delivered)
        if walk.end != ring.load(ControlField.consumed, ordering: .relaxed) {
            ring.store(ControlField.consumed, walk.end, ordering: .releasing)
        }
        if let problem = walk.problem { throw corruption(ring: index, problem) }
        return delivered
    }

    // MARK: - Overwrite-mode snapshots

    struct Snapshot {
        var start: UInt64 = 0
        var end: UInt64 = 0
        var overwritten: UInt64 = 0
        /// Damage found right after `end` (reported once the records before it are delivered).
        var problem: RecordWalk.Problem?
    }

    /// First position whose sub-buffer has not been recycled for a given head.
    func oldestValid(head: UInt64) -> UInt64 {
        guard head > 0 else { return 0 }
        let p = UInt64(layout.subbufferSize)
        let current = (head - 1) / p
        let count = UInt64(layout.subbuffersPerRing)
        return current + 1 >= count ? (current + 1 - count) * p : 0
    }

    /// Where reading may start in overwrite mode: after `consumed`, after recycled sub-buffers, and
    /// after the oldest one if its slot was already declared recycled (step 1 of an opening that
    /// has not committed yet, whose loss `pendingLost` will be reported by the begin record).
    func readableRange(ring: RingView, head: UInt64, consumed: UInt64) -> (start: UInt64, pendingLost: UInt64, pendingSlot: Int) {
        var start = max(consumed, oldestValid(head: head))
        let p = UInt64(layout.subbufferSize)
        let nextOpen = head % p == 0 ? head : (head / p + 1) * p
        guard nextOpen >= UInt64(layout.ringSize) else { return (start, 0, 0) }
        let slot = layout.slot(of: nextOpen)
        let marker = RecycleMarker(rawValue: ring.load(ControlField.recycleMarker(slot: slot), ordering: .acquiring))
        guard marker.tag == layout.subbufferTag(of: nextOpen) else { return (start, 0, slot) }
        let deadEnd = nextOpen - UInt64(layout.ringSize) + p
        if start < deadEnd { start = deadEnd }
        return (start, marker.lost, slot)
    }

    /// Copies the readable part of a ring into the scratch buffer and publishes it with `commit`
    /// (`commit(limit, end)` must store `end` into `consumed` only if `head <= limit`, atomically
    /// with the ring's producers). Retries when producers recycled what was being copied.
    private func takeSnapshot(ring: RingView, index: Int,
                              commit: (_ markerField: Int, _ marker: UInt64, _ limit: UInt64, _ end: UInt64) -> Bool)
        throws(TraceError) -> Snapshot {
        let p = UInt64(layout.subbufferSize)
        let lapSpan = UInt64(layout.ringSize)
        var lastProblem: RecordWalk.Problem?
        for _ in 0..<64 {
            let head = ring.load(ControlField.head, ordering: .acquiring)
            let consumed = ring.load(ControlField.consumed, ordering: .acquiring)
            let start = readableRange(ring: ring, head: head, consumed: consumed).start
            guard start < head else { return Snapshot(start: start, end: start) }
            // The first copied sub-buffer dies when its slot's marker changes; later ones only
            // after the head passes `limit`.
            let markerField = ControlField.recycleMarker(slot: layout.slot(of: start))
            let marker = ring.load(markerField, ordering: .acquiring)
            // Copy [start, head) — at most one ring — in up to two pieces around the ring end.
            let count = Int(head - start)
            var copied = 0
            while copied < count {
                let position = start + UInt64(copied)
                let untilEnd = layout.ringSize - Int(position & (lapSpan - 1))
                let piece = min(count - copied, untilEnd)
                // SAFETY: `scratch` has ringSize bytes and copied + piece <= count <= ringSize.
                unsafe ring.copyBytes(from: position, count: piece,
                               into: unsafe UnsafeMutableRawBufferPointer(rebasing: scratch[copied..<(copied + piece)]))
                copied += piece
            }
            var snapshot = Snapshot(start: start, end: start)
            let walk = RecordWalk.run(layout: layout, from: start, to: head,
                                      word: { position in
                // SAFETY: position - start < count <= scratch.count, 8-aligned.
                unsafe scratch.baseAddress!.load(fromByteOffset: Int(position - start), as: UInt64.self)
            }, visit: { position, word in
                if word.kind == .subbufferBegin {
                    // SAFETY: the begin record is 24 bytes, inside the copied range.
                    snapshot.overwritten += unsafe scratch.baseAddress!.load(fromByteOffset: Int(position - start) + 16, as: UInt64.self)
                }
            })
            snapshot.end = walk.end
            // Nothing copied from sub-buffer start/P on may have been recycled meanwhile.
            let limit = (start / p + UInt64(layout.subbuffersPerRing)) * p
            if commit(markerField, marker, limit, walk.end) {
                snapshot.problem = walk.problem
                return snapshot
            }
            lastProblem = walk.problem
        }
        if let lastProblem { throw corruption(ring: index, lastProblem) }
        // Producers kept recycling under us: report nothing this round; losses stay counted in
        // begin records the next round will read.
        return Snapshot()
    }

    private func deliverSnapshot(_ snapshot: Snapshot, ring index: Int, _ deliver: (DrainedRecord) -> Void) throws(TraceError) -> Int {
        guard snapshot.end > snapshot.start else {
            if let problem = snapshot.problem { throw corruption(ring: index, problem) }
            return 0
        }
        var delivered = 0
        let start = snapshot.start
        _ = RecordWalk.run(layout: layout, from: start, to: snapshot.end, word: { position in
            // SAFETY: inside the committed copy.
            unsafe scratch.baseAddress!.load(fromByteOffset: Int(position - start), as: UInt64.self)
        }, visit: { position, word in
            guard word.kind == .event else { return }
            let offset = Int(position - start)
            // SAFETY: the record lies inside the copy, which stays untouched until the next round.
            let record = unsafe DrainedRecord(
                ring: index, eventID: word.eventID,
                timestamp: scratch.baseAddress!.load(fromByteOffset: offset + 8, as: UInt64.self),
                position: position,
                payload: UnsafeRawPointer(scratch.baseAddress!.advanced(by: offset + TraceLayout.recordHeaderSize)),
                payloadSize: word.length - TraceLayout.recordHeaderSize)
            deliver(record)
            delivered += 1
        })
        statistics[index].recorded += UInt64(delivered)
        statistics[index].overwritten += snapshot.overwritten
        if let problem = snapshot.problem { throw corruption(ring: index, problem) }
        return delivered
    }

    private func corruption(ring: Int, _ problem: RecordWalk.Problem) -> TraceError {
        TraceError(.corrupted, """
            ring \(ring) of trace '\(buffer.name)' is damaged at position \(problem.position): \
            \(problem.reason); something other than RseqTrace wrote into \(SharedTraceBuffer.path(forName: buffer.name))
            """)
    }
}

/// Walking and validating a chain of records.
enum RecordWalk {
    struct Problem {
        var position: UInt64
        var reason: String
    }
    struct Result {
        /// Position after the last complete record (where a busy record or a problem stopped it).
        var end: UInt64
        var problem: Problem?
    }

    /// - Parameter abandonBusy: true when no producer can run any more: a record still being
    ///   written was abandoned (its producer died between reserve and commit); it is passed to
    ///   `visit` (busy) and skipped instead of stopping the walk.
    static func run(layout: TraceLayout, from: UInt64, to: UInt64, abandonBusy: Bool = false,
                    word load: (UInt64) -> UInt64, visit: (UInt64, RecordWord) -> Void) -> Result {
        var position = from
        let subSize = UInt64(layout.subbufferSize)
        while position < to {
            let word = RecordWord(rawValue: load(position))
            if word.isBusy && word.kind == .event && word.lap == layout.lap(of: position) {
                guard abandonBusy, word.length >= 16, position + UInt64(word.size) <= to,
                      position + UInt64(word.size) <= (position / subSize + 1) * subSize else {
                    return Result(end: position)   // still being written
                }
                visit(position, word)
                position += UInt64(word.size)
                continue
            }
            guard let kind = word.kind, word.hasReservedBitsClear, !word.isBusy else {
                return Result(end: position, problem: Problem(position: position, reason: "invalid record word 0x\(String(word.rawValue, radix: 16))"))
            }
            guard word.lap == layout.lap(of: position) else {
                return Result(end: position, problem: Problem(position: position, reason: "record from lap \(word.lap), expected lap \(layout.lap(of: position))"))
            }
            let length = UInt64(word.size)
            let subEnd = (position / subSize + 1) * subSize
            guard word.length >= 16 || (kind == .padding && word.length >= 8),
                  kind == .event || word.length & 7 == 0, position + length <= subEnd,
                  position + length <= to else {
                return Result(end: position, problem: Problem(position: position, reason: "record length \(word.length) crosses its sub-buffer or the head"))
            }
            if kind == .subbufferBegin && (position & (subSize - 1) != 0 || length != UInt64(TraceLayout.beginRecordSize)) {
                return Result(end: position, problem: Problem(position: position, reason: "misplaced sub-buffer begin record"))
            }
            visit(position, word)
            position += length
        }
        return Result(end: position)
    }
}
