/// Byte layout of a shared trace object, and the arithmetic on ring positions.
///
/// ```
/// +----------------------+  0
/// | object header        |  4 KiB: magic, version, geometry, clock, identity (see `HeaderField`)
/// +----------------------+  4096
/// | event registry       |  60 KiB: schemas of the events producers registered (EventRegistry)
/// +----------------------+  linesOffset = 65536
/// | ring lines           |  256 bytes per ring: producer line (head, stamp, counters, last
/// |                      |  writer), consumer
/// |                      |  line (consumed); rounded up to whole pages
/// +----------------------+  countersOffset = linesOffset + linesSize
/// | counter names        |  64 KiB: 512 entries of 128 bytes (slot -> name)
/// | counter values       |  32 groups of 16 slots; per group one 128-byte line per CPU block
/// |                      |  (cpuRingCount blocks, then the atomic block); whole pages
/// +----------------------+  ringsOffset = countersOffset + countersSize
/// | ring 0 control       |  8 KiB: recycle markers (rseq rings), commit counters and read
/// |                      |  accounting (lock-free rings)
/// | ring 0 data          |  ringSize bytes, split into sub-buffers of subbufferSize bytes
/// +----------------------+  ringsOffset + ringStride
/// | ring 1 ...           |
/// | ...                  |
/// | ring N (slow lane)   |  last ring: always the lock-free protocol (threads that cannot use rseq)
/// +----------------------+  totalSize
/// ```
///
/// Positions (`head`, `consumed`) are 64-bit byte counts that only grow; the byte at position `p`
/// lives at `data + (p & (ringSize - 1))`. Records never straddle a sub-buffer boundary; every
/// sub-buffer starts with a `subbufferBegin` record, and its events are preceded, within it, by
/// `thread` records naming their writer. See docs/BufferProtocol.md.
///
/// Header, registry, lines and counter names are populated at creation, a group of counter values
/// when its first counter is registered; a ring's control block and data pages
/// are populated by the producer that first opens each of its sub-buffers (BufferProtocol.md §1),
/// so memory grows with what is written, not with the number of possible CPUs.
@frozen
public struct TraceLayout: Hashable, Sendable {
    /// "RSEQTRC" followed by a format byte 0x01, little-endian.
    @usableFromInline package static let magic: UInt64 = 0x0143_5254_5145_5352
    /// Version of everything described here. Readers reject other versions.
    @usableFromInline package static let version: UInt32 = 5
    @usableFromInline package static let headerSize = 4096
    /// The event registry follows the header.
    @usableFromInline package static let registryOffset = 4096
    @usableFromInline package static let registrySize = 61_440
    @usableFromInline package static let controlSize = 8192
    /// Bytes of a ring's entry in the lines table (its producer and consumer lines).
    @usableFromInline package static let lineStride = 256
    @usableFromInline package static let pageSize = 4096
    /// Size of a `subbufferBegin` record.
    @usableFromInline package static let beginRecordSize = 24
    /// Size of a `thread` record: `[word][timestamp][pid << 32 | tid]`.
    @usableFromInline package static let threadRecordSize = 24
    /// Size of a record header (`RecordWord` + timestamp).
    @usableFromInline package static let recordHeaderSize = 16
    @usableFromInline package static let minimumRingSize = 8192
    @usableFromInline package static let maximumRingSize = 1 << 30
    @usableFromInline package static let minimumSubbufferSize = 256
    @usableFromInline package static let maximumSubbufferSize = 1 << 24
    /// Each sub-buffer has a recycle marker in the ring's control block (see `ControlField.recycleMarkers`).
    @usableFromInline package static let maximumSubbuffersPerRing = 256
    /// Most rings indexed by CPU (or concurrency id); a CPU at or beyond the ring count writes to the slow lane.
    @usableFromInline package static let maximumCPURingCount = 4096
    /// Counter slots of a trace object (docs/BufferProtocol.md §8).
    @usableFromInline package static let counterSlotCount = 512
    /// Bytes of a counter's entry in the name table: a `UInt64` name length (0: free), then the
    /// name's UTF-8 bytes.
    @usableFromInline package static let counterNameEntrySize = 128
    /// Longest counter name, in UTF-8 bytes.
    @usableFromInline package static let maximumCounterNameSize = counterNameEntrySize - 8
    @usableFromInline package static let counterNamesSize = counterSlotCount * counterNameEntrySize
    /// Bytes of one block's line in a counter group: 16 slots of 8 bytes, two cache lines, so that
    /// no two CPUs' counters share a line (nor an adjacent-line prefetch pair).
    @usableFromInline package static let counterLineSize = 128
    @usableFromInline package static let countersPerLine = counterLineSize / 8
    /// Size of the largest object a valid geometry describes (every bound at its maximum).
    @usableFromInline package static let maximumTotalSize =
        registryOffset + registrySize + counterNamesSize + (maximumCPURingCount + 1) * (lineStride + controlSize + maximumRingSize)
            + (counterSlotCount / countersPerLine) * (maximumCPURingCount + 1) * counterLineSize + 2 * pageSize

