// The one verifier of drained test records (format: CRseqTraceTestSupport.h), used by the test
// suite, rseqtrace-testhelper and rseqtrace-stress.
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer

/// What the payload check reads: a record's event id, payload size and payload bytes.
public protocol PayloadSource: ~Copyable {
    /// The event id the record carries.
    var eventID: UInt16 { get }
    /// Its payload size in bytes.
    var payloadSize: Int { get }
    /// The little-endian 64-bit word at `offset` (offset + 8 <= payloadSize).
    func word(at offset: Int) -> UInt64
    /// The byte at `offset` (offset < payloadSize).
    func byte(at offset: Int) -> UInt8
}

extension DrainedRecord: PayloadSource {
    public func word(at offset: Int) -> UInt64 { load(fromByteOffset: offset, as: UInt64.self) }
    public func byte(at offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
}

/// A copy of a payload (the verifier's own tampered input, see `RecordVerifier.Tamper`).
public struct CopiedPayload: PayloadSource {
    public var eventID: UInt16
    public var bytes: [UInt8]
    public var payloadSize: Int { bytes.count }

    public init(eventID: UInt16, bytes: [UInt8]) {
        self.eventID = eventID
        self.bytes = bytes
    }

    public func word(at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for j in 0..<8 { value |= UInt64(bytes[offset + j]) << UInt64(8 * j) }
        return value
    }

    public func byte(at offset: Int) -> UInt8 { bytes[offset] }
}

/// Verifying drained test payloads.
public enum Payloads {
    /// The id of an intact record, or nil when its size, event id or any payload byte is wrong.
    public static func verifiedID<Source: PayloadSource & ~Copyable>(_ record: borrowing Source) -> UInt64? {
        guard let id = namedID(record), firstDifference(record, id: id) == nil else { return nil }
        return id
    }

    /// For a damaged record whose id word still names its size and event id: the offset of its
    /// first byte that differs from the payload of that id (nil when intact or when it does not).
    public static func firstWrongByte<Source: PayloadSource & ~Copyable>(_ record: borrowing Source) -> Int? {
        guard let id = namedID(record) else { return nil }
        return firstDifference(record, id: id)
    }

    /// The id in the record's first word, when the record has the size and event id it names.
    private static func namedID<Source: PayloadSource & ~Copyable>(_ record: borrowing Source) -> UInt64? {
        guard record.payloadSize >= 16 else { return nil }
        let id = record.word(at: 0)
        guard record.payloadSize == Int(rtts_payload_size(id)), record.eventID == rtts_payload_event(id) else { return nil }
        return id
    }

    /// The offset of the first payload byte that differs from the payload of `id`, or nil.
    private static func firstDifference<Source: PayloadSource & ~Copyable>(_ record: borrowing Source, id: UInt64) -> Int? {
        let size = record.payloadSize
        let size32 = UInt32(size)
        let full = size / 8
        for k in 0..<full {
            let difference = record.word(at: k * 8) ^ rtts_payload_word(id, size32, UInt32(k))
            // Little-endian words: the lowest differing byte comes first.
            if difference != 0 { return k * 8 + difference.trailingZeroBitCount / 8 }
        }
        if size % 8 != 0 {
            let last = rtts_payload_word(id, size32, UInt32(full))
            for j in 0..<(size % 8) where record.byte(at: full * 8 + j) != UInt8(truncatingIfNeeded: last >> UInt64(8 * j)) {
                return full * 8 + j
            }
        }
        return nil
    }
}

/// Checks every drained record: its payload is intact (every byte is a function of its id, so a
/// torn, stale or shifted copy is caught even when the drainer saw nothing wrong), its
/// (thread, sequence) was not delivered before, timestamps never go back within a ring, and every
/// record of a payload thread names the same writer (pid, tid) — the one OS thread that writes
/// that payload thread's records.
public struct RecordVerifier {
    /// A deliberate fault injected into the verifier's own input, to show that the checks fire.
    public enum Tamper: String, Sendable, CaseIterable {
        /// One payload byte of a record is flipped before it is checked.
        case payload
        /// A record's timestamp is presented as earlier than its predecessor's in the ring.
        case timestamp
        /// A record is checked twice, as if it had been delivered again.
        case duplicate
    }

