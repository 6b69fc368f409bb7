/// Byte layout of a shared trace object, and the arithmetic on ring positions.
///
/// ```
/// +----------------------+  0
/// | object header        |  4 KiB: magic, version, geometry, clock, identity (see `HeaderField`)
/// +----------------------+  4096
/// | event registry       |  60 KiB: schemas of the events producers registered (EventRegistry)
/// +----------------------+  ringsOffset = 65536
/// | ring 0 control       |  4 KiB: producer line (head, counters, mutex) + consumer line (consumed)
/// | ring 0 data          |  ringSize bytes, split into sub-buffers of subbufferSize bytes
/// +----------------------+  ringsOffset + ringStride
/// | ring 1 ...           |
/// | ...                  |
/// | ring N (slow lane)   |  last ring: always the locked protocol (threads that cannot use rseq)
/// +----------------------+  totalSize
/// ```
///
/// Positions (`head`, `consumed`) are 64-bit byte counts that only grow; the byte at position `p`
/// lives at `data + (p & (ringSize - 1))`. Records never straddle a sub-buffer boundary; every
/// sub-buffer starts with a `subbufferBegin` record. See docs/BufferProtocol.md.
@frozen
public struct TraceLayout: Hashable, Sendable {
    /// "RSEQTRC" followed by a format byte 0x01, little-endian.
    public static let magic: UInt64 = 0x0143_5254_5145_5352
    /// Version of everything described here. Readers reject other versions.
    public static let version: UInt32 = 1
    public static let headerSize = 4096
    /// The event registry follows the header.
    public static let registryOffset = 4096
    public static let registrySize = 61_440
    public static let controlSize = 4096
    /// Size of a `subbufferBegin` record.
    public static let beginRecordSize = 24
    /// Size of a record header (`RecordWord` + timestamp).
    public static let recordHeaderSize = 16
    public static let minimumRingSize = 8192
    public static let maximumRingSize = 1 << 30
    public static let minimumSubbufferSize = 256
    public static let maximumSubbufferSize = 1 << 24
    /// Each sub-buffer has a recycle marker in the ring's control block (see `ControlField.recycleMarkers`).
    public static let maximumSubbuffersPerRing = 256

    /// Rings indexed by CPU (or concurrency id); the slow-lane ring follows them.
    public let cpuRingCount: Int
    public let ringSize: Int
    public let subbufferSize: Int
    /// log2(ringSize): positions are split into lap and offset with shifts, never divisions.
    public let ringShift: Int

    @inlinable public var ringCount: Int { cpuRingCount + 1 }
    @inlinable public var slowLaneRing: Int { cpuRingCount }
    @inlinable public var ringStride: Int { TraceLayout.controlSize + ringSize }
    @inlinable public var ringsOffset: Int { TraceLayout.registryOffset + TraceLayout.registrySize }
    @inlinable public var totalSize: Int { ringsOffset + ringCount * ringStride }
    @inlinable public var subbuffersPerRing: Int { ringSize / subbufferSize }
    /// Largest payload one record can carry: a sub-buffer minus its begin record and a record header.
    @inlinable public var maximumPayloadSize: Int {
        subbufferSize - TraceLayout.beginRecordSize - TraceLayout.recordHeaderSize
    }

    /// Validates a geometry; `nil` when a size is not a power of two or out of range.
    public init?(cpuRingCount: Int, ringSize: Int, subbufferSize: Int) {
        guard cpuRingCount >= 1, cpuRingCount <= 4096,
              ringSize >= TraceLayout.minimumRingSize, ringSize <= TraceLayout.maximumRingSize,
              ringSize & (ringSize - 1) == 0,
              subbufferSize >= TraceLayout.minimumSubbufferSize,
              subbufferSize <= TraceLayout.maximumSubbufferSize,
              subbufferSize & (subbufferSize - 1) == 0,
              ringSize / subbufferSize >= 2,
              ringSize / subbufferSize <= TraceLayout.maximumSubbuffersPerRing
        else { return nil }
        self.cpuRingCount = cpuRingCount
        self.ringSize = ringSize
        self.subbufferSize = subbufferSize
        self.ringShift = ringSize.trailingZeroBitCount
    }

    /// Bytes a record with `payloadSize` bytes of payload occupies: header plus payload, rounded up to 8.
    @inlinable
    public static func recordSize(payloadSize: Int) -> Int {
        occupiedSize(length: recordHeaderSize &+ payloadSize)
    }

    /// Bytes a record of `length` bytes (header + payload) occupies: `length` rounded up to 8.
    @inlinable
    public static func occupiedSize(length: Int) -> Int {
        (length &+ 7) & ~7
    }

    /// Low 16 bits of the sequence number of the sub-buffer starting at `position`.
    @inlinable public func subbufferTag(of position: UInt64) -> UInt16 {
        UInt16(truncatingIfNeeded: position / UInt64(subbufferSize))
    }

    /// Slot (0..<subbuffersPerRing) of the sub-buffer containing `position`.
    @inlinable public func slot(of position: UInt64) -> Int {
        Int(truncatingIfNeeded: (position / UInt64(subbufferSize)) % UInt64(subbuffersPerRing))
    }