    /// Number of per-CPU rings (indexed by CPU, or by concurrency id); the slow-lane ring follows them.
    public let cpuRingCount: Int
    /// Bytes of data per ring (a power of two).
    public let ringSize: Int
    /// Bytes per sub-buffer (a power of two); a record never crosses a sub-buffer boundary.
    public let subbufferSize: Int
    /// log2(ringSize): positions are split into lap and offset with shifts, never divisions.
    @usableFromInline package let ringShift: Int

    /// Number of rings: one per CPU plus the slow lane.
    @inlinable public var ringCount: Int { cpuRingCount + 1 }
    /// Index of the slow-lane ring (the last one), written by threads that cannot use rseq.
    @inlinable public var slowLaneRing: Int { cpuRingCount }
    @inlinable package var ringStride: Int { TraceLayout.controlSize + ringSize }
    /// Where the lines table starts (right after the registry).
    @inlinable package var linesOffset: Int { TraceLayout.registryOffset + TraceLayout.registrySize }
    /// Bytes of the lines table: one `lineStride` entry per ring, rounded up to whole pages.
    @inlinable package var linesSize: Int {
        (ringCount &* TraceLayout.lineStride &+ TraceLayout.pageSize &- 1) & ~(TraceLayout.pageSize &- 1)
    }
    /// Where the counter area starts (the counter name table, then the values).
    @inlinable package var countersOffset: Int { linesOffset &+ linesSize }
    /// Where the counter values start (after the name table).
    @inlinable package var counterValuesOffset: Int { countersOffset &+ TraceLayout.counterNamesSize }
    /// Blocks of counter values: one per CPU ring index, then the block updated with atomic adds.
    @inlinable package var counterBlockCount: Int { cpuRingCount &+ 1 }
    /// Index of the block updated with atomic adds (producers without rseq).
    @inlinable package var atomicCounterBlock: Int { cpuRingCount }
    /// Bytes of one group of 16 counter slots: one line per block.
    @inlinable package var counterGroupSize: Int { counterBlockCount &* TraceLayout.counterLineSize }
    /// Bytes of the counter area (names and values), rounded up to whole pages.
    @inlinable package var countersSize: Int {
        let values = (TraceLayout.counterSlotCount / TraceLayout.countersPerLine) &* counterGroupSize
        return (TraceLayout.counterNamesSize &+ values &+ TraceLayout.pageSize &- 1) & ~(TraceLayout.pageSize &- 1)
    }
    /// Offset of counter `slot`'s word in `block` (docs/BufferProtocol.md §8).
    @inlinable package func counterOffset(slot: Int, block: Int) -> Int {
        counterValuesOffset &+ (slot / TraceLayout.countersPerLine) &* counterGroupSize
            &+ block &* TraceLayout.counterLineSize &+ (slot % TraceLayout.countersPerLine) &* 8
    }
    /// Offset of counter `slot`'s entry in the name table.
    @inlinable package func counterNameOffset(slot: Int) -> Int {
        countersOffset &+ slot &* TraceLayout.counterNameEntrySize
    }
    @inlinable package var ringsOffset: Int { countersOffset &+ countersSize }
    /// Size in bytes of the whole trace object (header, registry and rings).
    @inlinable public var totalSize: Int { ringsOffset + ringCount * ringStride }
    /// Number of sub-buffers in each ring.
    @inlinable public var subbuffersPerRing: Int { ringSize / subbufferSize }
    /// Largest payload one record can carry: a sub-buffer minus its begin record, the thread
    /// record that precedes the first event of every sub-buffer, and a record header
    /// (`subbufferSize - 64`).
    @inlinable public var maximumPayloadSize: Int {
        subbufferSize - TraceLayout.beginRecordSize - TraceLayout.threadRecordSize - TraceLayout.recordHeaderSize
    }

