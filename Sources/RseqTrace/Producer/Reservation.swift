import Synchronization

/// A reserved record: write its payload, then commit it exactly once.
///
/// `Reservation` is non-copyable, so it cannot be committed twice. If it is dropped without a
/// commit, its record is turned into padding (readers skip it) rather than blocking the ring.
@safe
@frozen
public struct Reservation: ~Copyable {
    @usableFromInline let record: UnsafeMutableRawPointer
    @usableFromInline let committedWord: UInt64
    /// Bytes of payload this record can hold.
    public let payloadSize: Int

    /// ## Safety
    /// - `record` must be the start of a reserved, uncommitted record with room for `payloadSize`.
    @unsafe
    @inlinable
    init(record: UnsafeMutableRawPointer, committedWord: UInt64, payloadSize: Int) {
        // SAFETY: the caller vouches for the reserved record (see `## Safety`).
        unsafe self.record = record
        self.committedWord = committedWord
        self.payloadSize = payloadSize
    }

    /// Stores `value` at `offset` bytes into the payload.
    @inlinable
    public func store<T: BitwiseCopyable>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset &+ MemoryLayout<T>.size <= payloadSize, "payload store out of bounds")
        // SAFETY: bounds checked above; the record stays reserved until commit.
        unsafe record.storeBytes(of: value, toByteOffset: TraceLayout.recordHeaderSize &+ offset, as: T.self)
    }

    /// Gives `body` the payload bytes to fill.
    ///
    /// ## Safety
    /// - `body` must not let the buffer escape: after commit the bytes belong to the reader.
    @inlinable
    public func withUnsafeMutablePayload<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        // SAFETY: the payload region is reserved for this record and `payloadSize` long.
        try unsafe body(UnsafeMutableRawBufferPointer(
            start: record.advanced(by: TraceLayout.recordHeaderSize), count: payloadSize))
    }

    /// Publishes the record (a releasing store of its word; no need to be on the reserving CPU).
    @inlinable
    public consuming func commit() {
        // SAFETY: the record word is 8-aligned inside the mapped ring; this thread is its only writer.
        unsafe record.assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(committedWord, ordering: .releasing)
        discard self
    }

    deinit {
        // Abandoned: keep length and lap, make it padding so readers skip it.
        let word = RecordWord(rawValue: committedWord)
        let padding = RecordWord(length: word.size, kind: .padding, eventID: 0, lap: word.lap, busy: false)
        // SAFETY: as in commit.
        unsafe record.assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(padding.rawValue, ordering: .releasing)
    }
}
