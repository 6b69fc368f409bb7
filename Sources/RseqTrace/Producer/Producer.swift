import CRseqTrace
import Synchronization

/// The handle application threads write records with.
///
/// A `Producer` is a plain value (pointers and sizes, no reference counting), so copying it or
/// calling it from many threads costs nothing. It borrows the mapping of the `SharedTraceBuffer`
/// that made it, which must outlive it.
///
/// Two ways to write a record:
/// - **copy-commit** (`write(eventID:payload:)`): one restartable sequence copies the whole record
///   and publishes it; best for small records.
/// - **reserve → write → commit** (`reserve(eventID:payloadSize:)`, then fill the payload in
///   place, then `commit(_:)`): zero-copy; the thread may migrate between reserve and commit,
///   because the commit is a releasing store to the record's own word, made by its only writer.
///
/// Neither throws, locks, allocates or enters the kernel on the fast path. When a record cannot be
/// stored it is dropped and counted in its ring (`dropped`: ring full, or recycling blocked;
/// `tooLarge`: the payload can never fit a sub-buffer).
@safe
@frozen
public struct Producer: @unchecked Sendable {
    /// How this process updates this buffer's rings.
    @frozen
    public enum Path: UInt8, Sendable {
        /// rseq sequences, rings indexed by `cpu_id`.
        case rseqCPU
        /// rseq sequences, rings indexed by `mm_cid` (creating process only).
        case rseqConcurrencyID
        /// Locked protocol on the ring of `sched_getcpu()` (the buffer was created in fallback mode).
        case locked
        /// The buffer uses rseq but this process cannot: every record goes to the slow lane.
        case slowLaneOnly
    }

    /// Attempts (aborts or lost races) before a record leaves the rseq path for the slow lane.
    /// Bounds the work per record under a debugger single-stepping or a signal storm.
    public static let maximumAttempts = 64

    /// Longest the locked protocol waits for a ring mutex before dropping (and counting) a record.
    public static let lockTimeoutNanoseconds: UInt64 = 200_000_000

    @usableFromInline let rings: UnsafeMutableRawPointer
    public let layout: TraceLayout
    public let path: Path
    public let mode: BufferMode
    // Geometry precomputed so the fast path has no overflow checks or divisions.
    @usableFromInline let stride: Int
    @usableFromInline let subbufferSize: UInt64
    @usableFromInline let subbufferMask: UInt64
    @usableFromInline let cpuRings: UInt32
    @usableFromInline let maximumPayloadSize: Int

    @unsafe
    @usableFromInline
    init(rings: UnsafeMutableRawPointer, layout: TraceLayout, path: Path, mode: BufferMode) {
        // SAFETY: the caller vouches that `rings` stays mapped for the producer's lifetime.
        unsafe self.rings = rings
        self.layout = layout
        self.path = path
        self.mode = mode
        self.stride = layout.ringStride
        self.subbufferSize = UInt64(layout.subbufferSize)
        self.subbufferMask = UInt64(layout.subbufferSize - 1)
        self.cpuRings = UInt32(layout.cpuRingCount)
        self.maximumPayloadSize = layout.maximumPayloadSize
    }

    /// The view of ring `index`.
    @inlinable
    public func ring(_ index: Int) -> RingView {
        // SAFETY: callers pass an index below layout.ringCount; the mapping outlives `self`.
        let control = unsafe rings.advanced(by: index &* stride)
        // SAFETY: the ring lies inside the mapping (index < ringCount), which outlives the producer.
        return unsafe RingView(control: control, data: control.advanced(by: TraceLayout.controlSize),
                               ringSize: layout.ringSize)
    }

    // MARK: - Reserve and commit

    /// Reserves a record with room for `payloadSize` bytes of payload on the current CPU's ring.
    ///
    /// The record stays invisible to readers (and blocks the ring's reader at that point) until it
    /// is committed, so commit promptly.
    /// - Returns: the reservation, or `nil` when the record was dropped (and counted).
    /// - Complexity: O(1) on the fast path; no allocation, lock or system call. After
    ///   `maximumAttempts` failed sequences the record goes through the slow lane.
    @inlinable
    @inline(__always)
    public func reserve(eventID: UInt16, payloadSize: Int) -> Reservation? {
        guard payloadSize >= 0 && payloadSize <= maximumPayloadSize else {
            refuseTooLarge()
            return nil
        }
        guard let slot = reserveSlot(eventID: eventID, length: TraceLayout.recordHeaderSize &+ payloadSize) else {
            return nil
        }
        // SAFETY: `slot` is a reserved record with room for `payloadSize` bytes of payload.
        return unsafe Reservation(record: slot.record, committedWord: slot.committedWord, payloadSize: payloadSize)
    }

