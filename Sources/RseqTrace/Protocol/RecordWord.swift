/// The first 64-bit word of every record in a ring: how long the record is, what it is, whether it
/// is still being written, and which lap of the ring it belongs to.
///
/// ```
///  63            48 47            32 31 30 29  28  27  24 23                      0
/// +----------------+----------------+--+--+--+----+------+-------------------------+
/// |  lap (16 bits) | event id (16)  | 0|ok| 0|busy| kind |  length in bytes (24)   |
/// +----------------+----------------+--+--+--+----+------+-------------------------+
/// ```
///
/// - `length` counts this word, the timestamp word and the payload exactly (at least 16 for an
///   event, 8 for padding, 24 for begin and thread records); the record occupies `length` rounded up to 8 (`size`), so readers
///   know the exact payload size and never see the alignment bytes.
/// - `busy` is set while a reserved record is being written; the reserving thread clears it with a
///   releasing store (the commit). Readers load the word with acquiring ordering.
/// - `ok` (*owner known*, bit 30) is set only on a busy lead word, by a second store of the
///   reserving thread once the thread record's body (its pid and tid) is written: a consumer may
///   then read the owner of the reservation from the body (docs/BufferProtocol.md §2.1, §4.6).
///   Every other word has bits 29...31 clear.
/// - `lap` is `(position / ringSize) & 0xffff`: a reader rejects a word left over from an earlier
///   lap of the ring, or memory that was never written (all zeros has kind 0, which is invalid).
@frozen
@usableFromInline
package struct RecordWord: Hashable, Sendable {
    @usableFromInline package var rawValue: UInt64

    @inlinable package init(rawValue: UInt64) { self.rawValue = rawValue }

    /// What a record is.
    @frozen
    @usableFromInline
    package enum Kind: UInt8, Sendable {
        /// A traced event: `[word][timestamp][payload]`.
        case event = 1
        /// Filler closing a sub-buffer; its bytes carry no data.
        case padding = 2
        /// First record of every sub-buffer: `[word][timestamp][records lost before it]`.
        case subbufferBegin = 3
        /// `[word][timestamp][pid << 32 | tid]`, 24 bytes: the records after it in its sub-buffer,
        /// up to the next thread record, were written by that thread. While its reservation is in
        /// flight it is a *lead* word: busy, with a length covering itself and the event after it.
        case thread = 4
    }

    @usableFromInline static let busyBit: UInt64 = 1 << 28
    /// Set on a busy lead word once the thread record's body names its owner.
    @usableFromInline static let ownerKnownBit: UInt64 = 1 << 30
    /// The lap (bits 48-63) and the kind, busy and reserved bits (24-31) of a word.
    @usableFromInline package static let lapAndFlagsMask: UInt64 = 0xFFFF_0000_FF00_0000
    /// Those bits of a committed event word of lap 0 (kind event, not busy, reserved bits clear).
    @usableFromInline package static let committedEventBits = UInt64(Kind.event.rawValue) << 24

    @inlinable
    package init(length: Int, kind: Kind, eventID: UInt16, lap: UInt16, busy: Bool) {
        rawValue = UInt64(truncatingIfNeeded: length) & 0xFF_FFFF
            | UInt64(kind.rawValue) << 24
            | (busy ? RecordWord.busyBit : 0)
            | UInt64(eventID) << 32
            | UInt64(lap) << 48
    }

    @inlinable package var length: Int { Int(truncatingIfNeeded: rawValue & 0xFF_FFFF) }
    /// Bytes the record occupies in the ring: `length` rounded up to 8.
    @inlinable package var size: Int { TraceLayout.occupiedSize(length: length) }
    @inlinable package var kind: Kind? { Kind(rawValue: UInt8(truncatingIfNeeded: (rawValue >> 24) & 0xF)) }
    @inlinable package var isBusy: Bool { rawValue & RecordWord.busyBit != 0 }
    @inlinable package var eventID: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 32) }
    @inlinable package var lap: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 48) }
    /// Reserved bits 29...31 are zero in every valid word, except `ownerKnown` on a busy lead.
    @inlinable package var hasReservedBitsClear: Bool { rawValue & (0b111 << 29) == 0 }
    /// Whether this busy lead word says its thread record's body names the reservation's owner.
    @inlinable package var isOwnerKnown: Bool { rawValue & RecordWord.ownerKnownBit != 0 }
    /// Whether bits 29...31 are valid for this word: all clear, or only `ownerKnown` on a busy
    /// thread (lead) word.
    @inlinable package var hasValidReservedBits: Bool {
        let reserved = rawValue & (0b111 << 29)
        return reserved == 0 || (reserved == RecordWord.ownerKnownBit && isBusy && kind == .thread)
    }
    /// Whether this is the busy word of a reservation in flight at ring position `position`: a busy
    /// event or lead (thread) word of the position's lap, with valid reserved bits.
    @inlinable package func isReservation(at position: UInt64, layout: TraceLayout) -> Bool {
        isBusy && (kind == .event || kind == .thread) && hasValidReservedBits && lap == layout.lap(of: position)
    }
    /// Whether such a reservation's extent is whole: at least its header (a lead's, the thread record
    /// and an event header), inside its sub-buffer and ending at or below `limit`.
    @inlinable package func reservationFits(at position: UInt64, limit: UInt64, layout: TraceLayout) -> Bool {
        let minimum = kind == .event ? TraceLayout.recordHeaderSize
            : TraceLayout.threadRecordSize &+ TraceLayout.recordHeaderSize
        let end = position &+ UInt64(size)
        return length >= minimum && end <= limit && end <= (position | UInt64(layout.subbufferSize &- 1)) &+ 1
    }
    /// The same lead word with `ownerKnown` set (what the reserving thread stores once the thread
    /// record's body is written).
    @inlinable package var withOwnerKnown: RecordWord { RecordWord(rawValue: rawValue | RecordWord.ownerKnownBit) }
    /// A committed padding word covering this busy record's whole extent (`size` bytes; for a
    /// lead, the thread record and the event reserved with it), same lap: what a consumer stores
    /// over a reservation whose owner died (docs/BufferProtocol.md §4.6).
    @inlinable package var abandonedPadding: RecordWord {
        RecordWord(length: size, kind: .padding, eventID: 0, lap: lap, busy: false)
    }

    /// The busy *lead* word a reservation that starts with a thread record stores: kind `thread`,
    /// its length covering the thread record and the event record of `length` bytes after it, so
    /// that a reader treats both as one record in flight until the commit.
    @inlinable
    package static func lead(length: Int, lap: UInt16) -> RecordWord {
        RecordWord(length: TraceLayout.threadRecordSize &+ length, kind: .thread, eventID: 0, lap: lap, busy: true)
    }

    /// The final word of a thread record of lap `lap` (what the commit stores over the lead).
    @inlinable
    package static func threadRecord(lap: UInt16) -> RecordWord {
        RecordWord(length: TraceLayout.threadRecordSize, kind: .thread, eventID: 0, lap: lap, busy: false)
    }

    /// The same word with `busy` cleared: what the commit stores.
    @inlinable package var committed: RecordWord { RecordWord(rawValue: rawValue & ~RecordWord.busyBit) }
}
