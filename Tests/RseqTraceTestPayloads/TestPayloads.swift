// Test payloads shared by the test suite and rseqtrace-testhelper (format: CRseqTraceTestSupport.h):
// how records are written through every producer API, and how a drained one is verified.
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer

/// The 24-byte payload of every third record, written as one value (`write(eventID:value:)`).
public struct FixedPayload: BitwiseCopyable {
    public var id: UInt64
    public var check: UInt64
    public var filler: UInt64
}

/// Writes the test payloads (format: CRseqTraceTestSupport.h), rotating through the three
/// producer APIs: copy-commit of a byte span, reserve/store/commit, copy-commit of a value.
public struct PayloadWriter {
    private var words = [UInt64](repeating: 0, count: 16)

    public init() {}

    /// Emits one record for (thread, sequence). Returns whether it was stored (false: dropped
    /// and counted by the library).
    public mutating func emit(_ producer: Producer, thread: UInt32, sequence: UInt64) -> Bool {
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

    /// Emits one record for (thread, sequence) without the writer's scratch words, so that it can
    /// run in a signal handler interrupting any thread (reserve/store/commit, or a value copy for
    /// the fixed-size records). Returns whether it was stored.
    public static func emitWithoutScratch(_ producer: Producer, thread: UInt32, sequence: UInt64) -> Bool {
        let id = rtts_payload_id(thread, sequence)
        let size = Int(rtts_payload_size(id))
        let event = rtts_payload_event(id)
        let size32 = UInt32(size)
        if sequence % 3 == 2 {
            let value = FixedPayload(id: id, check: rtts_payload_word(id, size32, 1),
                                     filler: rtts_payload_word(id, size32, 2))
            return producer.write(eventID: event, value: value)
        }
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
        reservation.commit()
        return true
    }
}

