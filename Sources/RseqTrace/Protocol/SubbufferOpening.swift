/// What a reservation that starts a new sub-buffer must write, computed from a snapshot of the
/// ring before the rseq sequence that commits it (rseq rings; lock-free rings open sub-buffers in
/// `RingWriter.reserveLockFreeSlow`).
///
/// ```
///   head                        next sub-buffer start
///    |  padding (if any)           |  begin record (24 B) |  thread record (24 B)   |  first record (total B) |
///    v                             v                      v                         v                         v
///  ..[pad word ..................][word][stamp][lost]    [lead][stamp][pid, tid]   [word][stamp][payload ...] newHead
/// ```
/// The sequence stores the thread record's *lead* word (busy, its length covering the thread
/// record and the first record) and stamp; the reserving thread then writes the thread record's
/// body and the first record's stamp, and its commit turns the lead into the final thread record
/// word (`RingWriter.leadWithThreadRecordSlow`, `ReservedSlot.commit`).
/// - Discard mode: the whole next sub-buffer must be free: `consumed >= nextStart + P - S`.
/// - Overwrite mode: the next sub-buffer's previous content (one lap earlier) is recycled in two
///   steps. Step 1 commits the slot's `RecycleMarker` (unread records destroyed, plus the unreported
///   loss of the destroyed begin record): from then on the old content is dead. Step 2 (this plan)
///   compares that marker, so the try-stores of an aborted step 2 can only ever land in dead memory.
///   A record still being written in the old content blocks recycling: the new record is dropped.
@usableFromInline
struct SubbufferOpening {
    @usableFromInline var padPosition: UInt64
    @usableFromInline var padWord: RecordWord
    @usableFromInline var beginPosition: UInt64
    @usableFromInline var beginWord: RecordWord
    @usableFromInline var lost: UInt64
    /// The thread record's position and lead word (what the sequence stores as its last record).
    @usableFromInline var leadPosition: UInt64
    @usableFromInline var leadWord: RecordWord
    @usableFromInline var newHead: UInt64
    /// Second word the opening sequence compares (besides `head`): the slot's recycle marker in
    /// overwrite mode, `head` again otherwise.
    @usableFromInline var secondField: ControlField
    @usableFromInline var secondExpected: UInt64

    /// Step 1 of recycling a slot in overwrite mode: publish its marker (compare `head` and
    /// `consumed`, store the marker). Nothing is written into the old content before this commits.
    @usableFromInline
    struct Recycling {
        @usableFromInline var markerField: ControlField
        @usableFromInline var marker: RecycleMarker
        @usableFromInline var consumedExpected: UInt64
    }

    @usableFromInline
    enum Outcome {
        case ready(SubbufferOpening)
        /// Overwrite mode: the slot must first be declared recycled (then plan again).
        case recycleFirst(Recycling)
        /// Discard mode: the consumer has not freed the next sub-buffer yet.
        case full
        /// Overwrite mode: the content to recycle holds a record that is still being written
        /// (or a damaged record chain).
        case blocked
    }

    @usableFromInline
    static func plan(layout: TraceLayout, mode: BufferMode, ring: RingView, head: UInt64, consumed: UInt64,
                     length: Int) -> Outcome {
        let total = TraceLayout.occupiedSize(length: length)
        let subSize = UInt64(layout.subbufferSize)
        let ringSize = UInt64(layout.ringSize)
        let inSub = head & (subSize &- 1)
        let nextStart = inSub == 0 ? head : (head | (subSize &- 1)) &+ 1
        var lost: UInt64 = 0
        var secondField = ControlField.head
        var secondExpected = head
        switch mode {
        case .discard:
            if nextStart &+ subSize > ringSize && consumed < nextStart &+ subSize &- ringSize { return .full }
        case .overwrite:
            if nextStart >= ringSize {
                let field = ControlField.recycleMarker(slot: layout.slot(of: nextStart))
                let marker = RecycleMarker(rawValue: ring.load(field, ordering: .acquiring))
                let tag = layout.subbufferTag(of: nextStart)
                if marker.tag != tag {
                    // Count what the recycling destroys while the old content is still intact.
                    let oldStart = nextStart &- ringSize
                    let oldEnd = oldStart &+ subSize
                    var destroyed: UInt64 = 0
                    if consumed < oldEnd {
                        guard let count = RecordChain.countUnconsumed(
                            ring: ring, layout: layout, from: max(consumed, oldStart), to: oldEnd) else {
                            return .blocked
                        }
                        destroyed = count
                    }
                    // The old content's own begin record reported a loss; if the consumer never
                    // read it, that loss is carried forward, not forgotten.
                    let unreported = marker.tag == layout.subbufferTag(of: oldStart) && consumed <= oldStart
                    return .recycleFirst(Recycling(
                        markerField: field,
                        marker: RecycleMarker(tag: tag, lost: destroyed &+ (unreported ? marker.lost : 0)),
                        consumedExpected: consumed))
                }
                lost = marker.lost
                secondField = field
                secondExpected = marker.rawValue
            }
        }
        let padPosition = inSub == 0 ? nextStart : head
        let padWord = RecordWord(length: Int(nextStart &- head), kind: .padding, eventID: 0,
                                 lap: layout.lap(of: head), busy: false)
        let beginWord = RecordWord(length: TraceLayout.beginRecordSize, kind: .subbufferBegin, eventID: 0,
                                   lap: layout.lap(of: nextStart), busy: false)
        let leadPosition = nextStart &+ UInt64(TraceLayout.beginRecordSize)
        let leadWord = RecordWord.lead(length: length, lap: layout.lap(of: leadPosition))
        let recordPosition = leadPosition &+ UInt64(TraceLayout.threadRecordSize)
        return .ready(SubbufferOpening(
            padPosition: padPosition, padWord: padWord, beginPosition: nextStart, beginWord: beginWord,
            lost: lost, leadPosition: leadPosition, leadWord: leadWord,
            newHead: recordPosition &+ UInt64(total), secondField: secondField, secondExpected: secondExpected))
    }
}

/// Walking a chain of records in a ring.
package enum RecordChain {
    /// Counts the event records in `[from, to)`. `nil` when a record there is still being written
    /// or the chain is damaged.
    package static func countUnconsumed(ring: RingView, layout: TraceLayout, from: UInt64, to: UInt64) -> UInt64? {
        var position = from
        var count: UInt64 = 0
        while position < to {
            let word = RecordWord(rawValue: ring.loadWord(at: position, ordering: .acquiring))
            guard let kind = word.kind, word.hasValidReservedBits, word.lap == layout.lap(of: position),
                  word.length >= 8, position &+ UInt64(word.size) <= to else {
                return nil
            }
            if word.isBusy { return nil }
            if kind == .event { count &+= 1 }
            position &+= UInt64(word.size)
        }
        return count
    }
}
