import RseqTrace

/// One record handed to a drain callback. Its payload is only valid inside the callback.
@safe
public struct DrainedRecord {
    /// Ring the record came from (`layout.slowLaneRing` for the slow lane).
    public let ring: Int
    public let eventID: UInt16
    /// Cycle-counter timestamp (see `CycleClock`).
    public let timestamp: UInt64
    /// Position of the record in its ring (bytes since the ring was created).
    public let position: UInt64
    public let payloadSize: Int
    @usableFromInline let payload: UnsafeRawPointer

    @unsafe
    init(ring: Int, eventID: UInt16, timestamp: UInt64, position: UInt64, payload: UnsafeRawPointer, payloadSize: Int) {
        self.ring = ring
        self.eventID = eventID
        self.timestamp = timestamp
        self.position = position
        // SAFETY: the caller vouches the payload is readable during the callback.
        unsafe self.payload = payload
        self.payloadSize = payloadSize
    }

    /// Loads a value from the payload (any alignment). Traps when out of bounds.
    @inlinable
    public func load<T: BitwiseCopyable>(fromByteOffset offset: Int, as type: T.Type) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= payloadSize, "payload read out of bounds")
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