    /// Thread ids (the high part of a payload id) the verifier accepts: 0..<maximumThread.
    public static let maximumThread: UInt32 = 1 << 20

    public let slowLaneRing: Int
    /// Per thread: one bit per sequence number seen.
    private var seen: [[UInt64]] = []
    /// Per thread: intact records.
    private var intactByThread: [UInt64] = []
    private var lastStamp: [UInt64]
    /// Records checked so far.
    public private(set) var checked: UInt64 = 0
    /// Records whose payload, event id and (thread, sequence) were right, each counted once.
    public private(set) var intact: UInt64 = 0
    /// Records with any wrong byte, size or event id, or an id outside the accepted threads.
    public private(set) var damaged: UInt64 = 0
    /// Records delivered again.
    public private(set) var duplicates: UInt64 = 0
    /// Records older than their predecessor in the same ring.
    public private(set) var regressions: UInt64 = 0
    /// Records that came through the slow lane.
    public private(set) var slowLane: UInt64 = 0
    /// Intact records whose writer (pid, tid) differs from that of the first record of their
    /// payload thread.
    public private(set) var misattributed: UInt64 = 0
    /// Payload threads whose records several OS threads write (a signal handler's), exempt from
    /// the writer check.
    public var sharedPayloadThreads: Set<UInt32> = []
    /// Per payload thread: the writer (pid << 32 | tid) of its first record, 0 before it.
    private var writers: [UInt64] = []
    /// The first problems found, for reports.
    public private(set) var problems: [String] = []
    /// Applied once, to the first record from `tamperAt` on that it can change (a timestamp is
    /// moved back only on a record with a predecessor in its ring).
    public var tamper: Tamper?
    /// The first record (0-based, in checking order) the tamper may apply to.
    public var tamperAt: UInt64 = 100
    private var tamperApplied = false

    /// A verifier for a buffer of `layout`, with room reserved for `threads` x `events` ids (it
    /// grows for others).
    public init(layout: TraceLayout, threads: Int = 0, events: Int = 0) {
        slowLaneRing = layout.slowLaneRing
        lastStamp = [UInt64](repeating: 0, count: layout.ringCount)
        if threads > 0 {
            seen = [[UInt64]](repeating: [UInt64](repeating: 0, count: (events + 63) / 64), count: threads)
            intactByThread = [UInt64](repeating: 0, count: threads)
        }
    }

    /// Whether no record was damaged, duplicated or out of order.
    public var isClean: Bool { damaged == 0 && duplicates == 0 && regressions == 0 && misattributed == 0 }

    /// `damaged=… duplicates=… regressions=… misattributed=…`, plus the first problem.
    public var summary: String {
        "intact=\(intact) damaged=\(damaged) duplicates=\(duplicates) regressions=\(regressions) misattributed=\(misattributed)"
            + (problems.first.map { " first: \($0)" } ?? "")
    }

    private mutating func note(_ problem: String) {
        if problems.count < 10 { problems.append(problem) }
    }

