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
        /// Damage found after the records visited (which were consumed).
        package var problem: RecordWalk.Problem?
    }

    /// Called for each event record in ring order: its position, word, timestamp and payload.
    /// The payload is valid only during the call.
    package typealias Visit = (_ position: UInt64, _ word: RecordWord, _ timestamp: UInt64,
                               _ payload: UnsafeRawPointer) -> Void

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
    package func readInPlace(_ index: Int, quiescent: Bool, _ visit: Visit) -> Outcome {
        let ring = buffer.ring(index)
        var outcome = Outcome()
        let head = ring.load(.head, ordering: .acquiring)
        var start = ring.load(.consumed, ordering: .acquiring)
        if buffer.mode == .overwrite {
            let readable = readableRange(ring: ring, head: head, consumed: start)
            start = readable.start
            outcome.overwritten += readable.pendingLost
            if readable.pendingLost > 0 {
                // Never count that pending loss twice (the quiescent contract: no producer writes
                // this ring any more, so the reader may clear a producer-owned marker).
                ring.store(ControlField.recycleMarker(slot: readable.pendingSlot), 0, ordering: .relaxed)
            }
        }
        let walk = RecordWalk.run(layout: layout, from: start, to: head, abandonBusy: quiescent,
                                  word: { ring.loadWord(at: $0, ordering: .acquiring) },
                                  visit: { position, word in
            if word.isBusy {
                outcome.abandoned += 1   // its producer died between reserve and commit
            } else if word.kind == .event {
                // SAFETY: a committed record inside the ring; the reader owns it until `consumed` moves.
                let payload = unsafe UnsafeRawPointer(ring.pointer(at: position + UInt64(TraceLayout.recordHeaderSize)))
                // SAFETY: `payload` stays valid during the call (see `Visit`).
                unsafe visit(position, word, ring.loadWord(at: position + 8, ordering: .relaxed), payload)
            } else if word.kind == .subbufferBegin {
                outcome.overwritten += ring.loadWord(at: position + 16, ordering: .relaxed)
            }
        })
        if walk.end != ring.load(.consumed, ordering: .relaxed) {
            ring.store(.consumed, walk.end, ordering: .releasing)
        }
        outcome.problem = walk.problem
        return outcome
    }

    // MARK: - Reading overwrite-mode rings while producers run

    /// Copies the readable part of ring `index` into `scratch` (at least `ringSize` bytes) and
    /// publishes it atomically with the ring's producers — on the ring's CPU (rseq rings only) —
    /// then visits the events of the committed copy.
    /// - Throws: `.systemCallFailed`/`.invalidConfiguration` when the ring's CPU cannot be reached;
    ///   `.corrupted` is not thrown here: damage is returned in `Outcome.problem`.
    package func readSnapshot(_ index: Int, scratch: UnsafeMutableRawBufferPointer,
                              _ visit: Visit) throws(TraceError) -> Outcome {
        let ring = buffer.ring(index)
        precondition(usesRseq(index), "lock-free rings are read with readLockFree")
        let snapshot = try onRingCPU(index, purpose: "reading it in overwrite mode") { () throws(TraceError) in
            // SAFETY: `scratch` has ringSize bytes (caller's contract, checked in takeSnapshot).
            unsafe takeSnapshot(ring: ring, scratch: scratch, commit: { markerField, marker, limit, end in
                // SAFETY: control words of this ring; the sequence checks it runs on CPU `index`.
                unsafe rseqtrace_load_cbne_load_cbgtu_store__cpu_id(
                    UInt32(index), ring.controlPointer(markerField), marker,
                    ring.controlPointer(.head), limit,
                    ring.controlPointer(.consumed), end) == 0
            })
        }
        var outcome = Outcome(problem: snapshot.problem)
        guard snapshot.end > snapshot.start else { return outcome }
        let start = snapshot.start
        let base = scratch.baseAddress!   // ringSize bytes (checked in takeSnapshot)
        _ = RecordWalk.run(layout: layout, from: start, to: snapshot.end, word: { position in
            // SAFETY: inside the committed copy, 8-aligned.
            unsafe base.load(fromByteOffset: Int(position - start), as: UInt64.self)
        }, visit: { position, word in
            let offset = Int(position - start)
            if word.kind == .subbufferBegin {
                // SAFETY: the begin record is 24 bytes, inside the copy.
                outcome.overwritten += unsafe base.load(fromByteOffset: offset + 16, as: UInt64.self)
            }
            guard word.kind == .event else { return }
            // SAFETY: the record lies inside the copy, which stays untouched until the next read.
            let timestamp = unsafe base.load(fromByteOffset: offset + 8, as: UInt64.self)
            // SAFETY: as above; the payload follows the 16-byte header.
            unsafe visit(position, word, timestamp, UnsafeRawPointer(base.advanced(by: offset + TraceLayout.recordHeaderSize)))
        })
        return outcome
    }

    struct Snapshot {
        var start: UInt64 = 0
        var end: UInt64 = 0
        /// Damage found right after `end` (reported once the records before it are delivered).
        var problem: RecordWalk.Problem?
    }

    /// Copies the readable part of a ring into `scratch` and publishes it with `commit`
    /// (`commit(markerField, marker, limit, end)` must store `end` into `consumed` only if the
    /// marker is unchanged and `head <= limit`, atomically with the ring's producers). Retries when
    /// producers recycled what was being copied.
    ///
    /// ## Safety
    /// - `scratch` must be writable memory of at least `layout.ringSize` bytes.
    @unsafe
    private func takeSnapshot(ring: RingView, scratch: UnsafeMutableRawBufferPointer,
                              commit: (_ markerField: ControlField, _ marker: UInt64, _ limit: UInt64, _ end: UInt64) -> Bool)
        -> Snapshot {
        precondition(scratch.count >= layout.ringSize, "the scratch buffer must hold a whole ring")
        let p = UInt64(layout.subbufferSize)
        let lapSpan = UInt64(layout.ringSize)
        let base = scratch.baseAddress!
        var lastProblem: RecordWalk.Problem?
        for _ in 0..<64 {
            let head = ring.load(.head, ordering: .acquiring)
            let consumed = ring.load(.consumed, ordering: .acquiring)
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
            let walk = RecordWalk.run(layout: layout, from: start, to: head, word: { position in
                // SAFETY: position - start < count <= scratch.count, 8-aligned.
                unsafe base.load(fromByteOffset: Int(position - start), as: UInt64.self)
            }, visit: { _, _ in })
            // Nothing copied from sub-buffer start/P on may have been recycled meanwhile.
            let limit = (start / p + UInt64(layout.subbuffersPerRing)) * p
            if commit(markerField, marker, limit, walk.end) {
                return Snapshot(start: start, end: walk.end, problem: walk.problem)
            }
            lastProblem = walk.problem
        }
        if let lastProblem { return Snapshot(problem: lastProblem) }
        // Producers kept recycling under us: report nothing this round; losses stay counted in
        // begin records the next round will read.
        return Snapshot()
    }

    /// Where reading may start in overwrite mode: after `consumed`, after recycled sub-buffers, and
    /// after the oldest one if its slot was already declared recycled (step 1 of an opening that
    /// has not committed yet, whose loss `pendingLost` will be reported by the begin record).
    package func readableRange(ring: RingView, head: UInt64, consumed: UInt64)
        -> (start: UInt64, pendingLost: UInt64, pendingSlot: Int) {
        var start = max(consumed, layout.oldestValid(head: head))
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
    package func readLockFree(_ index: Int, quiescent: Bool, scratch: UnsafeMutableRawBufferPointer,
                              _ visit: Visit) -> Outcome {
        let ring = buffer.ring(index)
        let p = UInt64(layout.subbufferSize)
        let perRing = UInt64(layout.subbuffersPerRing)
        let ringSize = UInt64(layout.ringSize)
        let overwrite = buffer.mode == .overwrite
        precondition(scratch.count >= layout.subbufferSize, "the scratch buffer must hold a sub-buffer")
        let base = scratch.baseAddress!
        var outcome = Outcome()
        var position = ring.load(.consumed, ordering: .acquiring)
        // Bounded: at most a few laps of sub-buffers per call, whatever producers do meanwhile.
        var steps = 0
        while steps < 4 * layout.subbuffersPerRing + 16 {
            steps += 1
            let head = ring.load(.head, ordering: .acquiring)
            if overwrite { position = max(position, layout.oldestValid(head: head)) }
            guard position < head else { break }
            let n = position / p
            let subStart = n * p
            let subEnd = subStart + p
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
                complete = counter == generationBase &+ (head - subStart)
                    && ring.load(.head, ordering: .acquiring) == head
            }
            if !complete {
                // Overwrite mode: the slot already holds its next content; the head moved on.
                if overwrite && counter > generationBase &+ p { continue }
                guard quiescent else { break }
            }
            var walkEnd = position
            var problem: RecordWalk.Problem?
            let accounting = ControlField.readAccounting(slot: slot)
            if overwrite {
                // Copy [position, end) (inside one sub-buffer), then validate the copy.
                let count = Int(end - position)
                // SAFETY: count <= P <= scratch.count (the scratch buffer is the caller's, writable).
                unsafe ring.copyBytes(from: position, count: count, into: scratch)
                atomicMemoryFence(ordering: .acquiring)
                if ring.load(.head, ordering: .relaxed) > subStart &+ ringSize {
                    continue   // the slot's next content may have reached the copy: deliver nothing
                }
                let from = position
                let walk = RecordWalk.run(layout: layout, from: from, to: end, abandonBusy: quiescent, word: { at in
                    // SAFETY: at - from < count, 8-aligned, inside the copy.
                    unsafe base.load(fromByteOffset: Int(at - from), as: UInt64.self)
                }, visit: { at, word in
                    let offset = Int(at - from)
                    if word.isBusy {
                        outcome.abandoned += 1
                    } else if word.kind == .subbufferBegin {
                        // SAFETY: the begin record is 24 bytes, inside the copy.
                        let destroyed = unsafe base.load(fromByteOffset: offset + 16, as: UInt64.self)
                        let accounted = ring.load(accounting, ordering: .relaxed)
                        if destroyed > accounted { outcome.overwritten += destroyed - accounted }
                        ring.store(accounting, destroyed, ordering: .relaxed)
                    } else if word.kind == .event {
                        // SAFETY: as above; the timestamp follows the record word.
                        let timestamp = unsafe base.load(fromByteOffset: offset + 8, as: UInt64.self)
                        // SAFETY: the payload follows the 16-byte header inside the copy, untouched until the next read.
                        unsafe visit(at, word, timestamp, UnsafeRawPointer(base.advanced(by: offset + TraceLayout.recordHeaderSize)))
                        ring.store(accounting, ring.load(accounting, ordering: .relaxed) &+ 1, ordering: .relaxed)
                    }
                })
                walkEnd = walk.end
                problem = walk.problem
            } else {
                let walk = RecordWalk.run(layout: layout, from: position, to: end, abandonBusy: quiescent,
                                          word: { ring.loadWord(at: $0, ordering: .acquiring) },
                                          visit: { at, word in
                    if word.isBusy {
                        outcome.abandoned += 1
                    } else if word.kind == .event {
                        // SAFETY: a committed record inside the ring; producers do not reuse it before `consumed` passes it.
                        let payload = unsafe UnsafeRawPointer(ring.pointer(at: at + UInt64(TraceLayout.recordHeaderSize)))
                        // SAFETY: `payload` stays valid during the call (see `Visit`).
                        unsafe visit(at, word, ring.loadWord(at: at + 8, ordering: .relaxed), payload)
                    } else if word.kind == .subbufferBegin {
                        outcome.overwritten += ring.loadWord(at: at + 16, ordering: .relaxed)
                    }
                })
                walkEnd = walk.end
                problem = walk.problem
            }
            if walkEnd != position {
                position = walkEnd
                ring.store(.consumed, position, ordering: .releasing)
            }
            if let problem {
                outcome.problem = problem
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
        return current + 1 >= count ? (current + 1 - count) * p : 0
    }
}

/// Walking and validating a chain of records.
package enum RecordWalk {
    /// Where and why a walk found damage.
    package struct Problem {
        package var position: UInt64
        package var reason: String
    }
    package struct Result {
        /// Position after the last complete record (where a busy record or a problem stopped it).
        package var end: UInt64
        package var problem: Problem?
    }

    /// - Parameter abandonBusy: true when no producer can run any more: a record still being
    ///   written was abandoned (its producer died between reserve and commit); it is passed to
    ///   `visit` (busy) and skipped instead of stopping the walk.
    package static func run(layout: TraceLayout, from: UInt64, to: UInt64, abandonBusy: Bool = false,
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
