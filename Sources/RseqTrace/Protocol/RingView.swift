import CRseqTrace
import Synchronization

/// A view of one ring inside a mapped trace object: its control words and its data bytes.
///
/// Memory-ordering rules (the full argument is in docs/BufferProtocol.md):
/// - Control words and record words are only ever accessed atomically from Swift (through
///   `Atomic<UInt64>` views) or by the rseq sequences in CRseqTrace, never by plain Swift loads.
/// - A committed record word is stored with `.releasing` after the payload; readers load it with
///   `.acquiring` before reading the payload.
/// - `head` is published last in every reservation (release); readers load it with `.acquiring`.
///
/// The view does not own the mapping, so it is non-escapable: its lifetime depends on a borrow of
/// what keeps the mapping alive (the `SharedTraceBuffer` for `SharedTraceBuffer.ring(_:)`, the
/// `RingWriter` for `RingWriter.ring(_:)`), and the compiler refuses a view that outlives it.
/// Package-internal protocol machinery; users never see one.
@safe
@frozen
@usableFromInline
package struct RingView: ~Escapable, @unchecked Sendable {
    @usableFromInline let lines: UnsafeMutableRawPointer
    @usableFromInline let control: UnsafeMutableRawPointer
    @usableFromInline let data: UnsafeMutableRawPointer
    @usableFromInline let mask: UInt64

    /// - Parameters:
    ///   - lines: start of the ring's entry in the lines table (`TraceLayout.lineStride` bytes).
    ///   - control: start of the ring's control block.
    ///   - data: start of the ring's data, `ringSize` bytes.
    ///   - owner: what keeps both regions mapped; the view cannot outlive its borrow.
    /// ## Safety
    /// - The three regions must stay mapped for as long as `owner` is borrowed.
    @unsafe
    @inlinable
    @_lifetime(borrow owner)
    package init<Owner: ~Copyable>(lines: UnsafeMutableRawPointer, control: UnsafeMutableRawPointer,
                                   data: UnsafeMutableRawPointer, ringSize: Int, owner: borrowing Owner) {
        // SAFETY: the caller vouches that the regions stay mapped (see `## Safety`).
        unsafe self.lines = lines
        // SAFETY: the caller vouches that both regions stay mapped (see `## Safety`).
        unsafe self.control = control
        // SAFETY: as above.
        unsafe self.data = data
        self.mask = UInt64(ringSize - 1)
    }

    @inlinable package var ringSize: Int { Int(mask) + 1 }

    /// Orderings for loads of shared words (Synchronization needs them spelled as constants, so
    /// they are forwarded through a switch that folds away when inlined).
    @frozen @usableFromInline package enum LoadOrdering: Sendable { case relaxed, acquiring }
    /// Orderings for stores of shared words.
    @frozen @usableFromInline package enum StoreOrdering: Sendable { case relaxed, releasing }

    // MARK: Control words

    /// The control word at `field` as a C pointer, for the rseq sequences.
    @unsafe
    @inlinable
    package func controlPointer(_ field: ControlField) -> UnsafeMutablePointer<UInt64> {
        // SAFETY: `field` is a ControlField offset: 8-aligned, inside the line entry below
        // `lineLimit`, inside the control block from it on.
        unsafe (field.rawValue < ControlField.lineLimit ? lines : control).advanced(by: field.rawValue)
            .assumingMemoryBound(to: UInt64.self)
    }

    @inlinable
    func atomicControl(_ field: ControlField) -> UnsafeMutablePointer<Atomic<UInt64>> {
        // SAFETY: as in `controlPointer`: the word lies in the mapped line entry or control block.
        unsafe (field.rawValue < ControlField.lineLimit ? lines : control).sharedWord64(at: field.rawValue)
    }

    /// The ring's control block (recycle markers, commit counters, read accounting): what a
    /// producer populates before the ring's first sub-buffer.
    @inlinable
    package var controlBlock: UnsafeMutableRawBufferPointer {
        // SAFETY: the control block is `controlSize` bytes of the mapping (see `init`).
        unsafe UnsafeMutableRawBufferPointer(start: control, count: TraceLayout.controlSize)
    }

    @inlinable
    package func load(_ field: ControlField, ordering: LoadOrdering) -> UInt64 {
        // SAFETY: the word is inside the mapped control block; only accessed atomically.
        let word = unsafe atomicControl(field)
        switch ordering {
        case .relaxed: return unsafe word.pointee.load(ordering: .relaxed)  // SAFETY: word inside the mapped control block
        case .acquiring: return unsafe word.pointee.load(ordering: .acquiring)  // SAFETY: as above
        }
    }

    @inlinable
    package func store(_ field: ControlField, _ value: UInt64, ordering: StoreOrdering) {
        // SAFETY: as in `load`.
        let word = unsafe atomicControl(field)
        switch ordering {
        case .relaxed: unsafe word.pointee.store(value, ordering: .relaxed)  // SAFETY: word inside the mapped control block
        case .releasing: unsafe word.pointee.store(value, ordering: .releasing)  // SAFETY: as above
        }
    }

    /// Atomic add; only for words of lock-free rings, and the slow lane (never mixed with rseq updates).
    @inlinable
    package func atomicAdd(_ field: ControlField, _ value: UInt64, ordering: StoreOrdering = .relaxed) {
        // SAFETY: as in `load`.
        let word = unsafe atomicControl(field)
        switch ordering {
        case .relaxed: _ = unsafe word.pointee.wrappingAdd(value, ordering: .relaxed)  // SAFETY: word inside the mapped control block
        case .releasing: _ = unsafe word.pointee.wrappingAdd(value, ordering: .releasing)  // SAFETY: as above
        }
    }

    /// Atomic exchange with zero (lock-free rings): takes out exactly the value it replaces.
    @inlinable
    package func takeAndZero(_ field: ControlField) -> UInt64 {
        // SAFETY: as in `load`.
        unsafe atomicControl(field).pointee.exchange(0, ordering: .relaxed)
    }

    /// The lock-free reservation: compare-and-swap of the pair {`head`, `reservedStamp`}. On
    /// failure `head` and `stamp` receive the current pair (docs/BufferProtocol.md §5.1).
    @inlinable
    package func compareExchangeReservation(head: inout UInt64, stamp: inout UInt64,
                                            newHead: UInt64, newStamp: UInt64) -> Bool {
        // SAFETY: the pair is the first 16 bytes of the ring's 256-aligned line entry (16-aligned),
        // accessed only by this compare-and-swap and by atomic loads of its halves.
        unsafe rseqtrace_cas_head_stamp(controlPointer(.head), &head, &stamp, newHead, newStamp) != 0
    }

    // MARK: Data

    /// Address of the byte at ring position `position`.
    @unsafe
    @inlinable
    package func pointer(at position: UInt64) -> UnsafeMutableRawPointer {
        // SAFETY: the offset is masked into [0, ringSize).
        unsafe data.advanced(by: Int(truncatingIfNeeded: position & mask))
    }

    /// The 8-byte word containing ring position `position`. Record words are 8-byte aligned; a
    /// position read from shared memory is validated by the reader before use, and whatever it is,
    /// its low 3 bits are cleared here, so the word always lies inside the data region.
    @inlinable
    func atomicWord(at position: UInt64) -> UnsafeMutablePointer<Atomic<UInt64>> {
        // SAFETY: masked into the data region and 8-aligned, so the whole word is inside it.
        unsafe pointer(at: position & ~7).sharedWord64(at: 0)
    }

    /// Loads the 64-bit word at `position` (a record word, timestamp or count).
    @inlinable
    package func loadWord(at position: UInt64, ordering: LoadOrdering) -> UInt64 {
        // SAFETY: see `atomicWord(at:)`.
        let word = unsafe atomicWord(at: position)
        switch ordering {
        case .relaxed: return unsafe word.pointee.load(ordering: .relaxed)  // SAFETY: masked, aligned word of the data region
        case .acquiring: return unsafe word.pointee.load(ordering: .acquiring)  // SAFETY: as above
        }
    }

    @inlinable
    package func storeWord(at position: UInt64, _ value: UInt64, ordering: StoreOrdering) {
        // SAFETY: see `atomicWord(at:)`.
        let word = unsafe atomicWord(at: position)
        switch ordering {
        case .relaxed: unsafe word.pointee.store(value, ordering: .relaxed)  // SAFETY: masked, aligned word of the data region
        case .releasing: unsafe word.pointee.store(value, ordering: .releasing)  // SAFETY: as above
        }
    }

    /// Compare-and-swap of the record word at `position` (sequentially consistent): a consumer
    /// replacing a busy record whose owner died (docs/BufferProtocol.md §4.6). The owner's commit
    /// is a single store of the same word, so exactly one of the two takes effect.
    package func compareExchangeWord(at position: UInt64, expected: UInt64, desired: UInt64) -> Bool {
        // SAFETY: see `atomicWord(at:)`.
        unsafe atomicWord(at: position).pointee.compareExchange(expected: expected, desired: desired,
                                                                ordering: .sequentiallyConsistent).exchanged
    }

    /// Copies `count` bytes starting at `position`; `false` (nothing copied) when the range would
    /// cross the end of the ring or overflow `destination`.
    package func copyBytes(from position: UInt64, count: Int, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        let offset = Int(truncatingIfNeeded: position & mask)
        guard count >= 0, count <= ringSize &- offset, count <= destination.count else { return false }
        guard count > 0, let target = destination.baseAddress else { return true }
        // SAFETY: source range checked against the ring above, destination against its count.
        unsafe target.copyMemory(from: data.advanced(by: offset), byteCount: count)
        return true
    }
}
