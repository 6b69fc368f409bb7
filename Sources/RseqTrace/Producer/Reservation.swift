/// A reserved record: write its payload, then commit it exactly once.
///
/// `Reservation` is non-copyable, so it cannot be committed twice, and non-escapable: it cannot
/// outlive the `Producer` that made it (which keeps the buffer mapped). If it is dropped without a
/// commit, its record is turned into padding (readers skip it) rather than blocking the ring.
@safe
@frozen
public struct Reservation: ~Copyable, ~Escapable {
    @usableFromInline let slot: ReservedSlot
    /// Bytes of payload this record can hold.
    public let payloadSize: Int

    /// ## Safety
    /// - `slot` must be a reserved, uncommitted record with room for `payloadSize` bytes, in the
    ///   mapping `producer` keeps alive.
    @unsafe
    @inlinable
    @_lifetime(borrow producer)
    init(slot: ReservedSlot, payloadSize: Int, producer: borrowing Producer) {
        self.slot = slot
        self.payloadSize = payloadSize
    }

    /// Stores `value` at `offset` bytes into the payload. Traps when out of bounds.
    @inlinable
    public func store<T: BitwiseCopyable>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset &+ MemoryLayout<T>.size <= payloadSize, "payload store out of bounds")
        // SAFETY: bounds checked above; the record stays reserved until commit.
        unsafe slot.payload.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    /// Gives `body` the payload bytes to fill.
    ///
    /// ## Safety
    /// - `body` must not let the buffer escape: after commit the bytes belong to the reader.
    @inlinable
    public func withUnsafeMutablePayload<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        // SAFETY: the payload region is reserved for this record and `payloadSize` long.
        try unsafe body(UnsafeMutableRawBufferPointer(start: slot.payload, count: payloadSize))
    }

    /// Publishes the record (a releasing store of its word; no need to be on the reserving CPU).
    @inlinable
    public consuming func commit() {
        slot.commit()
        discard self
    }

    deinit {
        // Abandoned: keep length and lap, make it padding so readers skip it.
        slot.abandon()
    }
}
