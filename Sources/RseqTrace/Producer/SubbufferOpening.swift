/// What a reservation that starts a new sub-buffer must write, computed from a snapshot of the
/// ring before the sequence (rseq) or under the mutex (locked protocol) commits it.
///
/// ```
///   head                        next sub-buffer start
///    |  padding (if any)           |  begin record (24 B)   |  first record (total B) |
///    v                             v                        v                         v
///  ..[pad word ..................][word][stamp][lost]      [word][stamp][payload ...] newHead
/// ```
/// - Discard mode: the whole next sub-buffer must be free: `consumed >= nextStart + P - S`.
/// - Overwrite mode: the next sub-buffer's previous content (one lap earlier) is recycled; every
///   record in it that the consumer has not taken is counted into `lost`, including the `lost`
///   counts carried by begin records in it, so that no loss is ever forgotten. A record there
///   that is still being written blocks recycling: the new record is dropped instead.
@usableFromInline
struct SubbufferOpening {
    @usableFromInline var padPosition: UInt64
    @usableFromInline var padWord: RecordWord
    @usableFromInline var beginPosition: UInt64
    @usableFromInline var beginWord: RecordWord
    @usableFromInline var lost: UInt64
    @usableFromInline var recordPosition: UInt64
    @usableFromInline var recordWord: RecordWord
    @usableFromInline var newHead: UInt64

    @usableFromInline
    enum Outcome {
        case ready(SubbufferOpening)
        /// Discard mode: the consumer has not freed the next sub-buffer yet.
        case full
        /// Overwrite mode: the sub-buffer to recycle holds a record that is still being written
        /// (or a damaged record chain).
        case blocked
    }

    @usableFromInline
    static func plan(layout: TraceLayout, mode: BufferMode, ring: RingView, head: UInt64, consumed: UInt64,
                     total: Int, eventID: UInt16) -> Outcome {
        let subSize = UInt64(layout.subbufferSize)
        let ringSize = UInt64(layout.ringSize)
        let inSub = head & (subSize &- 1)
        let nextStart = inSub == 0 ? head : (head | (subSize &- 1)) &+ 1
        var lost: UInt64 = 0
        switch mode {
        case .discard:
            if nextStart &+ subSize > ringSize && consumed < nextStart &+ subSize &- ringSize { return .full }
        case .overwrite:
            if nextStart >= ringSize {
                let oldStart = nextStart &- ringSize
                let oldEnd = oldStart &+ subSize
                if consumed < oldEnd {
                    guard let count = RecordChain.countUnconsumed(
                        ring: ring, layout: layout, from: max(consumed, oldStart), to: oldEnd) else {
                        return .blocked
                    }
                    lost = count
                }
            }
        }
        let padPosition = inSub == 0 ? nextStart : head
        let padWord = RecordWord(length: Int(nextStart &- head), kind: .padding, eventID: 0,
                                 lap: layout.lap(of: head), busy: false)
        let beginWord = RecordWord(length: TraceLayout.beginRecordSize, kind: .subbufferBegin, eventID: 0,
                                   lap: layout.lap(of: nextStart), busy: false)
        let recordPosition = nextStart &+ UInt64(TraceLayout.beginRecordSize)
        let recordWord = RecordWord(length: total, kind: .event, eventID: eventID,
                                    lap: layout.lap(of: recordPosition), busy: true)
        return .ready(SubbufferOpening(
            padPosition: padPosition, padWord: padWord, beginPosition: nextStart, beginWord: beginWord,
            lost: lost, recordPosition: recordPosition, recordWord: recordWord,
            newHead: recordPosition &+ UInt64(total)))
    }
}

/// Walking a chain of records in a ring.
public enum RecordChain {
    /// Counts the records in `[from, to)` a reader has not taken, adding the `lost` counts of begin
    /// records. `nil` when a record there is still being written or the chain is damaged.
    public static func countUnconsumed(ring: RingView, layout: TraceLayout, from: UInt64, to: UInt64) -> UInt64? {
        var position = from
        var count: UInt64 = 0
        while position < to {
            let word = RecordWord(rawValue: ring.loadWord(at: position, ordering: .acquiring))
            guard let kind = word.kind, word.hasReservedBitsClear, word.lap == layout.lap(of: position),
                  word.length >= 8, word.length & 7 == 0, position &+ UInt64(word.length) <= to else {
                return nil
            }
            if word.isBusy { return nil }
            switch kind {
            case .event: count &+= 1
            case .subbufferBegin: count &+= ring.loadWord(at: position &+ 16, ordering: .relaxed)
            case .padding: break
            }
            position &+= UInt64(word.length)
        }
        return count
    }
}
