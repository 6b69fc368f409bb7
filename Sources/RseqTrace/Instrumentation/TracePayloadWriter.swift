/// Writes the fields of one event into its reserved payload, in order.
///
/// The writer never writes outside the payload: a write that does not fit is skipped and
/// remembered, and the tracepoint then abandons the record (readers skip it as padding) instead of
/// publishing a malformed one. Built-in field types always write exactly their
/// ``TraceFieldValue/traceEncodedSize``; the check guards custom conformances.
@safe
@frozen
public struct TracePayloadWriter: ~Copyable {
    @usableFromInline var cursor: UnsafeMutableRawPointer
    @usableFromInline let end: UnsafeMutableRawPointer
    @usableFromInline var overflowed: Bool

    /// ## Safety
    /// `start` must point to `count` writable bytes that stay valid while the writer is used.
    @unsafe
    @inlinable
    init(start: UnsafeMutableRawPointer, count: Int) {
        // SAFETY: the caller vouches for `count` writable bytes at `start`.
        unsafe self.cursor = start
        // SAFETY: one past the end of the same region.
        unsafe self.end = start.advanced(by: count)
        self.overflowed = false
    }

    /// Whether every write fitted and the payload is exactly filled.
    @inlinable
    var isExactlyFilled: Bool {
        // SAFETY: comparing two addresses.
        let atEnd = unsafe cursor == end
        return !overflowed && atEnd
    }

    /// Bytes left to fill.
    @inlinable
    public var remaining: Int { unsafe end - cursor }  // SAFETY: both point into the same payload

    /// Appends the bytes of `value` (little-endian on the supported architectures).
    @inlinable
    @inline(__always)
    public mutating func append<T: BitwiseCopyable>(_ value: T) {
        let size = MemoryLayout<T>.size
        // SAFETY: both point into the same payload.
        guard unsafe end - cursor >= size else {
            overflowed = true
            return
        }
        // SAFETY: `size` bytes remain before `end` (checked above); storeBytes allows any alignment.
        unsafe cursor.storeBytes(of: value, as: T.self)
        // SAFETY: stays within [start, end].
        unsafe cursor = cursor.advanced(by: size)
    }

    /// Appends the first `count` bytes of `bytes` (all of them when `count` is larger).
    @inlinable
    @inline(__always)
    public mutating func append(_ bytes: Span<UInt8>, count: Int) {
        let n = min(count, bytes.count)
        guard n > 0 else { return }
        // SAFETY: both point into the same payload.
        guard unsafe end - cursor >= n else {
            overflowed = true
            return
        }
        // SAFETY: `n` bytes of the span are readable and `n` bytes remain before `end`.
        unsafe bytes.withUnsafeBytes { unsafe cursor.copyMemory(from: $0.baseAddress!, byteCount: n) }
        // SAFETY: stays within [start, end].
        unsafe cursor = cursor.advanced(by: n)
    }

    /// Appends `count` bytes from `source`.
    /// ## Safety
    /// `source` must point to `count` readable bytes.
    @unsafe
    @inlinable
    @inline(__always)
    public mutating func append(bytesFrom source: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        // SAFETY: both point into the same payload.
        guard unsafe end - cursor >= count else {
            overflowed = true
            return
        }
        // SAFETY: `count` readable bytes (caller) and `count` bytes remain before `end`.
        unsafe cursor.copyMemory(from: source, byteCount: count)
        // SAFETY: stays within [start, end].
        unsafe cursor = cursor.advanced(by: count)
    }
}