    /// Checks one drained record.
    public mutating func check(_ record: borrowing DrainedRecord) {
        let ring = record.ring
        var timestamp = record.timestamp
        let tampering = tamper != nil && !tamperApplied && checked >= tamperAt
            && (tamper != .timestamp || lastStamp[ring] > 0)
        if tampering { tamperApplied = true }
        checked += 1
        if ring == slowLaneRing { slowLane += 1 }
        if tampering && tamper == .timestamp && lastStamp[ring] > 0 { timestamp = lastStamp[ring] - 1 }
        if timestamp < lastStamp[ring] {
            regressions += 1
            note("ring \(ring) position \(record.position): timestamp \(timestamp) < previous \(lastStamp[ring])")
        }
        lastStamp[ring] = max(lastStamp[ring], timestamp)
        // The payload checked: the record's own, or a tampered copy of it.
        var tampered: CopiedPayload?
        if tampering && tamper == .payload {
            var copy = CopiedPayload(eventID: record.eventID, bytes: record.bytes)
            copy.bytes[copy.bytes.count / 2] ^= 0x10
            tampered = copy
        }
        let verified = if let tampered { Payloads.verifiedID(tampered) } else { Payloads.verifiedID(record) }
        guard let id = verified else {
            damaged += 1
            let wrongByte = if let tampered { Payloads.firstWrongByte(tampered) } else { Payloads.firstWrongByte(record) }
            let wrong = wrongByte.map { ", first wrong byte at offset \($0)" } ?? ""
            note("ring \(ring) position \(record.position): damaged record (event \(record.eventID), \(record.payloadSize) bytes\(wrong))")
            return
        }
        let thread = rtts_payload_thread(id)
        let sequence = Int(rtts_payload_sequence(id))
        guard thread < Self.maximumThread else {
            damaged += 1
            note("ring \(ring) position \(record.position): thread \(thread) out of range")
            return
        }
        let t = Int(thread)
        if t >= seen.count {
            seen.append(contentsOf: repeatElement([], count: t + 1 - seen.count))
            intactByThread.append(contentsOf: repeatElement(0, count: t + 1 - intactByThread.count))
        }
        if t >= writers.count { writers.append(contentsOf: repeatElement(0, count: t + 1 - writers.count)) }
        let writer = UInt64(UInt32(bitPattern: record.processID)) << 32 | UInt64(UInt32(bitPattern: record.threadID))
        if record.processID <= 0 || record.threadID <= 0 {
            misattributed += 1
            note("ring \(ring) position \(record.position): no writer (pid \(record.processID) tid \(record.threadID))")
        } else if !sharedPayloadThreads.contains(thread) {
            if writers[t] == 0 {
                writers[t] = writer
            } else if writers[t] != writer {
                misattributed += 1
                note("""
                    ring \(ring) position \(record.position): thread \(thread) sequence \(sequence) written by pid \(record.processID) \
                    tid \(record.threadID), its earlier records by pid \(writers[t] >> 32) tid \(writers[t] & 0xFFFF_FFFF)
                    """)
            }
        }
        let word = sequence / 64
        if word >= seen[t].count {
            seen[t].append(contentsOf: repeatElement(0, count: max(word + 1, seen[t].count * 2) - seen[t].count))
        }
        let bit: UInt64 = 1 << UInt64(sequence % 64)
        for _ in 0..<(tampering && tamper == .duplicate ? 2 : 1) {
            if seen[t][word] & bit != 0 {
                duplicates += 1
                note("ring \(ring) position \(record.position): duplicate thread \(thread) sequence \(sequence)")
            } else {
                seen[t][word] |= bit
                intactByThread[t] += 1
                intact += 1
            }
        }
    }

    /// Intact records written with thread ids in `threads`.
    public func intactCount(threads: Range<Int>) -> UInt64 {
        threads.clamped(to: 0..<intactByThread.count).reduce(0) { $0 + intactByThread[$1] }
    }
}

extension RecordVerifier {
    /// Marks `buffer` finished and, unless an earlier drain failed (`drainError` is set), drains it
    /// through `drainer` one last, quiescent time, checking every record: on success adds the round
    /// to `rounds`, on failure keeps the error in `drainError`.
    package mutating func drainFinished(_ buffer: SharedTraceBuffer, _ drainer: TraceDrainer,
                                        rounds: inout Int, drainError: inout TraceError?) {
        buffer.markFinished()
        guard drainError == nil else { return }
        do {
            try drainer.drainOnce(quiescent: true) { check($0) }
            rounds += 1
        } catch {
            drainError = error
        }
    }
}