    /// Publishes a reserved record. Can run on any CPU.
    @inlinable
    public func commit(_ reservation: consuming Reservation) {
        reservation.commit()
    }

    // MARK: - Copy-commit

    /// Writes a whole record in one step.
    /// - Returns: true when stored, false when dropped (and counted).
    /// - Complexity: O(payload size); no allocation, lock or system call on the fast path.
    @inlinable
    public func write(eventID: UInt16, payload: UnsafeRawBufferPointer) -> Bool {
        // SAFETY: the buffer's base address and count describe readable bytes (caller's contract).
        unsafe write(eventID: eventID, source: payload.baseAddress, size: payload.count)
    }

    /// Writes the bytes of `bytes` as the payload of one record.
    @inlinable
    public func write(eventID: UInt16, bytes: RawSpan) -> Bool {
        // SAFETY: the span guarantees its bytes are readable for the closure.
        unsafe bytes.withUnsafeBytes { unsafe write(eventID: eventID, source: $0.baseAddress, size: $0.count) }
    }

    /// Writes the bytes of `bytes` as the payload of one record.
    @inlinable
    public func write(eventID: UInt16, bytes: Span<UInt8>) -> Bool {
        // SAFETY: the span guarantees its elements are readable for the closure.
        unsafe bytes.withUnsafeBytes { unsafe write(eventID: eventID, source: $0.baseAddress, size: $0.count) }
    }

    /// Writes `value`'s bytes as the payload of one record.
    @inlinable
    @inline(__always)
    public func write<T: BitwiseCopyable>(eventID: UInt16, value: T) -> Bool {
        // SAFETY: `withUnsafeBytes(of:)` gives the value's bytes for the closure.
        unsafe withUnsafeBytes(of: value) { unsafe write(eventID: eventID, source: $0.baseAddress, size: $0.count) }
    }

