import RseqTrace

/// One record handed to a drain callback, read in place (no copy).
///
/// Its payload is only valid inside the callback, so the record is non-copyable and the callback
/// only borrows it: it cannot be stored or returned. Copy what outlives the callback (`bytes`, or
/// values read with `load(fromByteOffset:as:)`).
@safe
public struct DrainedRecord: ~Copyable {
    /// Ring the record came from (`layout.slowLaneRing` for the slow lane).
    public let ring: Int
    /// The event id the record was written with (an id from the buffer's event registry).
    public let eventID: UInt16
    /// Cycle-counter timestamp (see `CycleClock`).
    public let timestamp: UInt64
    /// Position of the record in its ring (bytes since the ring was created).
    public let position: UInt64
    /// Exact size of the payload in bytes.
    public let payloadSize: Int
    /// Process id (as `getpid()` returned it in the writing process) of the thread that wrote the record.
    public let processID: Int32
    /// Thread id (as `gettid()` returned it) of the thread that wrote the record.
    public let threadID: Int32
    @usableFromInline let payload: UnsafeRawPointer

    /// ## Safety
    /// - `payload` must point to `payloadSize` readable bytes for as long as the record is borrowed.
    @unsafe
    init(ring: Int, eventID: UInt16, timestamp: UInt64, position: UInt64, processID: Int32, threadID: Int32,
         payload: UnsafeRawPointer, payloadSize: Int) {
        self.ring = ring
        self.eventID = eventID
        self.timestamp = timestamp
        self.position = position
        self.processID = processID
        self.threadID = threadID
        // SAFETY: the caller vouches the payload is readable during the callback.
        unsafe self.payload = payload
        self.payloadSize = payloadSize
    }

    /// Loads a value from the payload (any alignment). Traps when out of bounds: use it with
    /// offsets the caller chose after checking `payloadSize`; an offset computed from the payload's
    /// content (which another process wrote) goes through `loadIfInBounds(fromByteOffset:as:)`.
    @inlinable
    public func load<T: BitwiseCopyable>(fromByteOffset offset: Int, as type: T.Type) -> T {
        guard let value = loadIfInBounds(fromByteOffset: offset, as: T.self) else {
            preconditionFailure("payload read of \(MemoryLayout<T>.size) bytes at offset \(offset) out of bounds (payload \(payloadSize) bytes)")
        }
        return value
    }

    /// Loads a value from the payload (any alignment), or nil when `offset` and the value's size
    /// do not lie within the payload. Never traps, whatever `offset` is.
    @inlinable
    public func loadIfInBounds<T: BitwiseCopyable>(fromByteOffset offset: Int, as type: T.Type) -> T? {
        // No addition: `offset` may be anything, `payloadSize - size` cannot overflow (both are small).
        guard offset >= 0, payloadSize >= MemoryLayout<T>.size, offset <= payloadSize - MemoryLayout<T>.size else { return nil }
        // SAFETY: bounds checked; the payload is valid for the callback's duration.
        return unsafe payload.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    /// Calls `body` with the payload bytes, read in place (no copy); they cannot outlive `body`.
    @inlinable
    public func withPayload<Result, E: Error>(_ body: (RawSpan) throws(E) -> Result) throws(E) -> Result {
        // SAFETY: `payloadSize` bytes are readable for the callback's duration, which contains `body`'s.
        let bytes = unsafe UnsafeRawBufferPointer(start: payload, count: payloadSize)
        // SAFETY: as above; the span cannot escape `body`.
        let span = unsafe RawSpan(_unsafeBytes: bytes)
        return try body(span)
    }

    /// A copy of the payload bytes.
    public var bytes: [UInt8] {
        // SAFETY: `payloadSize` bytes are readable for the callback's duration.
        unsafe Array(unsafe UnsafeRawBufferPointer(start: payload, count: payloadSize))
    }
}