    @inlinable public func lap(of position: UInt64) -> UInt16 {
        UInt16(truncatingIfNeeded: position &>> UInt64(ringShift))
    }
}

/// Fixed byte offsets of the object header fields (all little-endian, naturally aligned).
public enum HeaderField {
    public static let magic = 0            // UInt64
    public static let version = 8          // UInt32
    public static let headerSize = 12      // UInt32
    public static let totalSize = 16       // UInt64
    public static let cpuRingCount = 24    // UInt32
    public static let ringCount = 28       // UInt32
    public static let ringStride = 32      // UInt64
    public static let ringsOffset = 40     // UInt64
    public static let ringSize = 48        // UInt64
    public static let subbufferSize = 56   // UInt64
    public static let controlSize = 64     // UInt64
    public static let ringProtocol = 72    // UInt32: RingProtocol
    public static let bufferMode = 76      // UInt32: BufferMode
    public static let indexing = 80        // UInt32: RingIndexing
    public static let state = 84           // UInt32 (atomic): 1 = ready, 2 = finished
    public static let creatorPID = 88      // UInt32
    public static let creatorUID = 92      // UInt32
    public static let cycleFrequency = 96  // UInt64: cycle counter ticks per second
    public static let cycleReference = 104 // UInt64: counter value at the reference instant
    public static let monotonicReference = 112 // UInt64: CLOCK_MONOTONIC ns at the reference instant
    public static let realtimeReference = 120  // UInt64: CLOCK_REALTIME ns at the reference instant
    public static let bootID = 128         // 16 bytes: /proc/sys/kernel/random/boot_id
    public static let clockSource = 144    // 16 bytes, NUL-padded: "tsc", "cntvct"
    public static let attachedProducers = 160 // UInt64 (atomic): processes that attached as producers
    public static let registryUsed = 168   // UInt64 (atomic): bytes of registry entries published
    public static let registryMutex = 192  // 64 bytes: process-shared robust mutex of the registry
}

/// Fixed byte offsets inside a ring's control block.
public enum ControlField {
    /// Producer line. `head` is written only by an rseq sequence on the ring's CPU (or under the
    /// ring mutex with the locked protocol); everything else reads it with acquiring ordering.
    public static let head = 0
    /// Records refused because the ring was full (discard) or recycling was blocked by a record
    /// still being written (overwrite). Same writers as `head`.
    public static let dropped = 8
    /// Records refused because they could never fit a sub-buffer. Same writers as `head`.
    public static let tooLarge = 16
    /// Process-shared robust mutex (locked protocol only).
    public static let mutex = 64
    /// Consumer line: position up to which the consumer has taken records. Discard mode: written
    /// by the consumer alone with releasing stores. Overwrite mode: written only by a sequence
    /// running on the ring's CPU (or under the mutex), so that recycling and consuming exclude
    /// each other.
    public static let consumed = 128
    /// Overwrite mode: one `RecycleMarker` word per sub-buffer slot (`recycleMarkers + 8 * slot`),
    /// written like `head`. Committing a marker declares the slot's previous content dead (and how
    /// many unread records died with it) before anything is written into that content.
    public static let recycleMarkers = 512

    /// Offset of the recycle marker of sub-buffer slot `slot`.
    @inlinable public static func recycleMarker(slot: Int) -> Int { recycleMarkers + 8 * slot }
}

/// The recycle marker of a sub-buffer slot (overwrite mode):
/// `tag` = low 16 bits of the sequence number (position / subbufferSize) of the sub-buffer whose
/// opening recycled the slot; `lost` = unread records destroyed by that recycling, plus the
/// still-unreported loss of the content it destroyed (saturating at 2^48 - 1).
@frozen
public struct RecycleMarker: Hashable, Sendable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(tag: UInt16, lost: UInt64) {
        rawValue = UInt64(tag) << 48 | min(lost, RecycleMarker.maximumLost)
    }
    public static let maximumLost: UInt64 = (1 << 48) - 1
    @inlinable public var tag: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 48) }
    @inlinable public var lost: UInt64 { rawValue & RecycleMarker.maximumLost }
}

/// How producers update a ring. Chosen when the object is created; never mixed on one ring.
@frozen
public enum RingProtocol: UInt32, Sendable {
    /// Restartable sequences on the ring's CPU.
    case rseq = 1
    /// A process-shared robust mutex per ring.
    case locked = 2
}

/// What happens when a ring is full.
@frozen
public enum BufferMode: UInt32, Sendable, CustomStringConvertible {
    /// New records are dropped and counted.
    case discard = 0
    /// The oldest sub-buffer is recycled; the number of records it held is carried in the next
    /// sub-buffer's begin record (flight recorder).
    case overwrite = 1

    public var description: String { self == .discard ? "discard" : "overwrite" }
}

/// What indexes the per-CPU rings.
@frozen
public enum RingIndexing: UInt32, Sendable, CustomStringConvertible {
    /// The rseq `cpu_id`: valid across processes.
    case cpuID = 0
    /// The rseq `mm_cid` (Linux 6.3+): fewer active rings for processes with few threads, but only
    /// meaningful inside the creating process.
    case concurrencyID = 1

    public var description: String { self == .cpuID ? "cpu_id" : "mm_cid" }
}