    /// Copy-commit core. `source` must point to `size` readable bytes (or be nil with size 0).
    @unsafe
    @inlinable
    @inline(__always)
    func write(eventID: UInt16, source: UnsafeRawPointer?, size: Int) -> Bool {
        guard size <= maximumPayloadSize else {
            refuseTooLarge()
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
            while attempts < Producer.maximumAttempts {
                let index = currentIndex()
                guard index < cpuRings else { break }
                let ring = self.ring(Int(index))
                let head = ring.load(ControlField.head, ordering: .relaxed)
                guard fitsOpenSubbuffer(head: head, total: total) else { break }
                let word = RecordWord(length: TraceLayout.recordHeaderSize &+ size, kind: .event, eventID: eventID,
                                      lap: layout.lap(of: head), busy: false)
                // SAFETY: the record [head, head + total) lies inside the open sub-buffer of this
                // ring; `source` holds `size` bytes of which the sequence reads `full` words.
                let outcome = unsafe runCopyCommit(
                    index: index, head: ring.controlPointer(ControlField.head), expect: head,
                    destination: ring.pointer(at: head &+ 16).assumingMemoryBound(to: UInt64.self),
                    source: source.assumingMemoryBound(to: UInt64.self), full: UInt64(full), last: last,
                    word: word.rawValue, newHead: head &+ UInt64(truncatingIfNeeded: total))
                if outcome == 0 { return true }
                attempts &+= 1
            }
        }
        // Opening a sub-buffer, an empty payload, or not on the rseq path: reserve, copy, commit.
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
            while attempts < Producer.maximumAttempts {
                let index = currentIndex()
                guard index < cpuRings else {
                    return reserveForUnregisteredThread(eventID: eventID, length: length)
                }
                let ring = self.ring(Int(index))
                let head = ring.load(ControlField.head, ordering: .relaxed)
                if fitsOpenSubbuffer(head: head, total: total) {
                    let word = RecordWord(length: length, kind: .event, eventID: eventID,
                                          lap: layout.lap(of: head), busy: true)
                    // SAFETY: [head, head + total) lies in the open sub-buffer of this ring.
                    let record = unsafe ring.pointer(at: head)
                    // SAFETY: pointers into this ring's control block and data.
                    let outcome = unsafe runReserve(
                        index: index, head: ring.controlPointer(ControlField.head), expect: head,
                        slot: record.assumingMemoryBound(to: UInt64.self), word: word.rawValue,
                        newHead: head &+ UInt64(truncatingIfNeeded: total))
                    // SAFETY: the sequence reserved [head, head + total) for this thread.
                    if outcome == 0 { return unsafe ReservedSlot(record: record, committedWord: word.committed.rawValue) }
                } else {
                    switch openSubbufferWithRseq(index: index, ring: ring, head: head, length: length, eventID: eventID) {
                    case .reserved(let slot): return slot
                    case .refused: return nil
                    case .retry: break
                    }
                }
                attempts &+= 1
            }
            return reserveInSlowLane(eventID: eventID, length: length)
        case .locked:
            return reserveWithFallbackProtocol(eventID: eventID, length: length)
        case .slowLaneOnly:
            return reserveInSlowLane(eventID: eventID, length: length)
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

    /// Opening the next sub-buffer (once per sub-buffer): pads the current one, recycles or checks
    /// space for the next, writes its begin record and the first record in one sequence.
    @inline(never)
    @usableFromInline
    func openSubbufferWithRseq(index: UInt32, ring: RingView, head: UInt64, length: Int, eventID: UInt16) -> OpenOutcome {
        let consumed = ring.load(ControlField.consumed, ordering: .acquiring)
        let plan: SubbufferOpening
        switch SubbufferOpening.plan(layout: layout, mode: mode, ring: ring, head: head, consumed: consumed,
                                     length: length, eventID: eventID) {
        case .ready(let p): plan = p
        case .full, .blocked:
            countOnCurrentRing(ControlField.dropped)
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
            record_slot: ring.pointer(at: plan.recordPosition).assumingMemoryBound(to: UInt64.self),
            record_word: plan.recordWord.rawValue)
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
        // SAFETY: the opening sequence reserved the first record of the new sub-buffer for this thread.
        return .reserved(unsafe ReservedSlot(record: ring.pointer(at: plan.recordPosition),
                                             committedWord: plan.recordWord.committed.rawValue))
    }

    // MARK: - Slow paths

    /// A thread whose rseq index is invalid: register it (self-registration mode) or use the slow lane.
    @inline(never)
    @usableFromInline
    func reserveForUnregisteredThread(eventID: UInt16, length: Int) -> ReservedSlot? {
        if RseqRuntime.prepareCurrentThread() {
            let index = currentIndex()
            if index < cpuRings {
                return reserveSlot(eventID: eventID, length: length)
            }
        }
        return reserveInSlowLane(eventID: eventID, length: length)
    }

    /// The shared slow-lane ring, under its mutex.
    @inline(never)
    @usableFromInline
    func reserveInSlowLane(eventID: UInt16, length: Int) -> ReservedSlot? {
        reserveLocked(ringIndex: layout.slowLaneRing, eventID: eventID, length: length)
    }

    /// The fallback protocol: the ring of `sched_getcpu()`, under its mutex.
    @inline(never)
    @usableFromInline
    func reserveWithFallbackProtocol(eventID: UInt16, length: Int) -> ReservedSlot? {
        reserveLocked(ringIndex: lockedRingIndex(), eventID: eventID, length: length)
    }

    @usableFromInline
    func lockedRingIndex() -> Int {
        let cpu = Int(rseqtrace_getcpu())
        return cpu >= 0 && cpu < layout.cpuRingCount ? cpu : layout.slowLaneRing
    }

    /// The locked protocol: the same plan as the rseq sequences, executed under the ring's mutex,
    /// with the head published last by a releasing store.
    @inline(never)
    @usableFromInline
    func reserveLocked(ringIndex: Int, eventID: UInt16, length: Int) -> ReservedSlot? {
        let total = TraceLayout.occupiedSize(length: length)
        let ring = self.ring(ringIndex)
        // SAFETY: the mutex lives in this ring's control block and was initialised at creation.
        let mutex = unsafe ring.control.advanced(by: ControlField.mutex)
        // SAFETY: the mutex lives in this ring's control block and was initialised at creation.
        guard unsafe rseqtrace_mutex_lock(mutex, Producer.lockTimeoutNanoseconds) == 0 else {
            ring.atomicAdd(ControlField.dropped, 1)
            return nil
        }
        // SAFETY: locked just above.
        defer { unsafe rseqtrace_mutex_unlock(mutex) }
        let head = ring.load(ControlField.head, ordering: .relaxed)
        if fitsOpenSubbuffer(head: head, total: total) {
            let word = RecordWord(length: length, kind: .event, eventID: eventID, lap: layout.lap(of: head), busy: true)
            ring.storeWord(at: head &+ 8, CycleClock.now(), ordering: .relaxed)
            ring.storeWord(at: head, word.rawValue, ordering: .relaxed)
            ring.store(ControlField.head, head &+ UInt64(truncatingIfNeeded: total), ordering: .releasing)
            // SAFETY: reserved under the mutex: [head, head + total) belongs to this thread.
            return unsafe ReservedSlot(record: ring.pointer(at: head), committedWord: word.committed.rawValue)
        }
        let consumed = ring.load(ControlField.consumed, ordering: .acquiring)
        var outcome = SubbufferOpening.plan(layout: layout, mode: mode, ring: ring, head: head, consumed: consumed,
                                            length: length, eventID: eventID)
        if case .recycleFirst(let recycling) = outcome {
            // Step 1 under the mutex: one store, so a holder dying here leaves a consistent state.
            ring.store(recycling.markerField, recycling.marker.rawValue, ordering: .releasing)
            outcome = SubbufferOpening.plan(layout: layout, mode: mode, ring: ring, head: head, consumed: consumed,
                                            length: length, eventID: eventID)
        }
        switch outcome {
        case .full, .blocked, .recycleFirst:
            ring.atomicAdd(ControlField.dropped, 1)
            return nil
        case .ready(let plan):
            let stamp = CycleClock.now()
            ring.storeWord(at: plan.padPosition, plan.padWord.rawValue, ordering: .relaxed)
            ring.storeWord(at: plan.beginPosition &+ 8, stamp, ordering: .relaxed)
            ring.storeWord(at: plan.beginPosition &+ 16, plan.lost, ordering: .relaxed)
            ring.storeWord(at: plan.beginPosition, plan.beginWord.rawValue, ordering: .relaxed)
            ring.storeWord(at: plan.recordPosition &+ 8, stamp, ordering: .relaxed)
            ring.storeWord(at: plan.recordPosition, plan.recordWord.rawValue, ordering: .relaxed)
            ring.store(ControlField.head, plan.newHead, ordering: .releasing)
            // SAFETY: reserved under the mutex: the first record of the new sub-buffer belongs to this thread.
            return unsafe ReservedSlot(record: ring.pointer(at: plan.recordPosition),
                                      committedWord: plan.recordWord.committed.rawValue)
        }
    }

    /// Counts a record whose payload can never fit a sub-buffer.
    @inline(never)
    @usableFromInline
    func refuseTooLarge() {
        switch path {
        case .rseqCPU, .rseqConcurrencyID: countOnCurrentRing(ControlField.tooLarge)
        case .locked: ring(lockedRingIndex()).atomicAdd(ControlField.tooLarge, 1)
        case .slowLaneOnly: ring(layout.slowLaneRing).atomicAdd(ControlField.tooLarge, 1)
        }
    }

    /// Adds one to a counter of the current CPU's ring with an rseq sequence (rings of the rseq
    /// protocol are never updated with atomics); falls back to the slow lane's counter.
    @inline(never)
    @usableFromInline
    func countOnCurrentRing(_ field: Int) {
        for _ in 0..<Producer.maximumAttempts {
            let index = currentIndex()
            guard index < cpuRings else { break }
            let ring = self.ring(Int(index))
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
        ring(layout.slowLaneRing).atomicAdd(field, 1)
    }
}

/// A reserved record's address and the word its commit stores.
@safe
@usableFromInline
struct ReservedSlot {
    @usableFromInline let record: UnsafeMutableRawPointer
    @usableFromInline let committedWord: UInt64

    /// ## Safety
    /// - `record` must be a reserved, uncommitted record in a mapped ring.
    @unsafe
    @inlinable
    init(record: UnsafeMutableRawPointer, committedWord: UInt64) {
        // SAFETY: the caller vouches for the reserved record.
        unsafe self.record = record
        self.committedWord = committedWord
    }

    /// The commit: a releasing store of the record word by its only writer.
    @inlinable
    func commit() {
        // SAFETY: the record word is 8-aligned inside the mapped ring.
        unsafe record.assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(committedWord, ordering: .releasing)
    }
}
