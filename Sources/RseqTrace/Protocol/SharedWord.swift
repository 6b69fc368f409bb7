import Synchronization

/// Words of the shared mapping that are accessed atomically, in one place: every control word, record
/// word and atomic header field is viewed as a `Synchronization.Atomic` over the mapped bytes here,
/// never by plain Swift loads or stores (docs/BufferProtocol.md §3).
extension UnsafeMutableRawPointer {
    /// The naturally aligned `UInt64` at `offset` bytes from `self`, as an atomic.
    ///
    /// ## Safety
    /// - `self + offset` must be 8-aligned, inside a live mapping, and only ever accessed atomically.
    @unsafe
    @inlinable
    @inline(__always)
    package func sharedWord64(at offset: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        // SAFETY: Atomic<UInt64> has the size and alignment of UInt64; the caller vouches for the
        // address (see `## Safety`).
        unsafe advanced(by: offset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// The naturally aligned `UInt32` at `offset` bytes from `self`, as an atomic.
    ///
    /// ## Safety
    /// - `self + offset` must be 4-aligned, inside a live mapping, and only ever accessed atomically.
    @unsafe
    @inlinable
    package func sharedWord32(at offset: Int) -> UnsafeMutablePointer<Atomic<UInt32>> {
        // SAFETY: as in `sharedWord64(at:)`, for Atomic<UInt32>.
        unsafe advanced(by: offset).assumingMemoryBound(to: Atomic<UInt32>.self)
    }
}
