import CRseqTrace
import Synchronization
import SystemPackage

/// The read side of the ring protocol (docs/BufferProtocol.md §4.6): walking and validating record
/// chains, where reading may start, the in-place drain of discard mode, the copy-and-commit drain of
/// overwrite mode (an rseq sequence on the ring's CPU), the read side of the lock-free protocol
/// (§5: fallback rings and every slow lane), and counter resets.
///
/// It keeps its `SharedTraceBuffer`, so the ring views it makes stay valid. Policy (rounds,
/// statistics, callbacks) belongs to the caller (`TraceDrainer` in RseqTraceConsumer).
package struct RingReader {
    package let buffer: SharedTraceBuffer
    package let layout: TraceLayout

    package init(buffer: SharedTraceBuffer) {
        self.buffer = buffer
        self.layout = buffer.layout
    }

    /// What one read of a ring found besides the events it visited.
    package struct Outcome {
        /// Records lost before they were read: `lost` of the begin records read, plus the loss of a
        /// slot declared recycled whose opening never happened (quiescent drains only).
        package var overwritten: UInt64 = 0
        /// Records whose producer died between reserve and commit (quiescent drains only).
        package var abandoned: UInt64 = 0
        /// Damage found after the records visited (which were consumed): a damaged record, or a
        /// control word that moved impossibly. The caller quarantines the ring.
        package var problem: RecordWalk.Problem?
        /// With a problem: bytes of the ring that were published (below a trusted head) and will not
        /// be read, at most one ring.
        package var hidden: UInt64 = 0
    }

    /// What this consumer knows about a ring from its earlier reads, to detect positions that move
    /// impossibly. Only the consumer writes `consumed`, and `head` only grows.
    package struct Cursor: Sendable {
        /// `consumed` as this consumer last read or published it; nil before its first read.
        package var consumed: UInt64?
        /// The highest `head` validated so far.
        package var head: UInt64 = 0
        /// The thread record in effect at a position this consumer read up to (`pid << 32 | tid`,
        /// 0 when none precedes it in its sub-buffer), so that the next read starting there
        /// attributes its events without walking the sub-buffer from its start again.
        package var thread: (position: UInt64, identity: UInt64)?
        /// A busy record a live read stopped at: its position, its word, since when it is known
        /// unchanged (or since its owner was last found alive), and when this consumer first saw
        /// it (CLOCK_BOOTTIME ns; its owner ran before), for `recoverAbandoned`.
        package var stalled: (position: UInt64, word: UInt64, since: ContinuousClock.Instant, firstSeen: UInt64)?
        package init() {}
    }

    /// How long a busy record must stay unchanged at a live read's position before its owner is
    /// looked up, and then between two look-ups while the owner is alive (docs/BufferProtocol.md §4.6).
    package var abandonmentDelay: Duration = .milliseconds(50)

    /// Test injection point: when set, overwrite-mode reads copy ring bytes into their snapshot
    /// word by word from the last to the first — an order a `memcpy` may use — calling this with
    /// each word's position before loading it, so that a test can store into the ring in the
    /// middle of a copy. nil in production (the copy is a `memcpy`).
    package var snapshotCopyInterleave: ((_ position: UInt64) -> Void)?

    /// No producer reaches this position (2^62 bytes is a century at 1 GB/s): a larger `head` was
    /// written by something else, and positions below it leave room for any arithmetic on them.
    package static let maximumPosition: UInt64 = 1 << 62

    /// Checks `head` and `consumed` as loaded from a ring against each other, the ring's geometry
    /// and what `cursor` remembers. Returns the damage, or nil when both are plausible.
    package func checkPositions(head: UInt64, consumed: UInt64, cursor: Cursor) -> RecordWalk.Problem? {
        if head & 7 != 0 || head > Self.maximumPosition {
            return RecordWalk.Problem(position: head, reason: """
                head \(head) is not a position producers can reach (they are 8-byte aligned and below 2^62)
                """, field: .head)
        }
        if head < cursor.head {
            return RecordWalk.Problem(position: head, reason: "head went backwards from \(cursor.head) to \(head)",
                                      field: .head)
        }
        if let expected = cursor.consumed, consumed != expected {
            return RecordWalk.Problem(position: consumed, reason: """
                consumed changed from \(expected) to \(consumed), but only this consumer writes it
                """, field: .consumed)
        }
        if consumed & 7 != 0 || consumed > head {
            return RecordWalk.Problem(position: consumed, reason: """
                consumed \(consumed) is not 8-byte aligned or is beyond head \(head)
                """, field: .consumed)
        }
        if buffer.mode == .discard && head - consumed > UInt64(layout.ringSize) {
            return RecordWalk.Problem(position: head, reason: """
                head \(head) is more than one ring (\(layout.ringSize) bytes) beyond consumed \(consumed)
                """, field: .head)
        }
        return nil
    }

    /// Bytes a ring quarantined after a position problem leaves unread: from what this consumer
    /// read up to the highest head it can trust (this read's `head` if plausible), at most a ring.
    /// When the head itself is wrong, the valid record chain that starts there counts too: a
    /// head moved backwards hides the records it no longer covers.
    func hiddenBytes(ring: RingView, head: UInt64, consumed: UInt64, cursor: Cursor) -> UInt64 {
        let from = cursor.consumed ?? (consumed & 7 == 0 && consumed <= head ? consumed : head)
        var to = cursor.head
        if head & 7 == 0, head <= Self.maximumPosition, head >= cursor.head,
           buffer.mode == .overwrite || head <= from &+ UInt64(layout.ringSize) {
            to = head
        }
        let belowHead = to > from ? min(to - from, UInt64(layout.ringSize)) : 0
        return max(belowHead, chainBytes(ring: ring, from: from))
    }

    /// Bytes of the valid record chain starting at `from`, however far it goes (at most one
    /// ring; the lap in each record word ends it where older content begins).
    func chainBytes(ring: RingView, from: UInt64) -> UInt64 {
        guard from & 7 == 0, from <= Self.maximumPosition else { return 0 }
        let walk = RecordWalk.run(layout: layout, from: from, to: from &+ UInt64(layout.ringSize),
                                  thread: thread(at: from, ring: ring, known: nil), maximumLost: maximumBeginLost,
                                  word: { ring.loadWord(at: $0, ordering: .acquiring) }, visit: { _, _, _ in })
        return walk.end &- from
    }

    /// Bytes a walk of `[start, head)` that stopped at damage at `end` leaves unread, at most a
    /// ring: from `end`, or from `consumed` when the walk read nothing (in overwrite mode, what lies
    /// between `consumed` and `start` was skipped on the word of the damaged ring's positions).
    func unreadBytes(head: UInt64, consumed: UInt64, start: UInt64, end: UInt64) -> UInt64 {
        let from = end > start ? end : min(consumed, end)
        return head > from ? min(head - from, UInt64(layout.ringSize)) : 0
    }

    /// What the begin records of this object may carry: nothing in discard mode, a
    /// `RecycleMarker` count in overwrite mode.
    var maximumBeginLost: UInt64 { buffer.mode == .discard ? 0 : RecycleMarker.maximumLost }

    /// The thread record in effect at `position` (`pid << 32 | tid`, or 0 when none precedes it in
    /// its sub-buffer), for a walk starting there: none at a sub-buffer start; `known` when an
    /// earlier read ended at `position`; else found by walking the records of its sub-buffer
    /// before it, in the ring. Only call this when those records cannot change during the call,
    /// or when a later check discards the read if they may have (overwrite mode).
    func thread(at position: UInt64, ring: RingView, known: (position: UInt64, identity: UInt64)?) -> UInt64 {
        let subStart = position & ~UInt64(layout.subbufferSize &- 1)
        if position == subStart { return 0 }
        if let known, known.position == position { return known.identity }
        // What lies before `position` was read (or skipped) already: a busy record there was abandoned.
        let walk = RecordWalk.run(layout: layout, from: subStart, to: position, abandonBusy: true,
                                  maximumLost: maximumBeginLost,
                                  word: { ring.loadWord(at: $0, ordering: .acquiring) }, visit: { _, _, _ in })
        return walk.end == position ? walk.thread : 0
    }

    /// Called with the event records a read found, in ring order, a batch at a time (one call per
    /// `RecordBatch.capacity` records at most, and at least once per walk that found any): the
    /// consumer's per-record work runs in its own loop, not behind a call per record. The payload
    /// pointers are valid only during the call.
    package typealias Visit = (UnsafeBufferPointer<VisitedRecord>) -> Void

    /// Whether ring `index` is updated by rseq sequences (else by the lock-free protocol).
    package func usesRseq(_ index: Int) -> Bool {
        buffer.ringProtocol == .rseq && index < layout.cpuRingCount
    }

    // MARK: - Counters

    /// The ring's `dropped` and `tooLarge` counters.
    package func counters(_ index: Int) -> (dropped: UInt64, tooLarge: UInt64) {
        let ring = buffer.ring(index)
        return (ring.load(.dropped, ordering: .relaxed), ring.load(.tooLarge, ordering: .relaxed))
    }

    /// Sets the ring's `dropped` and `tooLarge` counters back to zero atomically with its producers
    /// and returns what it took out: a compare-and-zero sequence on the ring's CPU (rseq rings), or
    /// an atomic exchange (lock-free rings, whose producers count with atomic adds).
    /// - Throws: `.systemCallFailed` when the CPU cannot be reached or producers kept counting.
    package func takeCounters(_ index: Int) throws(TraceError) -> (dropped: UInt64, tooLarge: UInt64) {
        let ring = buffer.ring(index)
        if usesRseq(index) {
            return try onRingCPU(index, purpose: "resetting its counters") { () throws(TraceError) in
                (try zeroOnCPU(ring, index, .dropped), try zeroOnCPU(ring, index, .tooLarge))
            }
        }
        return (ring.takeAndZero(.dropped), ring.takeAndZero(.tooLarge))
    }

    /// Compare-and-zero of a counter on its ring's CPU (the caller is pinned there); returns the
    /// value it took out.
    private func zeroOnCPU(_ ring: RingView, _ index: Int, _ field: ControlField) throws(TraceError) -> UInt64 {
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

    // MARK: - Reading in place (discard mode, or no producer left)

    /// Walks `[consumed, head)` in place, visits each committed event, then publishes how far it got
    /// (`consumed`, releasing). With `quiescent` (no producer can run any more) a busy record was
    /// abandoned: it is skipped and counted instead of stopping the walk, and in overwrite mode a slot
    /// declared recycled whose opening never happened has its loss counted (once).
    /// - Parameter wholeSubbuffers: read only the sub-buffers producers have left (up to the start of
    ///   the open one), not the records being added to the open one: a live consumer that keeps up
    ///   then reads memory the producers are done with, instead of taking cache lines from under
    ///   them every round. Ignored when `quiescent`.
    package func readInPlace(_ index: Int, quiescent: Bool, wholeSubbuffers: Bool = false, cursor: inout Cursor,
                             batch: inout RecordBatch, _ visit: Visit) -> Outcome {
        let ring = buffer.ring(index)
        var outcome = Outcome()
        let head = ring.load(.head, ordering: .acquiring)
        let consumed = ring.load(.consumed, ordering: .acquiring)
        if let problem = checkPositions(head: head, consumed: consumed, cursor: cursor) {
            outcome.problem = problem
            outcome.hidden = hiddenBytes(ring: ring, head: head, consumed: consumed, cursor: cursor)
            return outcome
        }
        cursor.head = head
        cursor.consumed = consumed
        var start = consumed
        if buffer.mode == .overwrite {
            let readable = readableRange(ring: ring, head: head, consumed: start)
            // No producer runs (quiescent), so the declared-dead sub-buffer is still intact: the
            // marker must count at least the unread records it destroys, or it hides them.
            if !readable.skipped.isEmpty {
                var unread: UInt64 = 0
                let from = readable.skipped.lowerBound
                let walk = RecordWalk.run(layout: layout, from: from, to: readable.skipped.upperBound,
                                          thread: thread(at: from, ring: ring, known: cursor.thread),
                                          maximumLost: maximumBeginLost,
                                          word: { ring.loadWord(at: $0, ordering: .acquiring) },
                                          visit: { _, word, _ in if word.kind == .event { unread &+= 1 } })
                if walk.problem == nil && unread > readable.pendingLost {
                    let field = ControlField.recycleMarker(slot: readable.pendingSlot)
                    outcome.problem = RecordWalk.Problem(position: readable.pendingLost, reason: """
                        it declares sub-buffer \(readable.skipped.upperBound &- UInt64(layout.subbufferSize)) recycled with \
                        \(readable.pendingLost) lost records, but \(unread) unread records are still in it
                        """, field: field)
                    outcome.hidden = head &- consumed > UInt64(layout.ringSize) ? UInt64(layout.ringSize) : head &- consumed
                    return outcome
                }
            }
            start = readable.start
            outcome.overwritten.addSaturated(readable.pendingLost)
            if readable.pendingLost > 0 {
                // Never count that pending loss twice (the quiescent contract: no producer writes
                // this ring any more, so the reader may clear a producer-owned marker).
                ring.store(ControlField.recycleMarker(slot: readable.pendingSlot), 0, ordering: .relaxed)
            }
        }
        let limit = wholeSubbuffers && !quiescent ? max(start, head & ~UInt64(layout.subbufferSize &- 1)) : head
        let startThread = thread(at: start, ring: ring, known: cursor.thread)
        // SAFETY: `visit` gets payload pointers valid for the call (see `Visit`).
        var walk = unsafe walkInPlace(ring: ring, from: start, to: limit, thread: startThread, quiescent: quiescent,
                                      outcome: &outcome, batch: &batch, visit)
        // A live read stopped at a busy record: if its owner died, the record is replaced by padding
        // (counted abandoned) and the walk goes on past it.
        while !quiescent, walk.problem == nil, walk.end < limit,
              recoverAbandoned(ring: ring, at: walk.end, head: head, thread: walk.thread, cursor: &cursor) {
            outcome.abandoned &+= 1
            // SAFETY: as above.
            walk = unsafe walkInPlace(ring: ring, from: walk.end, to: limit, thread: walk.thread, quiescent: false,
                                      outcome: &outcome, batch: &batch, visit)
        }
        // Every visited payload is delivered before `consumed` lets producers reuse its bytes.
        // SAFETY: the batch holds payload pointers into the ring, delivered here before `consumed` moves.
        unsafe batch.flush(visit)
        if walk.end != consumed {
            ring.store(.consumed, walk.end, ordering: .releasing)
        }
        cursor.consumed = walk.end
        cursor.thread = (walk.end, walk.thread)
        outcome.problem = walk.problem
        if walk.problem != nil { outcome.hidden = unreadBytes(head: head, consumed: consumed, start: start, end: walk.end) }
        return outcome
    }

    /// How far ahead of its position a walk in place prefetches the ring: a few cache lines, so
    /// that the next 4 KiB page of the mapping is on its way before the walk reaches it.
    static let prefetchDistance: UInt64 = 512

    /// The record word at `position` for a walk in place (acquiring: a committed word's record is
    /// complete), with the ring prefetched `prefetchDistance` ahead.
    @inline(__always)
    static func wordInPlace(_ ring: RingView, at position: UInt64) -> UInt64 {
        // SAFETY: a hint only (no fault, no read): the address is masked into the ring.
        unsafe rseqtrace_prefetch_read(ring.pointer(at: position &+ prefetchDistance))
        return ring.loadWord(at: position, ordering: .acquiring)
    }

    /// The walk of `readInPlace` over `[start, head)`, visiting each committed event in place. A
    /// function of its own, small enough that the walk and its closures are inlined into it.
    private func walkInPlace(ring: RingView, from start: UInt64, to head: UInt64, thread: UInt64, quiescent: Bool,
                             outcome: inout Outcome, batch: inout RecordBatch, _ visit: Visit) -> RecordWalk.Result {
        RecordWalk.run(layout: layout, from: start, to: head, abandonBusy: quiescent, thread: thread,
                       maximumLost: maximumBeginLost,
                       word: { RingReader.wordInPlace(ring, at: $0) },
                       visit: { position, word, thread in
            if word.isBusy {
                outcome.abandoned &+= 1   // its producer died between reserve and commit
            } else if word.kind == .event {
                // SAFETY: a committed record inside the ring; the reader owns it until `consumed` moves.
                let payload = unsafe UnsafeRawPointer(ring.pointer(at: position &+ UInt64(TraceLayout.recordHeaderSize)))
                // SAFETY: `payload` stays valid until the batch is delivered, before `consumed` moves.
                unsafe batch.add(VisitedRecord(payload: payload, timestamp: ring.loadWord(at: position &+ 8, ordering: .relaxed),
                                               position: position, word: word, thread: thread), visit)
            } else if word.kind == .subbufferBegin {
                // Checked against `maximumBeginLost` by the walk.
                outcome.overwritten.addSaturated(ring.loadWord(at: position &+ 16, ordering: .relaxed))
            }
        })
    }

    // MARK: - Reading overwrite-mode rings while producers run

    /// Copies the readable part of ring `index` into `scratch` (at least `ringSize` bytes) and
    /// publishes it atomically with the ring's producers — on the ring's CPU (rseq rings only) —
    /// then visits the events of the committed copy.
    /// - Throws: `.systemCallFailed`/`.invalidConfiguration` when the ring's CPU cannot be reached;
    ///   `.corrupted` is not thrown here: damage is returned in `Outcome.problem`.
    package func readSnapshot(_ index: Int, scratch: UnsafeMutableRawBufferPointer, cursor: inout Cursor,
                              batch: inout RecordBatch, _ visit: Visit) throws(TraceError) -> Outcome {
        let known = cursor
        let ring = buffer.ring(index)
        precondition(usesRseq(index), "lock-free rings are read with readLockFree")
        let snapshot = try onRingCPU(index, purpose: "reading it in overwrite mode") { () throws(TraceError) in
            // SAFETY: `scratch` has ringSize bytes (caller's contract, checked in takeSnapshot).
            unsafe takeSnapshot(ring: ring, scratch: scratch, cursor: known, commit: { markerField, marker, limit, end in
                // SAFETY: control words of this ring; the sequence checks it runs on CPU `index`.
                unsafe rseqtrace_load_cbne_load_cbgtu_store__cpu_id(
                    UInt32(index), ring.controlPointer(markerField), marker,
                    ring.controlPointer(.head), limit,
                    ring.controlPointer(.consumed), end) == 0
            })
        }
        var outcome = Outcome(problem: snapshot.problem, hidden: snapshot.hidden)
        if snapshot.positionsChecked {
            cursor.head = snapshot.head
            cursor.consumed = snapshot.committed ? snapshot.end : snapshot.consumed
            if snapshot.committed { cursor.thread = (snapshot.end, snapshot.endThread) }
        }
        // SAFETY: `visit` gets payload pointers into the committed copy, valid for the call.
        unsafe deliverSnapshot(snapshot, scratch: scratch, outcome: &outcome, batch: &batch, visit)
        // Stopped at a busy record: if its owner died, it becomes padding (counted abandoned) and
        // the next read goes on past it. It cannot be recycled meanwhile: a busy record blocks that.
        if snapshot.committed, snapshot.problem == nil, snapshot.end < snapshot.head,
           recoverAbandoned(ring: ring, at: snapshot.end, head: snapshot.head, thread: snapshot.endThread, cursor: &cursor) {
            outcome.abandoned &+= 1
        }
        return outcome
    }

    /// Visits the events of a committed snapshot copy.
    ///
    /// ## Safety
    /// - `scratch` must hold the copy `snapshot` describes, untouched until this returns.
    @unsafe
    private func deliverSnapshot(_ snapshot: Snapshot, scratch: UnsafeMutableRawBufferPointer, outcome: inout Outcome,
                                 batch: inout RecordBatch, _ visit: Visit) {
        guard snapshot.committed, snapshot.end > snapshot.start, let base = scratch.baseAddress else { return }
        let start = snapshot.start
        _ = RecordWalk.run(layout: layout, from: start, to: snapshot.end, thread: snapshot.startThread,
                           maximumLost: maximumBeginLost, word: { position in
            // SAFETY: inside the committed copy (the walk stays in [start, end), end - start <= ringSize), 8-aligned.
            unsafe base.load(fromByteOffset: Int(truncatingIfNeeded: position &- start), as: UInt64.self)
        }, visit: { position, word, thread in
            let offset = Int(truncatingIfNeeded: position &- start)
            if word.kind == .subbufferBegin {
                // SAFETY: the begin record is 24 bytes, inside the copy.
                outcome.overwritten.addSaturated(unsafe base.load(fromByteOffset: offset + 16, as: UInt64.self))
            }
            guard word.kind == .event else { return }
            // SAFETY: the record lies inside the copy, which stays untouched until the next read.
            let timestamp = unsafe base.load(fromByteOffset: offset + 8, as: UInt64.self)
            // SAFETY: as above; the payload follows the 16-byte header.
            let payload = unsafe UnsafeRawPointer(base.advanced(by: offset + TraceLayout.recordHeaderSize))
            // SAFETY: the copy stays untouched until the batch is delivered (below).
            unsafe batch.add(VisitedRecord(payload: payload, timestamp: timestamp, position: position, word: word,
                                           thread: thread), visit)
        })
        // SAFETY: the copy is untouched until this delivery returns.
        unsafe batch.flush(visit)
    }

    // MARK: - Records whose producer died

    /// A live read of lock-free ring `ring` stopped at the incomplete sub-buffer starting at
    /// `subStart` (slot `slot`), reading from `position` up to `end` (docs/BufferProtocol.md §5.6).
    /// Walks its committed records in place up to the first that is not (the sub-buffer cannot be
    /// recycled while incomplete); when that is a busy record whose owner is certainly dead
    /// (`recoverAbandoned`), completes the slot's commit counter with the bytes the dead
    /// reservation would have committed (its extent, plus the begin record when it is the opener's
    /// thread record) and returns true. A word not written yet (stale) is never recovered.
    func recoverLockFree(ring: RingView, from position: UInt64, end: UInt64, subStart: UInt64, slot: Int,
                         known: (position: UInt64, identity: UInt64)?, cursor: inout Cursor) -> Bool {
        let walk = RecordWalk.run(layout: layout, from: position, to: end,
                                  thread: thread(at: position, ring: ring, known: known), maximumLost: maximumBeginLost,
                                  word: { ring.loadWord(at: $0, ordering: .acquiring) }, visit: { _, _, _ in })
        guard walk.end < end else {
            cursor.stalled = nil
            return false
        }
        let busy = RecordWord(rawValue: ring.loadWord(at: walk.end, ordering: .acquiring))
        guard recoverAbandoned(ring: ring, at: walk.end, head: end, thread: walk.thread, cursor: &cursor) else { return false }
        let opener = busy.kind == .thread && walk.end == subStart &+ UInt64(TraceLayout.beginRecordSize)
        let bytes = UInt64(busy.size) &+ (opener ? UInt64(TraceLayout.beginRecordSize) : 0)
        ring.atomicAdd(.commitCounter(slot: slot), bytes, ordering: .releasing)
        return true
    }

    /// A live read stopped at the busy record at `position` (its read position; `thread` is the
    /// thread record in effect there, `head` a head loaded before the walk). Returns true when the
    /// record's owner is certainly dead and this call replaced the busy word with a committed
    /// padding word of the same extent and lap (compare-and-swap on that word: the owner's commit
    /// is one store of it, so a commit is never lost or doubled); the caller counts it abandoned.
    ///
    /// The owner is looked up only once the word has stayed unchanged for `abandonmentDelay`, then
    /// at most once per delay while it is alive. A busy event's owner is the thread record in
    /// effect before it (its writer needed none: it wrote the record before, §2.1); a busy lead's
    /// is its body, read only once the lead carries `ownerKnown`. Death is decided by
    /// `ThreadLiveness`: a stopped, preempted or traced thread is alive; when unsure, it is alive.
    package func recoverAbandoned(ring: RingView, at position: UInt64, head: UInt64, thread: UInt64,
                                  cursor: inout Cursor) -> Bool {
        let raw = ring.loadWord(at: position, ordering: .acquiring)
        let word = RecordWord(rawValue: raw)
        guard word.isReservation(at: position, layout: layout), word.reservationFits(at: position, limit: head, layout: layout),
              let kind = word.kind else {
            cursor.stalled = nil
            return false
        }
        let now = ContinuousClock.now
        guard let stalled = cursor.stalled, stalled.position == position, stalled.word == raw else {
            cursor.stalled = (position, raw, now, ThreadLiveness.bootTimeNow())
            return false
        }
        guard stalled.since.duration(to: now) >= abandonmentDelay else { return false }
        cursor.stalled = (position, raw, now, stalled.firstSeen)
        let owner: UInt64
        if kind == .thread {
            // Without `ownerKnown` the body may not be written yet: never recovered live.
            guard word.isOwnerKnown else { return false }
            // Written before the `ownerKnown` store, which the acquiring load above saw.
            owner = ring.loadWord(at: position &+ 16, ordering: .relaxed)
        } else {
            owner = thread
        }
        // The owner stored this word before this consumer first saw it, so it existed then: a
        // thread of its ids that started later reused them.
        guard owner != 0,
              ThreadLiveness.of(pid: Int32(truncatingIfNeeded: owner >> 32), tid: Int32(truncatingIfNeeded: owner),
                                existedBy: stalled.firstSeen) == .dead,
              ring.compareExchangeWord(at: position, expected: raw, desired: word.abandonedPadding.rawValue) else {
            return false
        }
        cursor.stalled = nil
        return true
    }

    struct Snapshot {
        var start: UInt64 = 0
        var end: UInt64 = 0
        /// Whether `consumed` now holds `end`.
        var committed = false
        /// Whether `head` and `consumed` below passed `checkPositions`.
        var positionsChecked = false
        var head: UInt64 = 0
        var consumed: UInt64 = 0
        /// The thread record in effect at `start` and at `end` (see `RingReader.thread(at:ring:known:)`).
        var startThread: UInt64 = 0
        var endThread: UInt64 = 0
        /// Damage found right after `end` (reported once the records before it are delivered), or
        /// positions that moved impossibly.
        var problem: RecordWalk.Problem?
        /// With a problem: published bytes that will not be read (see `Outcome.hidden`).
        var hidden: UInt64 = 0
    }

    /// Copies the readable part of a ring into `scratch` and publishes it with `commit`
    /// (`commit(markerField, marker, limit, end)` must store `end` into `consumed` only if the
    /// marker is unchanged and `head <= limit`, atomically with the ring's producers). Retries when
    /// producers recycled what was being copied.
    ///
    /// ## Safety
    /// - `scratch` must be writable memory of at least `layout.ringSize` bytes.
    @unsafe
    private func takeSnapshot(ring: RingView, scratch: UnsafeMutableRawBufferPointer, cursor: Cursor,
                              commit: (_ markerField: ControlField, _ marker: UInt64, _ limit: UInt64, _ end: UInt64) -> Bool)
        -> Snapshot {
        let p = UInt64(layout.subbufferSize)
        let lapSpan = UInt64(layout.ringSize)
        // SAFETY: only compares the base address with nil.
        guard scratch.count >= layout.ringSize, unsafe scratch.baseAddress != nil else {
            return Snapshot(problem: RecordWalk.Problem(position: 0, reason: "the scratch buffer cannot hold a whole ring"))
        }
        var last = Snapshot()
        for _ in 0..<64 {
            let head = ring.load(.head, ordering: .acquiring)
            let consumed = ring.load(.consumed, ordering: .acquiring)
            if let problem = checkPositions(head: head, consumed: consumed, cursor: cursor) {
                return Snapshot(problem: problem, hidden: hiddenBytes(ring: ring, head: head, consumed: consumed, cursor: cursor))
            }
            let start = readableRange(ring: ring, head: head, consumed: consumed).start
            guard start < head else {
                return Snapshot(start: start, end: start, positionsChecked: true, head: head, consumed: consumed)
            }
            // Positions were checked: start <= head <= maximumPosition and head - start <= ringSize.
            guard head - start <= lapSpan else {
                return Snapshot(problem: RecordWalk.Problem(position: start, reason: "readable range \(start)..<\(head) exceeds the ring"),
                                hidden: lapSpan)
            }
            // The first copied sub-buffer dies when its slot's marker changes; later ones only
            // after the head passes `limit`.
            let markerField = ControlField.recycleMarker(slot: layout.slot(of: start))
            let marker = ring.load(markerField, ordering: .acquiring)
            // Read from the ring before the commit: if the sub-buffer of `start` is recycled
            // meanwhile, its marker changes and the commit fails.
            let startThread = thread(at: start, ring: ring, known: cursor.thread)
            // The committed prefix first, walked in place with each record's word acquired: a
            // committed record is complete and stays as it is until its sub-buffer is recycled,
            // which the commit below rules out. Copying [start, head) and walking the copy would
            // not do: a copy orders none of its loads (string instructions; vector loops that load
            // the tail first), so a record committed during the copy could come with its committed
            // word and payload bytes from before the commit (docs/BufferProtocol.md §4.6).
            let walk = RecordWalk.run(layout: layout, from: start, to: head, thread: startThread,
                                      maximumLost: maximumBeginLost, word: { RingReader.wordInPlace(ring, at: $0) },
                                      visit: { _, _, _ in })
            // Copy [start, walk.end) — at most one ring — in up to two pieces around the ring end.
            let count = Int(truncatingIfNeeded: walk.end - start)
            var copied = 0
            while copied < count {
                let position = start &+ UInt64(copied)
                let untilEnd = layout.ringSize - Int(truncatingIfNeeded: position & (lapSpan - 1))
                let piece = min(count - copied, untilEnd)
                // SAFETY: `scratch` has ringSize bytes and copied + piece <= count <= ringSize.
                let destination = unsafe UnsafeMutableRawBufferPointer(rebasing: scratch[copied..<(copied + piece)])
                let fits: Bool
                if let interleave = snapshotCopyInterleave {
                    // SAFETY: as for copyBytes: `destination` has `piece` bytes.
                    fits = unsafe Self.copyBackward(ring: ring, from: position, count: piece, into: destination, before: interleave)
                } else {
                    // SAFETY: `destination` has `piece` bytes; copyBytes checks the ring range.
                    fits = unsafe ring.copyBytes(from: position, count: piece, into: destination)
                }
                guard fits else {
                    return Snapshot(problem: RecordWalk.Problem(position: position, reason: "copy of \(piece) bytes crosses the ring end"),
                                    hidden: UInt64(count))
                }
                copied += piece
            }
            // Nothing copied from sub-buffer start/P on may have been recycled meanwhile.
            let limit = (start / p &+ UInt64(layout.subbuffersPerRing)) &* p
            if commit(markerField, marker, limit, walk.end) {
                return Snapshot(start: start, end: walk.end, committed: true, positionsChecked: true, head: head,
                                consumed: consumed, startThread: startThread, endThread: walk.thread, problem: walk.problem,
                                hidden: walk.problem == nil ? 0 : unreadBytes(head: head, consumed: consumed, start: start, end: walk.end))
            }
            last = Snapshot(positionsChecked: true, head: head, consumed: consumed, problem: walk.problem,
                            hidden: walk.problem == nil ? 0 : unreadBytes(head: head, consumed: consumed, start: start, end: walk.end))
        }
        // Producers kept recycling under us: report nothing this round (or the damage the last
        // copy showed); losses stay counted in begin records the next round will read.
        return last
    }

    /// `RingView.copyBytes` word by word from the last word to the first, calling `before` with
    /// each word's position first (`snapshotCopyInterleave`). `count` is a multiple of 8.
    ///
    /// ## Safety
    /// - `destination` must have at least `count` bytes.
    @unsafe
    private static func copyBackward(ring: RingView, from position: UInt64, count: Int,
                                     into destination: UnsafeMutableRawBufferPointer, before: (UInt64) -> Void) -> Bool {
        let offset = Int(truncatingIfNeeded: position & UInt64(ring.ringSize &- 1))
        guard count >= 0, count % 8 == 0, count <= ring.ringSize &- offset, count <= destination.count else { return false }
        var k = count
        while k > 0 {
            k -= 8
            let wordPosition = position &+ UInt64(k)
            before(wordPosition)
            // SAFETY: k + 8 <= count <= destination.count (caller's contract and the guard above).
            unsafe destination.storeBytes(of: ring.loadWord(at: wordPosition, ordering: .relaxed), toByteOffset: k, as: UInt64.self)
        }
        return true
    }

    /// Where reading may start in overwrite mode: after `consumed`, after recycled sub-buffers, and
    /// after the oldest one if its slot was already declared recycled (step 1 of an opening that
    /// has not committed yet, whose loss `pendingLost` will be reported by the begin record).
    /// `skipped` is the unread part of that declared-dead sub-buffer, which `pendingLost` must cover.
    package func readableRange(ring: RingView, head: UInt64, consumed: UInt64)
        -> (start: UInt64, pendingLost: UInt64, pendingSlot: Int, skipped: Range<UInt64>) {
        var start = max(consumed, layout.oldestValid(head: head))
        let p = UInt64(layout.subbufferSize)
        let nextOpen = head % p == 0 ? head : (head / p &+ 1) &* p
        guard nextOpen >= UInt64(layout.ringSize) else { return (start, 0, 0, start..<start) }
        let slot = layout.slot(of: nextOpen)
        let marker = RecycleMarker(rawValue: ring.load(ControlField.recycleMarker(slot: slot), ordering: .acquiring))
        guard marker.tag == layout.subbufferTag(of: nextOpen) else { return (start, 0, slot, start..<start) }
        let deadEnd = nextOpen &- UInt64(layout.ringSize) &+ p
        let skipped = start < deadEnd ? max(start, deadEnd &- p)..<deadEnd : start..<start
        if start < deadEnd { start = deadEnd }
        return (start, marker.lost, slot, skipped)
    }

    // MARK: - Lock-free rings (fallback buffers, every slow lane)

    /// Reads lock-free ring `index` (docs/BufferProtocol.md §5.3–5.4), live or `quiescent`, in either
    /// mode, sub-buffer by sub-buffer from `consumed`:
    /// - a sub-buffer is read when its slot's commit counter shows it complete (closed: `P` bytes
    ///   committed; open: every byte reserved up to the head, the head unchanged around the counter
    ///   load). A live read stops at the first one that is not (a record still being written, or
    ///   a producer stopped inside its reservation): nothing waits, the next round retries;
    /// - discard mode reads in place and then publishes `consumed` (releasing);
    /// - overwrite mode copies the sub-buffer into `scratch`, then checks (after an acquiring
    ///   fence) that the head has not passed the start of the slot's next content: a copy that may
    ///   have been overwritten is dropped, never delivered; what producers destroy is counted from
    ///   begin records (each carries the slot's cumulative destroyed-event count) against the
    ///   slot's accounting word, so the loss is exact whether a record was read, partly read or not;
    /// - `quiescent`: incomplete sub-buffers are walked too; busy records were abandoned.
    /// - Parameter scratch: at least one sub-buffer of writable memory (overwrite mode).
    /// - Parameter cursor: what earlier reads established (`head` and `consumed` are checked
    ///   against it, and every head loaded during the read against the previous one).
    package func readLockFree(_ index: Int, quiescent: Bool, scratch: UnsafeMutableRawBufferPointer,
                              cursor: inout Cursor, batch: inout RecordBatch, _ visit: Visit) -> Outcome {
        let ring = buffer.ring(index)
        let p = UInt64(layout.subbufferSize)
        let perRing = UInt64(layout.subbuffersPerRing)
        let ringSize = UInt64(layout.ringSize)
        let overwrite = buffer.mode == .overwrite
        var outcome = Outcome()
        guard scratch.count >= layout.subbufferSize, let base = scratch.baseAddress else {
            outcome.problem = RecordWalk.Problem(position: 0, reason: "the scratch buffer cannot hold a sub-buffer")
            return outcome
        }
        var position = ring.load(.consumed, ordering: .acquiring)
        let firstHead = ring.load(.head, ordering: .acquiring)
        if let problem = checkPositions(head: firstHead, consumed: position, cursor: cursor) {
            outcome.problem = problem
            outcome.hidden = hiddenBytes(ring: ring, head: firstHead, consumed: position, cursor: cursor)
            return outcome
        }
        cursor.head = firstHead
        cursor.consumed = position
        // The thread record in effect where the previous walk ended.
        var known = cursor.thread
        defer { cursor.thread = known }
        // Bounded: at most a few laps of sub-buffers per call, whatever producers do meanwhile.
        var steps = 0
        while steps < 4 * layout.subbuffersPerRing + 16 {
            steps += 1
            let head = ring.load(.head, ordering: .acquiring)
            if head & 7 != 0 || head > Self.maximumPosition || head < cursor.head {
                outcome.problem = RecordWalk.Problem(position: head, reason: """
                    head moved from \(cursor.head) to \(head) during a read (heads only grow, 8-byte aligned, below 2^62)
                    """, field: .head)
                outcome.hidden = hiddenBytes(ring: ring, head: head, consumed: position, cursor: cursor)
                break
            }
            cursor.head = head
            if overwrite { position = max(position, layout.oldestValid(head: head)) }
            guard position < head else { break }
            // Positions are below 2^62 here (checked above): no arithmetic on them overflows.
            let n = position / p
            let subStart = n &* p
            let subEnd = subStart &+ p
            let slot = Int(truncatingIfNeeded: n % perRing)
            let generationBase = (n / perRing) &* p
            let counter = ring.load(.commitCounter(slot: slot), ordering: .acquiring)
            let end: UInt64
            let complete: Bool
            if head >= subEnd {
                end = subEnd
                complete = counter == generationBase &+ p
            } else {
                end = head
                complete = counter == generationBase &+ (head &- subStart)
                    && ring.load(.head, ordering: .acquiring) == head
            }
            if !complete {
                // Overwrite mode: the slot already holds its next content; the head moved on.
                if overwrite && counter > generationBase &+ p { continue }
                guard quiescent else {
                    // A record of a producer that died may be what keeps it incomplete.
                    if recoverLockFree(ring: ring, from: position, end: end, subStart: subStart, slot: slot,
                                       known: known, cursor: &cursor) {
                        outcome.abandoned &+= 1
                        continue
                    }
                    break
                }
            }
            var walkEnd = position
            var problem: RecordWalk.Problem?
            let accounting = ControlField.readAccounting(slot: slot)
            // Overwrite mode: read before the head check below, which discards the read if the
            // sub-buffer's next content may have reached it.
            let startThread = thread(at: position, ring: ring, known: known)
            var endThread = startThread
            if overwrite {
                // Copy [position, end) (inside one sub-buffer), then validate the copy.
                let count = Int(truncatingIfNeeded: end &- position)
                // SAFETY: count <= P <= scratch.count (the scratch buffer is the caller's, writable).
                guard unsafe ring.copyBytes(from: position, count: count, into: scratch) else {
                    outcome.problem = RecordWalk.Problem(position: position, reason: "a copy of \(count) bytes crosses its sub-buffer")
                    break
                }
                atomicMemoryFence(ordering: .acquiring)
                if ring.load(.head, ordering: .relaxed) > subStart &+ ringSize {
                    continue   // the slot's next content may have reached the copy: deliver nothing
                }
                let from = position
                let walk = RecordWalk.run(layout: layout, from: from, to: end, abandonBusy: quiescent, thread: startThread,
                                          word: { at in
                    // SAFETY: at - from < count, 8-aligned, inside the copy.
                    unsafe base.load(fromByteOffset: Int(truncatingIfNeeded: at &- from), as: UInt64.self)
                }, visit: { at, word, thread in
                    let offset = Int(truncatingIfNeeded: at &- from)
                    if word.isBusy {
                        outcome.abandoned &+= 1
                    } else if word.kind == .subbufferBegin {
                        // SAFETY: the begin record is 24 bytes, inside the copy.
                        let destroyed = unsafe base.load(fromByteOffset: offset + 16, as: UInt64.self)
                        let accounted = ring.load(accounting, ordering: .relaxed)
                        if destroyed > accounted { outcome.overwritten.addSaturated(destroyed - accounted) }
                        ring.store(accounting, destroyed, ordering: .relaxed)
                    } else if word.kind == .event {
                        // SAFETY: as above; the timestamp follows the record word.
                        let timestamp = unsafe base.load(fromByteOffset: offset + 8, as: UInt64.self)
                        // SAFETY: the payload follows the 16-byte header inside the copy, untouched until the
                        // batch is delivered (after the walk, before the next copy).
                        let payload = unsafe UnsafeRawPointer(base.advanced(by: offset + TraceLayout.recordHeaderSize))
                        // SAFETY: as above.
                        unsafe batch.add(VisitedRecord(payload: payload, timestamp: timestamp, position: at, word: word,
                                                       thread: thread), visit)
                        ring.store(accounting, ring.load(accounting, ordering: .relaxed) &+ 1, ordering: .relaxed)
                    }
                })
                walkEnd = walk.end
                endThread = walk.thread
                problem = walk.problem
                // SAFETY: the copy is delivered before the next sub-buffer is copied over it.
                unsafe batch.flush(visit)
            } else {
                let walk = RecordWalk.run(layout: layout, from: position, to: end, abandonBusy: quiescent, thread: startThread,
                                          word: { ring.loadWord(at: $0, ordering: .acquiring) },
                                          visit: { at, word, thread in
                    if word.isBusy {
                        outcome.abandoned &+= 1
                    } else if word.kind == .event {
                        // SAFETY: a committed record inside the ring; producers do not reuse it before `consumed` passes it.
                        let payload = unsafe UnsafeRawPointer(ring.pointer(at: at &+ UInt64(TraceLayout.recordHeaderSize)))
                        // SAFETY: `payload` stays valid until the batch is delivered, before `consumed` moves.
                        unsafe batch.add(VisitedRecord(payload: payload, timestamp: ring.loadWord(at: at &+ 8, ordering: .relaxed),
                                                       position: at, word: word, thread: thread), visit)
                    } else if word.kind == .subbufferBegin {
                        outcome.overwritten.addSaturated(ring.loadWord(at: at &+ 16, ordering: .relaxed))
                    }
                })
                walkEnd = walk.end
                endThread = walk.thread
                problem = walk.problem
                // SAFETY: delivered before `consumed` moves past these records.
                unsafe batch.flush(visit)
            }
            if walkEnd != position {
                position = walkEnd
                ring.store(.consumed, position, ordering: .releasing)
                cursor.consumed = position
                known = (position, endThread)
            }
            if let problem {
                outcome.problem = problem
                outcome.hidden = head > walkEnd ? min(head - walkEnd, ringSize) : 0
                break
            }
            if walkEnd < end { break }
        }
        return outcome
    }

    // MARK: - Acting atomically with a ring's producers

    /// Runs `body` on ring `index`'s CPU (the cpu_opv emulation), mapping failures to TraceError.
    private func onRingCPU<R>(_ index: Int, purpose: String, _ body: () throws(TraceError) -> R) throws(TraceError) -> R {
        guard buffer.indexing == .cpuID else {
            throw TraceError(.invalidConfiguration, "ring \(index): \(purpose) needs cpu_id indexing to reach the ring's CPU")
        }
        guard RseqRuntime.prepareCurrentThreadSlow() else {
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

}

extension TraceLayout {
    /// First position whose sub-buffer has not been recycled for a given head.
    package func oldestValid(head: UInt64) -> UInt64 {
        guard head > 0 else { return 0 }
        let p = UInt64(subbufferSize)
        let current = (head - 1) / p
        let count = UInt64(subbuffersPerRing)
        return current &+ 1 >= count ? (current &+ 1 &- count) &* p : 0
    }
}

/// Walking and validating a chain of records.
package enum RecordWalk {
    /// Where and why a walk found damage.
    package struct Problem {
        /// Position of the damaged record, or the impossible value of `field`.
        package var position: UInt64
        package var reason: String
        /// The control word at fault; nil when the damage is the record at `position`.
        package var field: ControlField? = nil
    }
    package struct Result {
        /// Position after the last complete record (where a busy record or a problem stopped it).
        package var end: UInt64
        /// The thread record in effect at `end` (`pid << 32 | tid`; 0 when none precedes it in its
        /// sub-buffer).
        package var thread: UInt64 = 0
        package var problem: Problem?
    }

    /// Meant to be inlined into a small caller (e.g. `RingReader.walkInPlace`), with that caller's
    /// `word` and `visit` closures inlined into the loop. `visit` receives each record's position
    /// and word, and the thread record in effect for it (`pid << 32 | tid`): events always have
    /// one, since an event with none before it in its sub-buffer is damage.
    /// - Parameter abandonBusy: true when no producer can run any more: a record still being
    ///   written was abandoned (its producer died between reserve and commit); it is passed to
    ///   `visit` (busy) and skipped instead of stopping the walk. A busy thread record's lead word
    ///   covers the event reserved with it: both are skipped, as one abandoned record.
    /// - Parameter thread: the thread record in effect at `from` (see `RingReader.thread(at:ring:known:)`);
    ///   ignored when `from` starts a sub-buffer.
    @inline(__always)
    package static func run(layout: TraceLayout, from: UInt64, to: UInt64, abandonBusy: Bool = false, thread initialThread: UInt64 = 0,
                            maximumLost: UInt64 = RecycleMarker.maximumLost, word load: (UInt64) -> UInt64,
                            visit: (UInt64, RecordWord, UInt64) -> Void) -> Result {
        var position = from
        var thread = initialThread
        let subSize = UInt64(layout.subbufferSize)
        while position < to {
            // Each sub-buffer names the writers of its events anew.
            if position & (subSize &- 1) == 0 { thread = 0 }
            let word = RecordWord(rawValue: load(position))
            // The common record in one comparison: a committed event of this lap (kind, busy and
            // reserved bits, and lap, compared at once), with a thread record before it, lying inside
            // its sub-buffer and the range. Anything else takes the checks below, which accept
            // exactly the same events.
            if word.rawValue & RecordWord.lapAndFlagsMask == UInt64(layout.lap(of: position)) << 48 | RecordWord.committedEventBits,
               thread != 0, word.length >= TraceLayout.recordHeaderSize {
                let end = position &+ UInt64(word.size)
                if end <= to && end <= (position | (subSize &- 1)) &+ 1 {
                    visit(position, word, thread)
                    position = end
                    continue
                }
            }
            if word.isReservation(at: position, layout: layout) {
                guard abandonBusy, word.reservationFits(at: position, limit: to, layout: layout) else {
                    return Result(end: position, thread: thread)   // still being written
                }
                visit(position, word, thread)
                // An abandoned thread record may never have been written: no thread is known after it.
                if word.kind == .thread { thread = 0 }
                position &+= UInt64(word.size)
                continue
            }
            guard let kind = word.kind, word.hasReservedBitsClear, !word.isBusy else {
                return Result(end: position, thread: thread, problem: Problem(position: position, reason: "invalid record word 0x\(String(word.rawValue, radix: 16))"))
            }
            guard word.lap == layout.lap(of: position) else {
                return Result(end: position, thread: thread, problem: Problem(position: position, reason: "record from lap \(word.lap), expected lap \(layout.lap(of: position))"))
            }
            let length = UInt64(word.size)
            let subEnd = (position | (subSize &- 1)) &+ 1   // sub-buffers are a power of two
            guard word.length >= 16 || (kind == .padding && word.length >= 8),
                  kind == .event || word.length & 7 == 0, position &+ length <= subEnd,
                  position &+ length <= to else {
                return Result(end: position, thread: thread, problem: Problem(position: position, reason: "record length \(word.length) crosses its sub-buffer or the head"))
            }
            switch kind {
            case .subbufferBegin:
                if position & (subSize - 1) != 0 || length != UInt64(TraceLayout.beginRecordSize) {
                    return Result(end: position, thread: thread, problem: Problem(position: position, reason: "misplaced sub-buffer begin record"))
                }
                let lost = load(position &+ 16)
                guard lost <= maximumLost else {
                    return Result(end: position, thread: thread, problem: Problem(position: position, reason: """
                        sub-buffer begin record claims \(lost) lost records, more than the \(maximumLost) it can carry
                        """))
                }
            case .thread:
                guard length == UInt64(TraceLayout.threadRecordSize) else {
                    return Result(end: position, thread: thread, problem: Problem(position: position, reason: """
                        thread record of length \(word.length) (thread records are \(TraceLayout.threadRecordSize) bytes)
                        """))
                }
                let identity = load(position &+ 16)
                guard identity != 0 else {
                    return Result(end: position, thread: thread, problem: Problem(position: position, reason: "thread record names no thread (pid and tid 0)"))
                }
                thread = identity
            case .event:
                guard thread != 0 else {
                    return Result(end: position, thread: thread, problem: Problem(position: position, reason: """
                        event record with no thread record before it in its sub-buffer
                        """))
                }
            case .padding:
                break
            }
            visit(position, word, thread)
            position &+= length
        }
        return Result(end: position, thread: thread)
    }
}

extension ControlField {
    /// The word's name, for messages about damage.
    package var name: String {
        switch rawValue {
        case ControlField.head.rawValue: "head"
        case ControlField.dropped.rawValue: "dropped counter"
        case ControlField.tooLarge.rawValue: "tooLarge counter"
        case ControlField.lastWriter.rawValue: "last writer"
        case ControlField.consumed.rawValue: "consumed"
        case ControlField.readAccounting.rawValue...:
            "read accounting word of slot \((rawValue &- ControlField.readAccounting.rawValue) / 8)"
        case ControlField.commitCounters.rawValue...:
            "commit counter of slot \((rawValue &- ControlField.commitCounters.rawValue) / 8)"
        case ControlField.recycleMarkers.rawValue...: "recycle marker of slot \((rawValue &- ControlField.recycleMarkers.rawValue) / 8)"
        default: "control word"
        }
    }
}

/// An event record a read found: where it is, its word and timestamp, and its payload (valid only
/// while the batch holding it is being delivered).
@safe
@frozen
@usableFromInline
package struct VisitedRecord {
    @usableFromInline package var payload: UnsafeRawPointer
    @usableFromInline package var timestamp: UInt64
    @usableFromInline package var position: UInt64
    @usableFromInline package var word: RecordWord
    /// The thread that wrote the record: `pid << 32 | tid`, from the thread record before it.
    @usableFromInline package var thread: UInt64

    @inlinable
    package init(payload: UnsafeRawPointer, timestamp: UInt64, position: UInt64, word: RecordWord, thread: UInt64) {
        // SAFETY: stores the pointer value only; it is read under the batch's contract.
        unsafe self.payload = payload
        self.timestamp = timestamp
        self.position = position
        self.word = word
        self.thread = thread
    }

    /// Process id of the writer (from the thread record before the record).
    @inlinable package var processID: Int32 { Int32(truncatingIfNeeded: thread >> 32) }
    /// Thread id of the writer (from the thread record before the record).
    @inlinable package var threadID: Int32 { Int32(truncatingIfNeeded: thread) }
}

/// Storage a reader fills with the records it visits and hands to the consumer (`RingReader.Visit`)
/// when full and at the end of every walk, before the payloads can change. The caller owns the
/// storage (allocated once, `capacity` records) and keeps it for the reads it passes it to.
@safe
package struct RecordBatch {
    /// The records one delivery holds at most.
    package static let capacity = 256
    private let storage: UnsafeMutablePointer<VisitedRecord>
    private var count = 0

    /// ## Safety
    /// `storage` must hold `RecordBatch.capacity` records and be used by one batch at a time.
    @unsafe
    package init(storage: UnsafeMutablePointer<VisitedRecord>) {
        // SAFETY: the caller's promise (see Safety).
        unsafe self.storage = storage
    }

    @inline(__always)
    mutating func add(_ record: VisitedRecord, _ visit: RingReader.Visit) {
        // SAFETY: count < capacity (a full batch is delivered right away), inside the storage.
        unsafe (storage + count).initialize(to: record)
        count &+= 1
        // SAFETY: a full batch is delivered before the next record is added.
        if count == RecordBatch.capacity { unsafe flush(visit) }
    }

    /// Delivers the records added since the last delivery, if any.
    mutating func flush(_ visit: RingReader.Visit) {
        guard count > 0 else { return }
        // SAFETY: the first `count` records are initialized (`add`); the batch is read during the call only.
        unsafe visit(UnsafeBufferPointer(start: storage, count: count))
        count = 0
    }
}
