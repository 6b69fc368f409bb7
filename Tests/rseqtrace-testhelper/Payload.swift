import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer
import RseqTraceTestPayloads

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

    mutating func check(_ record: borrowing DrainedRecord) {
        if record.ring == slowLaneRing { slowLane += 1 }
        if record.timestamp < lastStamp[record.ring] {
            regressions += 1
            note("ring \(record.ring) position \(record.position): timestamp \(record.timestamp) < previous \(lastStamp[record.ring])")
        }
        lastStamp[record.ring] = max(lastStamp[record.ring], record.timestamp)
        guard let id = Payloads.verifiedID(record) else {
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

}
