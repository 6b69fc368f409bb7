import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer

/// The 24-byte payload of every third record, written as one value (`write(eventID:value:)`).
struct FixedPayload: BitwiseCopyable {
    var id: UInt64
    var check: UInt64
    var filler: UInt64
}

/// Writes the test payloads (format: CRseqTraceTestSupport.h), rotating through the three
/// producer APIs: copy-commit of a byte span, reserve/store/commit, copy-commit of a value.
struct PayloadWriter {
    private var words = [UInt64](repeating: 0, count: 16)

    /// Emits one record for (thread, sequence). Returns whether it was stored (false: dropped
    /// and counted by the library).
    mutating func emit(_ producer: Producer, thread: UInt32, sequence: UInt64) -> Bool {
        let id = rtts_payload_id(thread, sequence)
        let size = Int(rtts_payload_size(id))
        let event = rtts_payload_event(id)
        let size32 = UInt32(size)
        switch sequence % 3 {
        case 0:
            for k in 0..<((size + 7) / 8) { words[k] = rtts_payload_word(id, size32, UInt32(k)) }
            // SAFETY: UInt64 has no padding bytes, so viewing the words as raw bytes is sound;
            // the span is used only for the duration of the call.
            return unsafe producer.write(eventID: event, bytes: words.span.bytes.extracting(first: size))
        case 1:
            guard let reservation = producer.reserve(eventID: event, payloadSize: size) else { return false }
            let full = size / 8
            for k in 0..<full {
                reservation.store(rtts_payload_word(id, size32, UInt32(k)), at: k * 8)
            }
            if size % 8 != 0 {
                let last = rtts_payload_word(id, size32, UInt32(full))
                for j in 0..<(size % 8) {
                    reservation.store(UInt8(truncatingIfNeeded: last >> UInt64(8 * j)), at: full * 8 + j)
                }
            }
            if sequence & 1 == 0 {
                producer.commit(reservation)
            } else {
                reservation.commit()
            }
            return true
        default:
            precondition(size == MemoryLayout<FixedPayload>.size)
            let value = FixedPayload(id: id, check: rtts_payload_word(id, size32, 1),
                                     filler: rtts_payload_word(id, size32, 2))
            return producer.write(eventID: event, value: value)
        }
    }
}

/// Checks drained records: payload integrity, event id, duplicates, per-ring timestamp order.
struct RecordVerifier {
    let threads: Int
    let events: Int
    let slowLaneRing: Int
    private var seen: [Bool]
    private var lastStamp: [UInt64]
    var intact: UInt64 = 0
    var damaged: UInt64 = 0
    var duplicates: UInt64 = 0
    var regressions: UInt64 = 0
    var slowLane: UInt64 = 0
    /// First few problems, for the report on standard error.
    var problems: [String] = []

    init(threads: Int, events: Int, layout: TraceLayout) {
        self.threads = threads
        self.events = events
        self.slowLaneRing = layout.slowLaneRing
        seen = [Bool](repeating: false, count: threads * events)
        lastStamp = [UInt64](repeating: 0, count: layout.ringCount)
    }

    private mutating func note(_ problem: String) {
        if problems.count < 10 { problems.append(problem) }
    }

    mutating func check(_ record: DrainedRecord) {
        if record.ring == slowLaneRing { slowLane += 1 }
        if record.timestamp < lastStamp[record.ring] {
            regressions += 1
            note("ring \(record.ring) position \(record.position): timestamp \(record.timestamp) < previous \(lastStamp[record.ring])")
        }
        lastStamp[record.ring] = max(lastStamp[record.ring], record.timestamp)
        guard let id = RecordVerifier.verifiedID(record) else {
            damaged += 1
            note("ring \(record.ring) position \(record.position): damaged record (event \(record.eventID), \(record.payloadSize) bytes)")
            return
        }
        let thread = Int(rtts_payload_thread(id))
        let sequence = Int(rtts_payload_sequence(id))
        guard thread < threads, sequence < events else {
            damaged += 1
            note("ring \(record.ring): id out of range (thread \(thread), sequence \(sequence))")
            return
        }
        let slot = thread * events + sequence
        if seen[slot] {
            duplicates += 1
            note("ring \(record.ring) position \(record.position): duplicate thread \(thread) sequence \(sequence)")
        } else {
            seen[slot] = true
            intact += 1
        }
    }

    /// The id of an intact record, or nil when any byte of it is wrong.
    static func verifiedID(_ record: DrainedRecord) -> UInt64? {
        guard record.payloadSize >= 16 else { return nil }
        let id = record.load(fromByteOffset: 0, as: UInt64.self)
        let size = Int(rtts_payload_size(id))
        guard record.payloadSize == size, record.eventID == rtts_payload_event(id) else { return nil }
        let size32 = UInt32(size)
        let full = size / 8
        for k in 0..<full where record.load(fromByteOffset: k * 8, as: UInt64.self) != rtts_payload_word(id, size32, UInt32(k)) {
            return nil
        }
        if size % 8 != 0 {
            let last = rtts_payload_word(id, size32, UInt32(full))
            for j in 0..<(size % 8)
            where record.load(fromByteOffset: full * 8 + j, as: UInt8.self) != UInt8(truncatingIfNeeded: last >> UInt64(8 * j)) {
                return nil
            }
        }
        return id
    }
}