    /// Validates a geometry; `nil` when a size is not a power of two or out of range.
    package init?(cpuRingCount: Int, ringSize: Int, subbufferSize: Int) {
        guard cpuRingCount >= 1, cpuRingCount <= TraceLayout.maximumCPURingCount,
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
    package static func occupiedSize(length: Int) -> Int {
        (length &+ 7) & ~7
    }

    /// Low 16 bits of the sequence number of the sub-buffer starting at `position`.
    @inlinable package func subbufferTag(of position: UInt64) -> UInt16 {
        UInt16(truncatingIfNeeded: position / UInt64(subbufferSize))
    }

    /// Slot (0..<subbuffersPerRing) of the sub-buffer containing `position`.
    @inlinable package func slot(of position: UInt64) -> Int {
        Int(truncatingIfNeeded: (position / UInt64(subbufferSize)) % UInt64(subbuffersPerRing))
    }

    /// Lap of the ring `position` is in (its low 16 bits, as stored in record words).
    @inlinable package func lap(of position: UInt64) -> UInt16 {
        UInt16(truncatingIfNeeded: position &>> UInt64(ringShift))
    }
}

/// Byte offset of an object header field (all little-endian, naturally aligned).
@frozen
@usableFromInline
package struct HeaderField: RawRepresentable, Hashable, Sendable {
    /// Bytes from the start of the object.
    @usableFromInline package let rawValue: Int
    @inlinable package init(rawValue: Int) { self.rawValue = rawValue }

    /// `UInt64`: `TraceLayout.magic`, stored last at creation (a reader that sees it sees a whole header).
    @inlinable package static var magic: HeaderField { HeaderField(rawValue: 0) }
    /// `UInt32`: `TraceLayout.version`.
    @inlinable package static var version: HeaderField { HeaderField(rawValue: 8) }
    /// `UInt32`: `TraceLayout.headerSize`.
    @inlinable package static var headerSize: HeaderField { HeaderField(rawValue: 12) }
    /// `UInt64`: size of the whole object.
    @inlinable package static var totalSize: HeaderField { HeaderField(rawValue: 16) }
    /// `UInt32`: rings indexed by CPU (or concurrency id).
    @inlinable package static var cpuRingCount: HeaderField { HeaderField(rawValue: 24) }
    /// `UInt32`: `cpuRingCount + 1` (the slow lane).
    @inlinable package static var ringCount: HeaderField { HeaderField(rawValue: 28) }
    /// `UInt64`: control block plus ring data.
    @inlinable package static var ringStride: HeaderField { HeaderField(rawValue: 32) }
    /// `UInt64`: where ring 0 starts.
    @inlinable package static var ringsOffset: HeaderField { HeaderField(rawValue: 40) }
    /// `UInt64`: bytes of data per ring.
    @inlinable package static var ringSize: HeaderField { HeaderField(rawValue: 48) }
    /// `UInt64`: bytes per sub-buffer.
    @inlinable package static var subbufferSize: HeaderField { HeaderField(rawValue: 56) }
    /// `UInt64`: `TraceLayout.controlSize`.
    @inlinable package static var controlSize: HeaderField { HeaderField(rawValue: 64) }
    /// `UInt32`: a `RingProtocol`.
    @inlinable package static var ringProtocol: HeaderField { HeaderField(rawValue: 72) }
    /// `UInt32`: a `BufferMode`.
    @inlinable package static var bufferMode: HeaderField { HeaderField(rawValue: 76) }
    /// `UInt32`: a `RingIndexing`.
    @inlinable package static var indexing: HeaderField { HeaderField(rawValue: 80) }
    /// `UInt32` (atomic): 1 = ready, 2 = finished.
    @inlinable package static var state: HeaderField { HeaderField(rawValue: 84) }
    /// `UInt32`: process id of the creator.
    @inlinable package static var creatorPID: HeaderField { HeaderField(rawValue: 88) }
    /// `UInt32`: effective user id of the creator.
    @inlinable package static var creatorUID: HeaderField { HeaderField(rawValue: 92) }
    /// `UInt64`: cycle counter ticks per second.
    @inlinable package static var cycleFrequency: HeaderField { HeaderField(rawValue: 96) }
    /// `UInt64`: counter value at the reference instant.
    @inlinable package static var cycleReference: HeaderField { HeaderField(rawValue: 104) }
    /// `UInt64`: CLOCK_MONOTONIC ns at the reference instant.
    @inlinable package static var monotonicReference: HeaderField { HeaderField(rawValue: 112) }
    /// `UInt64`: CLOCK_REALTIME ns at the reference instant.
    @inlinable package static var realtimeReference: HeaderField { HeaderField(rawValue: 120) }
    /// 16 bytes: /proc/sys/kernel/random/boot_id.
    @inlinable package static var bootID: HeaderField { HeaderField(rawValue: 128) }
    /// 16 bytes, NUL-padded: "tsc", "cntvct".
    @inlinable package static var clockSource: HeaderField { HeaderField(rawValue: 144) }
    /// `UInt64` (atomic): processes that attached as producers.
    @inlinable package static var attachedProducers: HeaderField { HeaderField(rawValue: 160) }
    /// `UInt64` (atomic): bytes of registry entries published.
    @inlinable package static var registryUsed: HeaderField { HeaderField(rawValue: 168) }
    /// `UInt32`: 1 when rings are populated sub-buffer by sub-buffer as producers open them, 0
    /// when everything was populated at creation (kernels without `MADV_POPULATE_WRITE`).
    @inlinable package static var lazyPopulation: HeaderField { HeaderField(rawValue: 176) }
    /// `UInt32` (atomic): set to 1 by a producer that could not populate a sub-buffer (shared
    /// memory exhausted) and dropped its record; readers report it.
    @inlinable package static var memoryExhausted: HeaderField { HeaderField(rawValue: 180) }
    /// 64 bytes: process-shared robust mutex of the registry.
    @inlinable package static var registryMutex: HeaderField { HeaderField(rawValue: 192) }
    /// `UInt32` (atomic): counter slots registered (names published), at most
    /// `TraceLayout.counterSlotCount`; stored with release after the name (docs/BufferProtocol.md §8).
    @inlinable package static var counterCount: HeaderField { HeaderField(rawValue: 256) }
}

/// Byte offset of a ring's shared word: below ``ControlField/lineLimit``, in the ring's entry of
/// the lines table (always populated); from it on, in the ring's control block (populated with the
/// ring's first sub-buffer).
@frozen
@usableFromInline
package struct ControlField: RawRepresentable, Hashable, Sendable {
    /// Bytes from the start of the ring's line entry (below `lineLimit`) or control block.
    @usableFromInline package let rawValue: Int
    @inlinable package init(rawValue: Int) { self.rawValue = rawValue }

    /// Producer line. `head` is written only by an rseq sequence on the ring's CPU (rseq rings) or by
    /// a compare-and-swap of the pair {`head`, `reservedStamp`} (lock-free rings); everything else
    /// reads it with acquiring ordering. 16-aligned: it is the low half of that pair.
    @inlinable package static var head: ControlField { ControlField(rawValue: 0) }
    /// Lock-free rings: the timestamp of the latest reservation, the high half of the pair that
    /// reservations swap (timestamps are non-decreasing in ring order because of it).
    @inlinable package static var reservedStamp: ControlField { ControlField(rawValue: 8) }
    /// Records refused because the ring was full (discard) or the sub-buffer to open still held a
    /// record being written. rseq rings: rseq sequences on the ring's CPU; lock-free rings: atomic adds.
    @inlinable package static var dropped: ControlField { ControlField(rawValue: 16) }
    /// Records refused because they could never fit a sub-buffer. Same writers as `dropped`.
    @inlinable package static var tooLarge: ControlField { ControlField(rawValue: 24) }
    /// The thread that reserved the ring's latest record, `mark << 32 |
    /// UInt32(truncating: end >> 3)` with the writer's thread mark and the position right after
    /// that record. Written with plain (relaxed) stores by producers after each successful
    /// reservation, in both protocols (`RingWriter.writerTag`); a producer whose own tag for the current head equals it
    /// writes no thread record (docs/BufferProtocol.md §2.1). Any value is safe: a wrong one
    /// costs a redundant thread record (or, written by another process on purpose, a wrong
    /// attribution), never a malformed ring.
    @inlinable package static var lastWriter: ControlField { ControlField(rawValue: 32) }
    /// Consumer line: position up to which the consumer has taken records. Discard mode: written
    /// by the consumer alone with releasing stores. Overwrite mode, rseq rings: written only by a
    /// sequence running on the ring's CPU, so that recycling and consuming exclude each other;
    /// lock-free rings: the consumer alone (producers never read it in overwrite mode).
    @inlinable package static var consumed: ControlField { ControlField(rawValue: 128) }
    /// Offsets below this are in the lines table, the others in the control block.
    @inlinable package static var lineLimit: Int { TraceLayout.lineStride }
    /// Overwrite mode, rseq rings: one `RecycleMarker` word per sub-buffer slot (`recycleMarkers + 8 * slot`),
    /// written like `head`. Committing a marker declares the slot's previous content dead (and how
    /// many unread records died with it) before anything is written into that content.
    @inlinable package static var recycleMarkers: ControlField { ControlField(rawValue: 512) }
    /// Lock-free rings: one cumulative commit counter per sub-buffer slot (`commitCounters + 8 * slot`):
    /// bytes committed into the slot since creation, added atomically (releasing) by each commit.
    /// Sub-buffer `n` (slot `n % K`) is fully committed when its slot's counter is `(n / K + 1) * P`.
    @inlinable package static var commitCounters: ControlField { ControlField(rawValue: 4096) }
    /// Overwrite mode, lock-free rings: one word per sub-buffer slot written by the consumer alone:
    /// the slot's destroyed-record count it has accounted for (see `BufferProtocol.md` §5.4).
    @inlinable package static var readAccounting: ControlField { ControlField(rawValue: 6144) }

    /// Offset of the commit counter of sub-buffer slot `slot` (lock-free rings).
    @inlinable package static func commitCounter(slot: Int) -> ControlField {
        ControlField(rawValue: commitCounters.rawValue &+ 8 &* slot)
    }

    /// Offset of the consumer's accounting word of sub-buffer slot `slot` (lock-free rings, overwrite mode).
    @inlinable package static func readAccounting(slot: Int) -> ControlField {
        ControlField(rawValue: readAccounting.rawValue &+ 8 &* slot)
    }

    /// Offset of the recycle marker of sub-buffer slot `slot`.
    @inlinable package static func recycleMarker(slot: Int) -> ControlField {
        ControlField(rawValue: recycleMarkers.rawValue &+ 8 &* slot)
    }
}

/// The recycle marker of a sub-buffer slot (overwrite mode):
/// `tag` = low 16 bits of the sequence number (position / subbufferSize) of the sub-buffer whose
/// opening recycled the slot; `lost` = unread records destroyed by that recycling, plus the
/// still-unreported loss of the content it destroyed (saturating at 2^48 - 1).
@frozen
@usableFromInline
package struct RecycleMarker: Hashable, Sendable {
    @usableFromInline package var rawValue: UInt64
    @inlinable package init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable package init(tag: UInt16, lost: UInt64) {
        rawValue = UInt64(tag) << 48 | min(lost, RecycleMarker.maximumLost)
    }
    @inlinable package static var maximumLost: UInt64 { (1 << 48) - 1 }
    @inlinable package var tag: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 48) }
    @inlinable package var lost: UInt64 { rawValue & RecycleMarker.maximumLost }
}

/// How producers update a ring. Chosen when the object is created; never mixed on one ring.
@frozen
@usableFromInline
package enum RingProtocol: UInt32, Sendable {
    /// Restartable sequences on the ring's CPU (the slow lane is lock-free).
    case rseq = 1
    /// Compare-and-swap reservations and per-sub-buffer commit counters, on every ring.
    case lockFree = 3
}

/// What happens when a ring is full.
@frozen
public enum BufferMode: UInt32, Sendable, CustomStringConvertible {
    /// New records are dropped and counted.
    case discard = 0
    /// The oldest sub-buffer is recycled; the number of records it held is carried in the next
    /// sub-buffer's begin record (flight recorder).
    case overwrite = 1

    /// `discard` or `overwrite`.
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

    /// `cpu_id` or `mm_cid`.
    public var description: String { self == .cpuID ? "cpu_id" : "mm_cid" }
}
