import CRseqTrace
import Synchronization

/// The write side of the ring protocol (docs/BufferProtocol.md §4.1–4.5): reserve, commit,
/// copy-commit, sub-buffer opening and recycling, counters, and the lock-free protocol of the
/// fallback mode and the slow lane (§5).
///
/// A `RingWriter` is one pointer to its `State` (no reference counting), so the fast path costs no
/// retain or release and slow paths receive it in a register. It owns neither the state nor the
/// mapping it writes into: whoever makes one (an `unsafe` call) keeps both alive for as long as the
/// writer and its reservations are used. `Producer` pairs one with the `SharedTraceBuffer` that owns
/// its state; the tracepoint runtime keeps every attached buffer mapped, and its table of states
/// allocated, for the life of the process.
///
/// Naming: every out-of-line (`@inline(never)`) slow path ends in `Slow`; `Tools/check-fastpath`
/// accepts calls from the fast path to such functions only.
@safe
@frozen
@usableFromInline
package struct RingWriter: @unchecked Sendable {
    /// How this process updates this buffer's rings.
    @frozen
    @usableFromInline
    package enum Path: UInt8, Sendable {
        /// rseq sequences, rings indexed by `cpu_id`.
        case rseqCPU
        /// rseq sequences, rings indexed by `mm_cid` (creating process only).
        case rseqConcurrencyID
        /// Lock-free protocol on the ring of `sched_getcpu()` (the buffer was created in fallback mode).
        case lockFree
        /// The buffer uses rseq but this process cannot: every record goes to the slow lane.
        case slowLaneOnly
    }

    /// Attempts (aborts or lost races) before a record leaves the rseq path for the slow lane.
    /// Bounds the work per record under a debugger single-stepping or a signal storm.
    @usableFromInline package static let maximumAttempts = 64

    /// Compare-and-swap attempts a lock-free reservation makes before it drops (and counts) its
    /// record. Each failed attempt means another reservation of the ring succeeded, so the bound is
    /// reached only under extreme contention; it keeps the work per record bounded.
    @usableFromInline package static let maximumSwapAttempts = 4096

    /// What a writer reads on every record: the rings' address and the geometry, precomputed so
    /// the fast path has no overflow checks or divisions. Stored once per buffer and process (by
    /// the buffer for its `Producer`s, in the runtime's table for tracepoints); writers refer to
    /// it in place, so calling a slow path never copies it.
    @safe
    @frozen
    @usableFromInline
    package struct State: @unchecked Sendable {
        @usableFromInline let rings: UnsafeMutableRawPointer
        /// The lines table (each ring's producer and consumer lines).
        @usableFromInline let lines: UnsafeMutableRawPointer
        /// The header's `memoryExhausted` flag.
        @usableFromInline let memoryExhausted: UnsafeMutableRawPointer
        /// Whether producers populate each sub-buffer before its first opening (the object was
        /// created without populating its rings).
        @usableFromInline let populatesLazily: Bool
        @usableFromInline let layout: TraceLayout
        @usableFromInline let path: Path
        @usableFromInline let mode: BufferMode
        @usableFromInline let stride: Int
        @usableFromInline let subbufferSize: UInt64
        @usableFromInline let subbufferMask: UInt64
        @usableFromInline let cpuRings: UInt32
        @usableFromInline let maximumPayloadSize: Int

        /// ## Safety
        /// - `base` must point to the start of a mapping laid out by `layout`, which must stay
        ///   mapped for as long as this state (and any writer or reservation made with it) is used.
        @unsafe
        package init(base: UnsafeMutableRawPointer, layout: TraceLayout, path: Path, mode: BufferMode,
                     populatesLazily: Bool) {
            // SAFETY: the caller vouches that the mapping stays mapped (see `## Safety`).
            unsafe self.rings = base.advanced(by: layout.ringsOffset)
            // SAFETY: as above.
            unsafe self.lines = base.advanced(by: layout.linesOffset)
            // SAFETY: as above; the flag is a header word.
            unsafe self.memoryExhausted = base.advanced(by: HeaderField.memoryExhausted.rawValue)
            self.populatesLazily = populatesLazily
            self.layout = layout
            self.path = path
            self.mode = mode
            self.stride = layout.ringStride
            self.subbufferSize = UInt64(layout.subbufferSize)
            self.subbufferMask = UInt64(layout.subbufferSize - 1)
            self.cpuRings = UInt32(layout.cpuRingCount)
            self.maximumPayloadSize = layout.maximumPayloadSize
        }
    }

    /// The state this writer uses, in place (one pointer: the writer is passed in a register).
    @usableFromInline let state: UnsafePointer<State>

    /// ## Safety
    /// - `state` must stay valid, and its mapping mapped, for as long as this writer (and any copy or
    ///   reservation made with it) is used.
    @unsafe
    @inlinable
    package init(state: UnsafePointer<State>) {
        // SAFETY: the caller vouches for the state's lifetime (see `## Safety`).
        unsafe self.state = state
    }

    // Fields of the state, each read in place (one load).
    @inlinable var rings: UnsafeMutableRawPointer { unsafe state.pointee.rings }  // SAFETY: the state outlives `self`
    @inlinable var lines: UnsafeMutableRawPointer { unsafe state.pointee.lines }  // SAFETY: as above
    @inlinable package var layout: TraceLayout { unsafe state.pointee.layout }  // SAFETY: as above
    @inlinable package var path: Path { unsafe state.pointee.path }  // SAFETY: as above
    @inlinable package var mode: BufferMode { unsafe state.pointee.mode }  // SAFETY: as above
    @inlinable var stride: Int { unsafe state.pointee.stride }  // SAFETY: as above
    @inlinable var subbufferSize: UInt64 { unsafe state.pointee.subbufferSize }  // SAFETY: as above
    @inlinable var subbufferMask: UInt64 { unsafe state.pointee.subbufferMask }  // SAFETY: as above
    @inlinable var cpuRings: UInt32 { unsafe state.pointee.cpuRings }  // SAFETY: as above
    @inlinable var maximumPayloadSize: Int { unsafe state.pointee.maximumPayloadSize }  // SAFETY: as above

    /// The view of ring `index`, without a bounds check (the fast path computes `index` itself).
    ///
    /// ## Safety
    /// - `index` must be below `layout.ringCount`.
    @unsafe
    @inlinable
    @_lifetime(borrow self)
    package func ring(_ index: Int) -> RingView {
        // SAFETY: index < layout.ringCount (caller's obligation); the mapping outlives `self`.
        let control = unsafe rings.advanced(by: index &* stride)
        // SAFETY: the ring and its line entry lie inside the mapping (index < ringCount), which
        // outlives the writer.
        return unsafe RingView(lines: lines.advanced(by: index &* TraceLayout.lineStride), control: control,
                               data: control.advanced(by: TraceLayout.controlSize), ringSize: layout.ringSize, owner: self)
    }

    // MARK: - Reserve and commit

    /// Reserves a record with room for `payloadSize` bytes of payload on the current CPU's ring.
    /// - Returns: the reserved record, or `nil` when the record was dropped (and counted).
    @inlinable
    @inline(__always)
    package func reserve(eventID: UInt16, payloadSize: Int) -> ReservedSlot? {
        guard payloadSize >= 0 && payloadSize <= maximumPayloadSize else {
            refuseTooLargeSlow()
            return nil
        }
        return reserveSlot(eventID: eventID, length: TraceLayout.recordHeaderSize &+ payloadSize)
    }

    // MARK: - Copy-commit

    /// Copy-commit: writes a whole record in one step.
    /// - Returns: true when stored, false when dropped (and counted).
    ///
    /// ## Safety
    /// - `source` must point to `size` readable bytes (or be nil with size 0).
    @unsafe
    @inlinable
    @inline(__always)
    package func write(eventID: UInt16, source: UnsafeRawPointer?, size: Int) -> Bool {
        guard size <= maximumPayloadSize else {
            refuseTooLargeSlow()
            return false
        }
        let total = TraceLayout.recordSize(payloadSize: size)
        if (path == .rseqCPU || path == .rseqConcurrencyID) && size > 0, let source = unsafe source {  // SAFETY: unwrapping the caller's pointer; its `size` bytes are readable by contract
            let words = (size &+ 7) >> 3
            let full = words &- 1
            // The last, possibly partial, word is assembled here so the sequence never reads past
            // the caller's bytes.
            var last: UInt64 = 0
            let tail = size &- (full << 3)
            for i in 0..<tail {
                // SAFETY: i < tail, so the byte is inside `payload`.
                last |= UInt64(unsafe source.load(fromByteOffset: (full << 3) &+ i, as: UInt8.self)) << (UInt64(i) << 3)
            }
            var attempts = 0
            while attempts < RingWriter.maximumAttempts {
                let index = currentIndex()
                guard index < cpuRings else { break }
                // SAFETY: index < cpuRings < ringCount.
                let ring = unsafe self.ring(Int(index))
                let head = ring.load(ControlField.head, ordering: .relaxed)
                let mark = rseqtrace_thread_mark()
                // A record that needs a thread record before it goes through reserve and commit.
                guard fitsOpenSubbuffer(head: head, total: total),
                      ring.load(ControlField.lastWriter, ordering: .relaxed) == RingWriter.writerTag(mark: mark, end: head)
                else { break }
                let word = RecordWord(length: TraceLayout.recordHeaderSize &+ size, kind: .event, eventID: eventID,
                                      lap: layout.lap(of: head), busy: false)
                let newHead = head &+ UInt64(truncatingIfNeeded: total)
                // SAFETY: the record [head, head + total) lies inside the open sub-buffer of this
                // ring; `source` holds `size` bytes of which the sequence reads `full` words.
                let outcome = unsafe runCopyCommit(
                    index: index, head: ring.controlPointer(ControlField.head), expect: head,
                    destination: ring.pointer(at: head &+ 16).assumingMemoryBound(to: UInt64.self),
                    source: source.assumingMemoryBound(to: UInt64.self), full: UInt64(full), last: last,
                    word: word.rawValue, newHead: newHead)
                if outcome == 0 {
                    ring.store(ControlField.lastWriter, RingWriter.writerTag(mark: mark, end: newHead), ordering: .relaxed)
                    return true
                }
                attempts &+= 1
            }
        }
        // Opening a sub-buffer, a thread record first, an empty payload, or not on the rseq path:
        // reserve, copy, commit.
        guard let slot = reserveSlot(eventID: eventID, length: TraceLayout.recordHeaderSize &+ size) else { return false }
        if size > 0, let source = unsafe source {  // SAFETY: as above
            // SAFETY: the reserved record has room for `size` payload bytes after its 16-byte header.
            unsafe slot.record.advanced(by: TraceLayout.recordHeaderSize).copyMemory(from: source, byteCount: size)
        }
        slot.commit()
        return true
    }

    // MARK: - Shared reservation logic

    /// Reserves a record of `length` bytes (header + payload; it occupies `length` rounded up to 8);
    /// returns the record start and the word its commit must store.
    @inlinable
    @inline(__always)
    func reserveSlot(eventID: UInt16, length: Int) -> ReservedSlot? {
        let total = TraceLayout.occupiedSize(length: length)
        switch path {
        case .rseqCPU, .rseqConcurrencyID:
            var attempts = 0
            while attempts < RingWriter.maximumAttempts {
                let index = currentIndex()
                guard index < cpuRings else {
                    return reserveUnregisteredSlow(eventID: eventID, length: length)
                }
                // SAFETY: index < cpuRings < ringCount.
                let ring = unsafe self.ring(Int(index))
                let head = ring.load(ControlField.head, ordering: .relaxed)
                let mark = rseqtrace_thread_mark()
                // The common case: the record fits the open sub-buffer and this thread wrote the
                // record before it, so its thread record already precedes (§2.1).
                if fitsOpenSubbuffer(head: head, total: total),
                   ring.load(ControlField.lastWriter, ordering: .relaxed) == RingWriter.writerTag(mark: mark, end: head) {
                    let word = RecordWord(length: length, kind: .event, eventID: eventID,
                                          lap: layout.lap(of: head), busy: true)
                    // SAFETY: [head, head + total) lies in the open sub-buffer of this ring.
                    let record = unsafe ring.pointer(at: head)
                    let newHead = head &+ UInt64(truncatingIfNeeded: total)
                    // SAFETY: pointers into this ring's control block and data.
                    let outcome = unsafe runReserve(
                        index: index, head: ring.controlPointer(ControlField.head), expect: head,
                        slot: record.assumingMemoryBound(to: UInt64.self), word: word.rawValue, newHead: newHead)
                    if outcome == 0 {
                        ring.store(ControlField.lastWriter, RingWriter.writerTag(mark: mark, end: newHead), ordering: .relaxed)
                        // SAFETY: the sequence reserved [head, head + total) for this thread.
                        return unsafe ReservedSlot(record: record, committedWord: word.committed.rawValue)
                    }
                } else {
                    switch reserveWithThreadRecordSlow(index: index, ring: ring, head: head, length: length, eventID: eventID) {
                    case .reserved(let slot): return slot
                    case .refused: return nil
                    case .retry: break
                    }
                }
                attempts &+= 1
            }
            return reserveOnSlowLaneSlow(eventID: eventID, length: length)
        case .lockFree:
            return reserveFallbackSlow(eventID: eventID, length: length)
        case .slowLaneOnly:
            return reserveOnSlowLaneSlow(eventID: eventID, length: length)
        }
    }

    /// Whether a record of `total` bytes fits the sub-buffer `head` is in, which is open (it has a
    /// begin record) unless `head` sits on a sub-buffer boundary.
    @inlinable
    @inline(__always)
    func fitsOpenSubbuffer(head: UInt64, total: Int) -> Bool {
        let inSub = head & subbufferMask
        return inSub != 0 && inSub &+ UInt64(truncatingIfNeeded: total) <= subbufferSize
    }

    /// The `lastWriter` value of a thread with mark `mark` whose latest record ends at `end`:
    /// `mark << 32 | UInt32(truncating: end >> 3)` (docs/BufferProtocol.md §2.1). A thread
    /// without a mark (0) never matches a stored value at a position where a record can be
    /// reserved without opening a sub-buffer.
    @inlinable
    @inline(__always)
    static func writerTag(mark: UInt32, end: UInt64) -> UInt64 {
        UInt64(mark) << 32 | (end >> 3) & 0xFFFF_FFFF
    }

    /// The calling thread's mark, assigned (with its pid and tid) on first use.
    @usableFromInline
    static func assignedThreadMark() -> UInt32 {
        let mark = rseqtrace_thread_mark()
        return mark != 0 ? mark : rseqtrace_assign_thread_identity()
    }

    /// The index field of the calling thread, or a value >= cpuRingCount when it is not registered.
    @inlinable
    func currentIndex() -> UInt32 {
        let cpu = rseqtrace_current_cpu_id()
        if path == .rseqConcurrencyID && cpu < cpuRings {
            return rseqtrace_current_mm_cid()
        }
        return cpu
    }

    @inlinable
    @unsafe
    func runReserve(index: UInt32, head: UnsafeMutablePointer<UInt64>, expect: UInt64,
                    slot: UnsafeMutablePointer<UInt64>, word: UInt64, newHead: UInt64) -> Int32 {
        if path == .rseqCPU {
            // SAFETY: forwarded caller obligations (pointers into the ring).
            return unsafe rseqtrace_load_cbne_stamp_trystore_store__cpu_id(index, head, expect, slot, word, newHead)
        }
        // SAFETY: as above.
        return unsafe rseqtrace_load_cbne_stamp_trystore_store__mm_cid(index, head, expect, slot, word, newHead)
    }

    @inlinable
    @unsafe
    func runCopyCommit(index: UInt32, head: UnsafeMutablePointer<UInt64>, expect: UInt64,
                       destination: UnsafeMutablePointer<UInt64>, source: UnsafePointer<UInt64>,
                       full: UInt64, last: UInt64, word: UInt64, newHead: UInt64) -> Int32 {
        if path == .rseqCPU {
            // SAFETY: forwarded caller obligations.
            return unsafe rseqtrace_load_cbne_stamp_memcpy_trystore_store__cpu_id(
                index, head, expect, destination, source, full, last, word, newHead)
        }
        // SAFETY: as above.
        return unsafe rseqtrace_load_cbne_stamp_memcpy_trystore_store__mm_cid(
            index, head, expect, destination, source, full, last, word, newHead)
    }

    @usableFromInline
    enum OpenOutcome {
        case reserved(ReservedSlot)
        case refused
        case retry
    }

    /// A reservation on an rseq ring that the fast path could not make: the record needs a thread
    /// record before it (another thread, or nobody this process knows, wrote the record before
    /// the head), or it does not fit the open sub-buffer. Reserves the thread record and the
    /// record in one sequence (the thread record's busy lead word covers both), or opens the next
    /// sub-buffer, which always starts with a thread record.
    @inline(never)
    @usableFromInline
    func reserveWithThreadRecordSlow(index: UInt32, ring: RingView, head: UInt64, length: Int, eventID: UInt16) -> OpenOutcome {
        let mark = RingWriter.assignedThreadMark()
        let pair = TraceLayout.threadRecordSize &+ TraceLayout.occupiedSize(length: length)
        guard fitsOpenSubbuffer(head: head, total: pair) else {
            return openSubbufferSlow(index: index, ring: ring, head: head, length: length, eventID: eventID, mark: mark)
        }
        let newHead = head &+ UInt64(truncatingIfNeeded: pair)
        // SAFETY: [head, newHead) lies in the open sub-buffer of this ring; pointers into this ring.
        let outcome = unsafe runReserve(
            index: index, head: ring.controlPointer(ControlField.head), expect: head,
            slot: ring.pointer(at: head).assumingMemoryBound(to: UInt64.self),
            word: RecordWord.lead(length: length, lap: layout.lap(of: head)).rawValue, newHead: newHead)
        guard outcome == 0 else { return .retry }
        ring.store(ControlField.lastWriter, RingWriter.writerTag(mark: mark, end: newHead), ordering: .relaxed)
        return .reserved(leadWithThreadRecordSlow(ring: ring, lead: head, length: length, eventID: eventID))
    }

    /// After a sequence reserved a thread record at `lead` followed by an event record of
    /// `length` bytes (and stamped the lead): writes the thread record's body (the calling
    /// thread's pid and tid), gives the event record the same timestamp and its busy word, and
    /// returns the reservation, whose commit publishes the event and then the thread record.
    @inline(never)
    @usableFromInline
    func leadWithThreadRecordSlow(ring: RingView, lead: UInt64, length: Int, eventID: UInt16) -> ReservedSlot {
        let record = lead &+ UInt64(TraceLayout.threadRecordSize)
        let word = RecordWord(length: length, kind: .event, eventID: eventID, lap: layout.lap(of: record), busy: true)
        ring.storeWord(at: lead &+ 16, rseqtrace_thread_process_and_id(), ordering: .relaxed)
        ring.storeWord(at: record &+ 8, ring.loadWord(at: lead &+ 8, ordering: .relaxed), ordering: .relaxed)
        ring.storeWord(at: record, word.rawValue, ordering: .relaxed)
        // The owner is now readable: a consumer that acquires the lead with `ownerKnown` sees the
        // body (docs/BufferProtocol.md §2.1). Only this thread writes the lead until its commit.
        ring.storeWord(at: lead, RecordWord.lead(length: length, lap: layout.lap(of: lead)).withOwnerKnown.rawValue,
                       ordering: .releasing)
        // SAFETY: the sequence reserved the thread record at `lead` and the record after it for this thread.
        return unsafe ReservedSlot(record: ring.pointer(at: record), committedWord: word.committed.rawValue,
                                   afterThreadRecord: true)
    }

    /// Opening the next sub-buffer (once per sub-buffer): pads the current one, recycles or checks
    /// space for the next, writes its begin record, the thread record and the first record in one
    /// sequence.
    @inline(never)
    @usableFromInline
    func openSubbufferSlow(index: UInt32, ring: RingView, head: UInt64, length: Int, eventID: UInt16,
                           mark: UInt32) -> OpenOutcome {
        guard populateBeforeOpening(ring: ring, head: head) else {
            countOnCurrentRingSlow(ControlField.dropped)
            return .refused
        }
        let consumed = ring.load(ControlField.consumed, ordering: .acquiring)
        let plan: SubbufferOpening
        switch SubbufferOpening.plan(layout: layout, mode: mode, ring: ring, head: head, consumed: consumed,
                                     length: length) {
        case .ready(let p): plan = p
        case .full, .blocked:
            countOnCurrentRingSlow(ControlField.dropped)
            return .refused
        case .recycleFirst(let recycling):
            // Step 1: declare the old content dead; the next attempt plans the opening itself
            // (whether this sequence committed or not).
            if path == .rseqCPU {
                // SAFETY: control words of this ring.
                _ = unsafe rseqtrace_load_cbne_load_cbne_store__cpu_id(
                    index, ring.controlPointer(ControlField.head), head,
                    ring.controlPointer(ControlField.consumed), recycling.consumedExpected,
                    ring.controlPointer(recycling.markerField), recycling.marker.rawValue)
            } else {
                // SAFETY: as above.
                _ = unsafe rseqtrace_load_cbne_load_cbne_store__mm_cid(
                    index, ring.controlPointer(ControlField.head), head,
                    ring.controlPointer(ControlField.consumed), recycling.consumedExpected,
                    ring.controlPointer(recycling.markerField), recycling.marker.rawValue)
            }
            return .retry
        }
        // SAFETY: every position of the plan lies in this ring (see SubbufferOpening.plan).
        var cPlan = unsafe rseqtrace_open_plan(
            pad_slot: ring.pointer(at: plan.padPosition).assumingMemoryBound(to: UInt64.self),
            pad_word: plan.padWord.rawValue,
            begin_slot: ring.pointer(at: plan.beginPosition).assumingMemoryBound(to: UInt64.self),
            begin_word: plan.beginWord.rawValue, begin_lost: plan.lost,
            record_slot: ring.pointer(at: plan.leadPosition).assumingMemoryBound(to: UInt64.self),
            record_word: plan.leadWord.rawValue)
        // Overwrite mode compares the slot's recycle marker too, discard mode the head again.
        // SAFETY: a control word of this ring.
        let second = unsafe ring.controlPointer(plan.secondField)
        let expect2 = plan.secondExpected
        let outcome: Int32
        if path == .rseqCPU {
            // SAFETY: pointers into this ring; `cPlan` lives on this stack frame.
            outcome = unsafe rseqtrace_load_cbne_load_cbne_stamp_trystores_store__cpu_id(
                index, ring.controlPointer(ControlField.head), head, second, expect2, &cPlan, plan.newHead)
        } else {
            // SAFETY: as above.
            outcome = unsafe rseqtrace_load_cbne_load_cbne_stamp_trystores_store__mm_cid(
                index, ring.controlPointer(ControlField.head), head, second, expect2, &cPlan, plan.newHead)
        }
        guard outcome == 0 else { return .retry }
        ring.store(ControlField.lastWriter, RingWriter.writerTag(mark: mark, end: plan.newHead), ordering: .relaxed)
        return .reserved(leadWithThreadRecordSlow(ring: ring, lead: plan.leadPosition, length: length, eventID: eventID))
    }

    // MARK: - Slow paths

    /// A thread whose rseq index is invalid: register it (self-registration mode) or use the slow lane.
    @inline(never)
    @usableFromInline
    func reserveUnregisteredSlow(eventID: UInt16, length: Int) -> ReservedSlot? {
        if RseqRuntime.prepareCurrentThreadSlow() {
            let index = currentIndex()
            if index < cpuRings {
                return reserveSlot(eventID: eventID, length: length)
            }
        }
        return reserveOnSlowLaneSlow(eventID: eventID, length: length)
    }

    /// The shared slow-lane ring (lock-free protocol).
    @inline(never)
    @usableFromInline
    func reserveOnSlowLaneSlow(eventID: UInt16, length: Int) -> ReservedSlot? {
        reserveLockFreeSlow(ringIndex: layout.slowLaneRing, eventID: eventID, length: length)
    }

    /// The fallback protocol: the lock-free protocol on the ring of `sched_getcpu()`.
    @inline(never)
    @usableFromInline
    func reserveFallbackSlow(eventID: UInt16, length: Int) -> ReservedSlot? {
        reserveLockFreeSlow(ringIndex: fallbackRingIndex(), eventID: eventID, length: length)
    }

    @usableFromInline
    func fallbackRingIndex() -> Int {
        let cpu = Int(rseqtrace_getcpu())
        return cpu >= 0 && cpu < layout.cpuRingCount ? cpu : layout.slowLaneRing
    }

    /// The lock-free protocol (docs/BufferProtocol.md §5): a compare-and-swap of {head, stamp}
    /// reserves the record (and, when it opens a sub-buffer, the padding and begin record before
    /// it); the stamp it installs is `max(ordered counter read before the swap, previous stamp)`,
    /// so timestamps never decrease in ring order; commits add to the slot's commit counter.
    /// A record whose thread did not write the record before it gets a thread record first, in the
    /// same swap (§2.1); opening a sub-buffer always writes one.
    @inline(never)
    @usableFromInline
    func reserveLockFreeSlow(ringIndex: Int, eventID: UInt16, length: Int) -> ReservedSlot? {
        let total = UInt64(TraceLayout.occupiedSize(length: length))
        let mark = RingWriter.assignedThreadMark()
        let threadSize = UInt64(TraceLayout.threadRecordSize)
        precondition(ringIndex >= 0 && ringIndex < layout.ringCount, "ring index out of range")
        // SAFETY: index checked just above.
        let ring = unsafe self.ring(ringIndex)
        let p = subbufferSize
        let ringSize = UInt64(layout.ringSize)
        let perRing = UInt64(layout.subbuffersPerRing)
        var head = ring.load(ControlField.head, ordering: .acquiring)
        var stamp = ring.load(ControlField.reservedStamp, ordering: .relaxed)
        var attempts = 0
        while attempts < RingWriter.maximumSwapAttempts {
            attempts &+= 1
            let newStamp = max(rseqtrace_read_cycles(), stamp)
            let lead = ring.load(ControlField.lastWriter, ordering: .relaxed) == RingWriter.writerTag(mark: mark, end: head)
                ? 0 : threadSize
            if fitsOpenSubbuffer(head: head, total: Int(lead &+ total)) {
                let reserved = head
                let newHead = reserved &+ lead &+ total
                guard ring.compareExchangeReservation(head: &head, stamp: &stamp, newHead: newHead,
                                                      newStamp: newStamp) else { continue }
                ring.store(ControlField.lastWriter, RingWriter.writerTag(mark: mark, end: newHead), ordering: .relaxed)
                stallIfRequestedSlow(eventID)
                let record = reserved &+ lead
                let word = RecordWord(length: length, kind: .event, eventID: eventID, lap: layout.lap(of: record), busy: true)
                ring.storeWord(at: record &+ 8, newStamp, ordering: .relaxed)
                ring.storeWord(at: record, word.rawValue, ordering: .relaxed)
                if lead != 0 { writeThreadRecord(ring: ring, at: reserved, stamp: newStamp, length: length) }
                // SAFETY: the swap reserved [reserved, newHead) for this thread; the counter is a
                // word of this ring's control block.
                return unsafe ReservedSlot(record: ring.pointer(at: record), committedWord: word.committed.rawValue,
                                           afterThreadRecord: lead != 0,
                                           commitCounter: ring.controlPointer(.commitCounter(slot: layout.slot(of: reserved))),
                                           commitBytes: lead &+ total)
            }
            // Opening the next sub-buffer `n` (slot n % K): its previous content, sub-buffer n - K,
            // must be fully committed (no writer left in it) and, in discard mode, consumed.
            let inSub = head & (p &- 1)
            let next = inSub == 0 ? head : (head | (p &- 1)) &+ 1
            let n = next / p
            let slot = Int(truncatingIfNeeded: n % perRing)
            let counterField = ControlField.commitCounter(slot: slot)
            guard populateBeforeOpening(ring: ring, head: head) else { break }
            var destroyed: UInt64 = 0
            var possible = ring.load(counterField, ordering: .acquiring) == (n / perRing) &* p
            if possible {
                switch mode {
                case .discard:
                    if next &+ p > ringSize {
                        possible = ring.load(ControlField.consumed, ordering: .acquiring) >= next &+ p &- ringSize
                    }
                case .overwrite:
                    if next >= ringSize {
                        // Count what the opening destroys while the old content is still intact (a
                        // successful swap proves nobody opened this sub-buffer since the walk).
                        let old = next &- ringSize
                        let begin = RecordWord(rawValue: ring.loadWord(at: old, ordering: .acquiring))
                        if begin.kind == .subbufferBegin && begin.lap == layout.lap(of: old) && !begin.isBusy,
                           let count = RecordChain.countUnconsumed(ring: ring, layout: layout, from: old, to: old &+ p) {
                            destroyed = ring.loadWord(at: old &+ 16, ordering: .relaxed) &+ count
                        } else {
                            possible = false
                        }
                    }
                }
            }
            guard possible else {
                // A stale snapshot? Then retry with the current one; else the sub-buffer cannot be opened.
                let current = ring.load(ControlField.head, ordering: .acquiring)
                if current != head {
                    head = current
                    stamp = ring.load(ControlField.reservedStamp, ordering: .relaxed)
                    continue
                }
                break
            }
            let closing = head
            let leadPosition = next &+ UInt64(TraceLayout.beginRecordSize)
            let recordPosition = leadPosition &+ threadSize
            let newHead = recordPosition &+ total
            guard ring.compareExchangeReservation(head: &head, stamp: &stamp, newHead: newHead,
                                                  newStamp: newStamp) else { continue }
            ring.store(ControlField.lastWriter, RingWriter.writerTag(mark: mark, end: newHead), ordering: .relaxed)
            stallIfRequestedSlow(eventID)
            if next != closing {
                let pad = RecordWord(length: Int(next &- closing), kind: .padding, eventID: 0,
                                     lap: layout.lap(of: closing), busy: false)
                ring.storeWord(at: closing, pad.rawValue, ordering: .relaxed)
                ring.atomicAdd(.commitCounter(slot: layout.slot(of: closing)), next &- closing, ordering: .releasing)
            }
            let beginWord = RecordWord(length: TraceLayout.beginRecordSize, kind: .subbufferBegin, eventID: 0,
                                       lap: layout.lap(of: next), busy: false)
            ring.storeWord(at: next &+ 8, newStamp, ordering: .relaxed)
            ring.storeWord(at: next &+ 16, destroyed, ordering: .relaxed)
            ring.storeWord(at: next, beginWord.rawValue, ordering: .relaxed)
            let word = RecordWord(length: length, kind: .event, eventID: eventID, lap: layout.lap(of: recordPosition), busy: true)
            ring.storeWord(at: recordPosition &+ 8, newStamp, ordering: .relaxed)
            ring.storeWord(at: recordPosition, word.rawValue, ordering: .relaxed)
            writeThreadRecord(ring: ring, at: leadPosition, stamp: newStamp, length: length)
            // SAFETY: the swap reserved the begin record, the thread record and the first record of
            // sub-buffer `n`; the bytes of the begin and thread records are committed with the record.
            return unsafe ReservedSlot(record: ring.pointer(at: recordPosition), committedWord: word.committed.rawValue,
                                       afterThreadRecord: true, commitCounter: ring.controlPointer(counterField),
                                       commitBytes: total &+ UInt64(TraceLayout.beginRecordSize) &+ threadSize)
        }
        ring.atomicAdd(ControlField.dropped, 1)
        return nil
    }

    /// Writes a reserved thread record of the lock-free protocol at `lead`: stamp, the calling
    /// thread's pid and tid, and its busy lead word covering the event record of `length` bytes
    /// after it, with `ownerKnown` (the body is written before it; releasing, so a consumer that
    /// acquires the lead reads its owner). The commit replaces it with the final thread record word.
    @usableFromInline
    func writeThreadRecord(ring: RingView, at lead: UInt64, stamp: UInt64, length: Int) {
        ring.storeWord(at: lead &+ 8, stamp, ordering: .relaxed)
        ring.storeWord(at: lead &+ 16, rseqtrace_thread_process_and_id(), ordering: .relaxed)
        ring.storeWord(at: lead, RecordWord.lead(length: length, lap: layout.lap(of: lead)).withOwnerKnown.rawValue,
                       ordering: .releasing)
    }

    /// Makes sure the memory of the sub-buffer that opening at `head` fills is populated — and, for
    /// a ring's first sub-buffer, its control block — before anything reads or writes it
    /// (docs/BufferProtocol.md §1): a ring's pages are first used in its first lap, so only then.
    /// `MADV_POPULATE_WRITE` reports a page that cannot be allocated as an error where a store
    /// would raise SIGBUS; then the header's `memoryExhausted` flag is set and false is returned
    /// (the caller drops and counts its record).
    @inline(never)
    @usableFromInline
    func populateBeforeOpening(ring: RingView, head: UInt64) -> Bool {
        guard unsafe state.pointee.populatesLazily else { return true }  // SAFETY: the state outlives `self`
        let p = subbufferSize
        let next = head & (p &- 1) == 0 ? head : (head | (p &- 1)) &+ 1
        guard next >> UInt64(layout.ringShift) == 0 else { return true }
        let page = UInt64(TraceLayout.pageSize)
        var failed = false
        if next == 0 {
            // The ring's first sub-buffer: its control block too.
            // SAFETY: the control block is a page-aligned part of the mapping.
            let block = unsafe ring.controlBlock
            // SAFETY: as above.
            failed = unsafe rseqtrace_populate_write(block.baseAddress!, block.count) != 0
        }
        if !failed {
            // The sub-buffer, widened to whole pages (sub-buffers can be smaller than a page).
            let start = next & ~(page &- 1)
            let end = min((next &+ p &+ page &- 1) & ~(page &- 1), UInt64(layout.ringSize))
            // SAFETY: [start, end) are positions of this ring's first lap, so a page-aligned range
            // of its data region.
            failed = unsafe rseqtrace_populate_write(ring.pointer(at: start), Int(end &- start)) != 0
        }
        guard !failed else {
            // SAFETY: a header word of the mapping, accessed atomically.
            unsafe state.pointee.memoryExhausted.sharedWord32(at: 0).pointee.store(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Test hook: from now on, lock-free reservations of event `eventID` park between their swap
    /// and their stores until this is called with `nil` (a producer stopped at the worst moment).
    package static func stallLockFreeReservations(ofEventID eventID: UInt16?) {
        rseqtrace_set_stall_event_id(UInt32(eventID ?? 0))
    }

    /// Test hook (`rseqtrace_stall_event_id`): parks a reservation between its swap and its stores.
    @inline(never)
    @usableFromInline
    func stallIfRequestedSlow(_ eventID: UInt16) {
        while rseqtrace_stall_requested() != 0 && rseqtrace_stall_requested() == UInt32(eventID) {
            SystemInfo.sleepBriefly()
        }
    }

    /// Counts a record whose payload can never fit a sub-buffer.
    @inline(never)
    @usableFromInline
    func refuseTooLargeSlow() {
        switch path {
        case .rseqCPU, .rseqConcurrencyID: countOnCurrentRingSlow(ControlField.tooLarge)
        case .lockFree: unsafe ring(fallbackRingIndex()).atomicAdd(ControlField.tooLarge, 1)  // SAFETY: fallbackRingIndex() < ringCount
        case .slowLaneOnly: unsafe ring(layout.slowLaneRing).atomicAdd(ControlField.tooLarge, 1)  // SAFETY: the slow lane is the last ring
        }
    }

    /// Adds one to a counter of the current CPU's ring with an rseq sequence (rings of the rseq
    /// protocol are never updated with atomics); falls back to the slow lane's counter.
    @inline(never)
    @usableFromInline
    func countOnCurrentRingSlow(_ field: ControlField) {
        for _ in 0..<RingWriter.maximumAttempts {
            let index = currentIndex()
            guard index < cpuRings else { break }
            // SAFETY: index < cpuRings < ringCount.
            let ring = unsafe self.ring(Int(index))
            let outcome: Int32
            if path == .rseqCPU {
                // SAFETY: the counter is a word of this ring's control block.
                outcome = unsafe rseqtrace_load_add_store__cpu_id(index, ring.controlPointer(field), 1)
            } else {
                // SAFETY: as above.
                outcome = unsafe rseqtrace_load_add_store__mm_cid(index, ring.controlPointer(field), 1)
            }
            if outcome == 0 { return }
        }
        // SAFETY: the slow lane is the last ring.
        unsafe ring(layout.slowLaneRing).atomicAdd(field, 1)
    }
}

/// A reserved record's address and the word its commit stores (§4.3), whether a thread record
/// was reserved right before it (§2.1), and on lock-free rings the commit counter its commit adds
/// to (§5.2). Committed or abandoned exactly once by the thread that reserved it; valid while the
/// mapping is (see `RingWriter`).
///
/// Four words, so that it stays in registers on the fast path: the thread record is noted in a
/// reserved bit of `committedWord` (`afterThreadRecordBit`), never stored into the ring.
@safe
@frozen
@usableFromInline
package struct ReservedSlot {
    @usableFromInline let record: UnsafeMutableRawPointer
    /// The committed record word; with `afterThreadRecordBit` set when the reservation began with
    /// a thread record right before `record`, whose busy lead word covers both until the commit.
    @usableFromInline let committedWord: UInt64
    /// Lock-free rings: the slot's commit counter (nil on rseq rings).
    @usableFromInline let commitCounter: UnsafeMutableRawPointer?
    /// Bytes the commit adds to `commitCounter`.
    @usableFromInline let commitBytes: UInt64

    /// ## Safety
    /// - `record` must be a reserved, uncommitted record in a mapped ring.
    @unsafe
    @inlinable
    init(record: UnsafeMutableRawPointer, committedWord: UInt64) {
        // SAFETY: the caller vouches for the reserved record.
        unsafe self.record = record
        self.committedWord = committedWord
        // SAFETY: no counter (rseq rings).
        unsafe self.commitCounter = nil
        self.commitBytes = 0
    }

    /// Marks a committed word whose record follows a thread record reserved with it: one of the
    /// reserved bit 29, which no valid record word has, so it is never stored.
    @inlinable package static var afterThreadRecordBit: UInt64 { 1 << 29 }

    /// ## Safety
    /// - `record` must be a reserved, uncommitted record in a mapped rseq ring; with
    ///   `afterThreadRecord`, the thread record reserved right before it holds its busy lead word.
    @unsafe
    @usableFromInline
    init(record: UnsafeMutableRawPointer, committedWord: UInt64, afterThreadRecord: Bool) {
        // SAFETY: the caller vouches for the reserved records.
        unsafe self.record = record
        self.committedWord = committedWord | (afterThreadRecord ? ReservedSlot.afterThreadRecordBit : 0)
        // SAFETY: no counter (rseq rings).
        unsafe self.commitCounter = nil
        self.commitBytes = 0
    }

    /// ## Safety
    /// - `record` must be a reserved, uncommitted record in a mapped lock-free ring (with
    ///   `afterThreadRecord`, the thread record reserved right before it holds its busy lead word),
    ///   and `commitCounter` the commit counter of its sub-buffer slot.
    @unsafe
    @usableFromInline
    init(record: UnsafeMutableRawPointer, committedWord: UInt64, afterThreadRecord: Bool,
         commitCounter: UnsafeMutablePointer<UInt64>, commitBytes: UInt64) {
        // SAFETY: the caller vouches for the reserved record and the counter.
        unsafe self.record = record
        self.committedWord = committedWord | (afterThreadRecord ? ReservedSlot.afterThreadRecordBit : 0)
        // SAFETY: as above.
        unsafe self.commitCounter = UnsafeMutableRawPointer(commitCounter)
        self.commitBytes = commitBytes
    }

    /// Start of the record's payload (after its 16-byte header).
    @unsafe
    @inlinable
    package var payload: UnsafeMutableRawPointer {
        // SAFETY: the record has a header of recordHeaderSize bytes followed by its payload.
        unsafe record.advanced(by: TraceLayout.recordHeaderSize)
    }

    /// The commit: a releasing store of the record word by its only writer (after a thread record:
    /// the record word, then the thread record's final word, releasing); on lock-free rings then a
    /// releasing add to the slot's commit counter.
    @inlinable
    package func commit() {
        if committedWord & ReservedSlot.afterThreadRecordBit == 0 {
            // SAFETY: the record word is 8-aligned inside the mapped ring.
            unsafe record.sharedWord64(at: 0).pointee.store(committedWord, ordering: .releasing)
        } else {
            // SAFETY: the record follows the thread record reserved with it.
            unsafe ReservedSlot.publishAfterThreadRecordSlow(record: record,
                                                             word: committedWord & ~ReservedSlot.afterThreadRecordBit)
        }
        // SAFETY: unwrapping the counter pointer of a lock-free ring (nil on rseq rings).
        if let counter = unsafe commitCounter { unsafe countCommitSlow(counter) }
    }

    /// Gives the record up without publishing it: its word becomes padding of the same size and
    /// lap (readers skip it) instead of blocking the ring.
    @inlinable
    package func abandon() {
        let word = RecordWord(rawValue: committedWord)
        let padding = RecordWord(length: word.size, kind: .padding, eventID: 0, lap: word.lap, busy: false)
        if committedWord & ReservedSlot.afterThreadRecordBit == 0 {
            // SAFETY: as in `commit`.
            unsafe record.sharedWord64(at: 0).pointee.store(padding.rawValue, ordering: .releasing)
        } else {
            // The thread record stays: the thread's next record may follow it without one.
            // SAFETY: as in `commit`.
            unsafe ReservedSlot.publishAfterThreadRecordSlow(record: record, word: padding.rawValue)
        }
        // SAFETY: as in `commit`.
        if let counter = unsafe commitCounter { unsafe countCommitSlow(counter) }
    }

    /// Publishes a record reserved after a thread record: stores `word` (the committed word, or
    /// padding) at `record`, then the thread record's final word over its busy lead word, right
    /// before it, releasing: a reader that acquires the thread record sees both complete.
    ///
    /// ## Safety
    /// - `record` must be a reserved record in a mapped ring, reserved with the thread record
    ///   right before it.
    @unsafe
    @inline(never)
    @usableFromInline
    static func publishAfterThreadRecordSlow(record: UnsafeMutableRawPointer, word: UInt64) {
        // SAFETY: the record word is 8-aligned inside the mapped ring.
        unsafe record.sharedWord64(at: 0).pointee.store(word, ordering: .relaxed)
        let thread = RecordWord.threadRecord(lap: RecordWord(rawValue: word).lap)
        // SAFETY: the thread record is 8-aligned inside the mapped ring, right before the record
        // (in the same sub-buffer: a record never straddles one).
        unsafe record.sharedWord64(at: -TraceLayout.threadRecordSize).pointee.store(thread.rawValue, ordering: .releasing)
    }

    /// Adds this record's bytes to its slot's commit counter (lock-free rings), releasing: whoever
    /// acquires a counter value that includes them sees the record complete.
    @inline(never)
    @usableFromInline
    func countCommitSlow(_ counter: UnsafeMutableRawPointer) {
        // SAFETY: the slot's commit counter, an 8-aligned word of the mapped control block.
        _ = unsafe counter.sharedWord64(at: 0).pointee.wrappingAdd(commitBytes, ordering: .releasing)
    }
}
