/// The handle application threads write records with.
///
/// A `Producer` keeps the `SharedTraceBuffer` that made it alive (it holds a reference to it), so it
/// can be copied to every thread and used for as long as any copy exists (copying it retains the
/// buffer; calling it does not): the write path reads the rings' address and geometry, precomputed
/// once per buffer, through one pointer.
///
/// Two ways to write a record:
/// - **copy-commit** (`write(eventID:bytes:)` and its siblings): one restartable sequence copies the
///   whole record and publishes it; best for small records.
/// - **reserve → write → commit** (`reserve(eventID:payloadSize:)`, then fill the payload in
///   place, then `commit(_:)`): zero-copy; the thread may migrate between reserve and commit,
///   because the commit is a releasing store to the record's own word, made by its only writer.
///
/// Neither throws, locks, allocates or enters the kernel on the fast path. When a record cannot be
/// stored it is dropped and counted in its ring (`dropped`: ring full, or recycling blocked;
/// `tooLarge`: the payload can never fit a sub-buffer).
@frozen
public struct Producer: Sendable {
    /// Owns the mapping and the state `writer` refers to.
    @usableFromInline let buffer: SharedTraceBuffer
    /// The buffer's writer for this process.
    @usableFromInline let writer: RingWriter

    /// ## Safety
    /// - `writer`'s state must be owned by `buffer` (valid for as long as `buffer` is alive).
    @unsafe
    @usableFromInline
    init(buffer: SharedTraceBuffer, writer: RingWriter) {
        self.buffer = buffer
        // `self.buffer` keeps the writer's state and the mapping alive for as long as this value (or
        // a copy) exists, and every Reservation depends on a borrow of this value.
        self.writer = writer
    }

    /// The largest payload one record can carry (`subbufferSize - 64` bytes); larger records are
    /// refused and counted as `tooLarge`.
    @inlinable public var maximumPayloadSize: Int { writer.layout.maximumPayloadSize }

    /// How this process updates the buffer's rings (tests and diagnostics).
    package var path: RingWriter.Path { writer.path }

    // MARK: - Reserve and commit

    /// Reserves a record with room for `payloadSize` bytes of payload on the current CPU's ring.
    ///
    /// The record stays invisible to readers (and blocks the ring's reader at that point) until it
    /// is committed, so commit promptly. The reservation cannot outlive this producer.
    /// - Returns: the reservation, or `nil` when the record was dropped (and counted).
    /// - Complexity: O(1) on the fast path; no allocation, lock or system call. After 64 failed
    ///   sequences the record goes through the slow lane.
    @inlinable
    @inline(__always)
    @_lifetime(borrow self)
    public func reserve(eventID: UInt16, payloadSize: Int) -> Reservation? {
        guard let slot = writer.reserve(eventID: eventID, payloadSize: payloadSize) else { return nil }
        // SAFETY: `slot` is a reserved record with room for `payloadSize` bytes of payload, in the
        // mapping `self` keeps alive; the reservation's lifetime depends on a borrow of `self`.
        return unsafe Reservation(slot: slot, payloadSize: payloadSize, producer: self)
    }

    /// Publishes a reserved record. Can run on any CPU.
    @inlinable
    public func commit(_ reservation: consuming Reservation) {
        reservation.commit()
    }

    // MARK: - Copy-commit

    /// Writes the bytes of `payload` as the payload of one record.
    /// - Returns: true when stored, false when dropped (and counted).
    /// - Complexity: O(payload size); no allocation, lock or system call on the fast path.
    @inlinable
    public func write(eventID: UInt16, payload: UnsafeRawBufferPointer) -> Bool {
        // SAFETY: the buffer's base address and count describe readable bytes (caller's contract).
        unsafe writer.write(eventID: eventID, source: payload.baseAddress, size: payload.count)
    }

    /// Writes the bytes of `bytes` as the payload of one record.
    /// - Returns: true when stored, false when dropped (and counted).
    @inlinable
    public func write(eventID: UInt16, bytes: RawSpan) -> Bool {
        // SAFETY: the span guarantees its bytes are readable for the closure.
        unsafe bytes.withUnsafeBytes { unsafe writer.write(eventID: eventID, source: $0.baseAddress, size: $0.count) }
    }

    /// Writes the bytes of `bytes` as the payload of one record.
    /// - Returns: true when stored, false when dropped (and counted).
    @inlinable
    public func write(eventID: UInt16, bytes: Span<UInt8>) -> Bool {
        // SAFETY: the span guarantees its elements are readable for the closure.
        unsafe bytes.withUnsafeBytes { unsafe writer.write(eventID: eventID, source: $0.baseAddress, size: $0.count) }
    }

    /// Writes `value`'s bytes as the payload of one record.
    /// - Returns: true when stored, false when dropped (and counted).
    @inlinable
    @inline(__always)
    public func write<T: BitwiseCopyable>(eventID: UInt16, value: T) -> Bool {
        // SAFETY: `withUnsafeBytes(of:)` gives the value's bytes for the closure.
        unsafe withUnsafeBytes(of: value) { unsafe writer.write(eventID: eventID, source: $0.baseAddress, size: $0.count) }
    }
}
