import Testing
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CRseqTrace
@testable import RseqTrace
import RseqTraceConsumer

// MARK: - Fixtures shared by the unit suites (RoundTrip, SharedObject, CPUPinner)

/// A record copied out of a drain callback.
struct UnitDrainedRecord: Equatable {
    var ring: Int
    var eventID: UInt16
    var timestamp: UInt64
    var position: UInt64
    var bytes: [UInt8]
    /// The writer's pid and tid, from the thread record before the record.
    var processID: Int32 = 0
    var threadID: Int32 = 0

    /// The little-endian UInt64 at the start of the payload (the tests' sequence numbers).
    var sequence: UInt64 { UnitTrace.sequence(of: bytes) }
}

enum UnitTrace {
    private static let counter = Atomic<Int>(0)

    /// A /dev/shm name unique to this process and call.
    static func name(_ tag: String) -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return "rseqtrace-unit-\(getpid())-\(n)-\(tag)"
    }

    /// Deterministic payload bytes for record `seed`.
    static func pattern(_ seed: Int, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: seed &* 131 &+ $0 &* 7 &+ ($0 >> 8) &+ 1) }
    }

    static func littleEndian(_ value: UInt64, count: Int = 8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    static func sequence(of bytes: [UInt8]) -> UInt64 {
        var value: UInt64 = 0
        for (i, b) in bytes.prefix(8).enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
        return value
    }

    /// Runs `body` with the calling thread pinned to `cpu` (no real-time priority), so that every
    /// rseq record it writes goes to that CPU's ring.
    static func onCPU<R>(_ cpu: Int, _ body: () throws(TraceError) -> R) throws -> R {
        do {
            return try CPUPinner.run(onCPU: cpu, realtime: false, body)
        } catch {
            switch error {
            case .pin(let pinError): throw pinError
            case .body(let traceError): throw traceError
            }
        }
    }

    /// Whether /dev/shm/NAME exists (without following a symlink).
    static func exists(_ path: String) -> Bool {
        var info = stat()
        // SAFETY: `path` is converted to a NUL-terminated C string for the call; `info` is a local.
        return unsafe lstat(path, &info) == 0
    }

    static func remove(_ path: String) {
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        _ = unsafe unlink(path)
    }
}

/// A fresh trace object with its producer and drainer. Keeping the fixture alive keeps the mapping
/// alive, which `Producer` and `RingView` values borrow.
final class UnitTraceFixture {
    let buffer: SharedTraceBuffer
    let producer: Producer
    let drainer: TraceDrainer
    var layout: TraceLayout { buffer.layout }
    var path: String { SharedTraceBuffer.path(forName: buffer.name) }

    init(_ tag: String, ringSize: Int = 8192, subbufferSize: Int = 1024, mode: BufferMode = .discard,
         indexing: RingIndexing = .cpuID, cpuRingCount: Int? = nil) throws(TraceError) {
        buffer = try SharedTraceBuffer.create(TraceConfiguration(
            name: UnitTrace.name(tag), ringSize: ringSize, subbufferSize: subbufferSize, mode: mode,
            indexing: indexing, cpuRingCount: cpuRingCount, removeWhenClosed: true))
        producer = buffer.makeProducer()
        drainer = TraceDrainer(buffer: buffer)
    }

    /// One drain round; the records it delivered, in delivery order.
    func drain(quiescent: Bool) throws(TraceError) -> [UnitDrainedRecord] {
        var records: [UnitDrainedRecord] = []
        try drainer.drainOnce(quiescent: quiescent) { record in
            records.append(UnitDrainedRecord(ring: record.ring, eventID: record.eventID, timestamp: record.timestamp,
                                             position: record.position, bytes: record.bytes,
                                             processID: record.processID, threadID: record.threadID))
        }
        return records
    }

    /// Sum of a control word over every ring (counters may be attributed to any CPU's ring).
    func counterSum(_ field: ControlField) -> UInt64 {
        let buffer = self.buffer   // ring views borrow a local reference
        return (0..<layout.ringCount).reduce(0) { $0 + buffer.ring($1).load(field, ordering: .relaxed) }
    }

    func head(_ ring: Int) -> UInt64 {
        let buffer = self.buffer
        return buffer.ring(ring).load(ControlField.head, ordering: .acquiring)
    }
    func consumed(_ ring: Int) -> UInt64 {
        let buffer = self.buffer
        return buffer.ring(ring).load(ControlField.consumed, ordering: .acquiring)
    }

    /// Records per sub-buffer when every record has `payloadSize` bytes of payload and one thread
    /// writes them (its thread record follows the begin record).
    func recordsPerSubbuffer(payloadSize: Int) -> Int {
        (layout.subbufferSize - TraceLayout.beginRecordSize - TraceLayout.threadRecordSize)
            / TraceLayout.recordSize(payloadSize: payloadSize)
    }
}

/// The ways of writing a byte payload.
enum UnitWriteAPI: CaseIterable, CustomStringConvertible {
    case bytesSpan          // write(eventID:bytes:) with a RawSpan
    case rawBuffer          // write(eventID:payload:) with an UnsafeRawBufferPointer
    case reserveStore       // reserve, Reservation.store byte by byte, Producer.commit
    case reservePayload     // reserve, withUnsafeMutablePayload, Reservation.commit
    case elementSpan        // write(eventID:bytes:) with a Span<UInt8> (no `unsafe` needed)

    /// Whether the API writes the whole record in one copy-commit sequence when the record fits
    /// the open sub-buffer (on the rseq paths); otherwise it reserves, copies and commits.
    var isCopyCommit: Bool { self == .bytesSpan || self == .rawBuffer || self == .elementSpan }

    var description: String {
        switch self {
        case .bytesSpan: "write(bytes: RawSpan)"
        case .rawBuffer: "write(payload:)"
        case .reserveStore: "reserve+store+commit"
        case .reservePayload: "reserve+withUnsafeMutablePayload+commit"
        case .elementSpan: "write(bytes: Span<UInt8>)"
        }
    }

    func write(_ producer: Producer, eventID: UInt16, _ bytes: [UInt8]) -> Bool {
        switch self {
        case .bytesSpan:
            // SAFETY: `Span.bytes` is unsafe only for element types with padding; UInt8 has none, so
            // every byte the RawSpan exposes is initialised.
            return unsafe producer.write(eventID: eventID, bytes: bytes.span.bytes)
        case .rawBuffer:
            // SAFETY: the array's storage is readable for the duration of the closure, which does not
            // let the buffer escape.
            return unsafe bytes.withUnsafeBytes { unsafe producer.write(eventID: eventID, payload: $0) }
        case .reserveStore:
            guard let reservation = producer.reserve(eventID: eventID, payloadSize: bytes.count) else { return false }
            #expect(reservation.payloadSize == bytes.count)
            for (offset, byte) in bytes.enumerated() { reservation.store(byte, at: offset) }
            producer.commit(reservation)
            return true
        case .reservePayload:
            guard let reservation = producer.reserve(eventID: eventID, payloadSize: bytes.count) else { return false }
            // SAFETY: the closure only copies into the payload buffer and does not let it escape.
            unsafe reservation.withUnsafeMutablePayload { payload in
                #expect(payload.count == bytes.count)
                // SAFETY: `payload` is the reserved record's payload, exactly bytes.count bytes long; it
                // does not escape the closure.
                unsafe payload.copyBytes(from: bytes)
            }
            reservation.commit()
            return true
        case .elementSpan:
            return producer.write(eventID: eventID, bytes: bytes.span)
        }
    }
}

/// True when a reservation was refused (nil). A granted one is dropped here and becomes padding.
func unitIsRefused(_ reservation: consuming Reservation?) -> Bool {
    switch consume reservation {
    case .none: return true
    case .some: return false
    }
}

/// A BitwiseCopyable payload with a known byte image.
struct UnitTriple: BitwiseCopyable, Equatable {
    var a: UInt64
    var b: UInt64
    var c: UInt64
}

/// Checks a list of drained records against expectations: unique ids, exactly the written bytes
/// (the record word stores the exact length, so a reader never sees the alignment bytes after a
/// payload), per-ring order of positions, ids and timestamps, and a writer in this process.
/// Returns every mismatch (empty when fine).
func unitCheckRoundTrip(_ records: [UnitDrainedRecord], expected: [UInt16: [UInt8]]) -> [String] {
    var problems: [String] = []
    var seen = Set<UInt16>()
    var last: [Int: UnitDrainedRecord] = [:]
    for record in records {
        if !seen.insert(record.eventID).inserted { problems.append("event \(record.eventID) delivered twice") }
        if let bytes = expected[record.eventID] {
            if record.bytes.count != bytes.count {
                problems.append("event \(record.eventID): \(record.bytes.count) payload bytes for \(bytes.count) written")
            } else if record.bytes != bytes {
                problems.append("event \(record.eventID): the \(bytes.count) bytes differ from those written")
            }
        } else {
            problems.append("unexpected event \(record.eventID)")
        }
        if record.processID != getpid() || record.threadID <= 0 {
            problems.append("event \(record.eventID): writer pid \(record.processID) tid \(record.threadID), this process is \(getpid())")
        }
        if let previous = last[record.ring] {
            if record.position <= previous.position {
                problems.append("ring \(record.ring): position \(record.position) after \(previous.position)")
            }
            if record.eventID <= previous.eventID {
                problems.append("ring \(record.ring): event \(record.eventID) delivered after \(previous.eventID)")
            }
            if record.timestamp < previous.timestamp {
                problems.append("ring \(record.ring): timestamp regression at event \(record.eventID)")
            }
        }
        last[record.ring] = record
    }
    for id in expected.keys where !seen.contains(id) { problems.append("event \(id) never delivered") }
    return problems
}

// MARK: - Round trips

@Suite("RoundTrip: producer APIs to drainer, in this process")
struct RoundTripUnitTests {
    @Test("every payload size 0...maximumPayloadSize round-trips through every write API while the ring wraps many times")
    func everySizeEveryAPIAcrossWraps() throws {
        let fixture = try UnitTraceFixture("sizes")
        let maximum = fixture.layout.maximumPayloadSize
        #expect(maximum == 960)
        var expected: [UInt16: [UInt8]] = [:]
        var drained: [UnitDrainedRecord] = []
        var refused: [String] = []
        var sequence = 0
        for size in 0...maximum {
            for api in UnitWriteAPI.allCases {
                let id = UInt16(sequence)
                let bytes = UnitTrace.pattern(sequence, count: size)
                expected[id] = bytes
                if !api.write(fixture.producer, eventID: id, bytes) { refused.append("\(api) size \(size)") }
                sequence += 1
                // Drain (non-quiescent, discard mode) often enough that no ring can fill: between two
                // drains at most 4 sub-buffers are opened, and a ring has 8.
                if sequence % 4 == 0 { drained += try fixture.drain(quiescent: false) }
            }
        }
        drained += try fixture.drain(quiescent: true)
        #expect(refused.isEmpty, "refused: \(refused.prefix(5))")
        #expect(sequence == UnitWriteAPI.allCases.count * 961)
        #expect(drained.count == sequence)
        let problems = unitCheckRoundTrip(drained, expected: expected)
        #expect(problems.isEmpty, "\(problems.count) problems, first: \(problems.prefix(5))")

        let totals = fixture.drainer.totals
        #expect(totals.recorded == UInt64(sequence))
        #expect(totals.dropped == 0)
        #expect(totals.tooLarge == 0)
        #expect(totals.overwritten == 0)
        // The ring end was crossed many times: about 2 MB went through 8 KiB rings.
        let heads = (0..<fixture.layout.ringCount).map { fixture.head($0) }
        #expect(heads.reduce(0, +) >= 100 * UInt64(fixture.layout.ringSize), "heads \(heads)")
        for ring in 0..<fixture.layout.ringCount {
            #expect(fixture.consumed(ring) == heads[ring], "ring \(ring) fully consumed")
        }
    }

    @Test("write(eventID:value:) stores exactly the value's bytes")
    func valueWritesStoreTheValueBytes() throws {
        let fixture = try UnitTraceFixture("values")
        let mapped = fixture.buffer   // ring views borrow a local reference
        let p = fixture.producer
        var expected: [UInt16: [UInt8]] = [:]
        #expect(p.write(eventID: 1, value: UInt8(0xAB)))
        expected[1] = [0xAB]
        #expect(p.write(eventID: 2, value: UInt16(0xBEEF)))
        expected[2] = [0xEF, 0xBE]
        #expect(p.write(eventID: 3, value: UInt32(0xDEAD_BEEF)))
        expected[3] = [0xEF, 0xBE, 0xAD, 0xDE]
        #expect(p.write(eventID: 4, value: UInt64(0x0102_0304_0506_0708)))
        expected[4] = [8, 7, 6, 5, 4, 3, 2, 1]
        #expect(p.write(eventID: 5, value: Int32(-2)))
        expected[5] = [0xFE, 0xFF, 0xFF, 0xFF]
        #expect(p.write(eventID: 6, value: (UInt8(1), UInt8(2), UInt8(3))))
        expected[6] = [1, 2, 3]
        let triple = UnitTriple(a: 0x1111_2222_3333_4444, b: UInt64.max, c: 0)
        #expect(p.write(eventID: 7, value: triple))
        expected[7] = UnitTrace.littleEndian(triple.a) + UnitTrace.littleEndian(triple.b) + UnitTrace.littleEndian(triple.c)
        #expect(p.write(eventID: 8, value: UInt64(0xFFFF_FFFF_FFFF_FFFF)))
        expected[8] = [UInt8](repeating: 0xFF, count: 8)

        let drained = try fixture.drain(quiescent: true)
        #expect(drained.count == 8)
        let problems = unitCheckRoundTrip(drained, expected: expected)
        #expect(problems.isEmpty, "\(problems)")
        // Exactly MemoryLayout<T>.size bytes each, never rounded up to 8 (sorted by id: an unpinned
        // thread may have written on more than one ring).
        let byID = drained.sorted { $0.eventID < $1.eventID }
        #expect(byID.map(\.eventID) == Array(1...8))
        #expect(byID.map(\.bytes.count) == [
            MemoryLayout<UInt8>.size, MemoryLayout<UInt16>.size, MemoryLayout<UInt32>.size, MemoryLayout<UInt64>.size,
            MemoryLayout<Int32>.size, MemoryLayout<(UInt8, UInt8, UInt8)>.size, MemoryLayout<UnitTriple>.size,
            MemoryLayout<UInt64>.size,
        ])
        #expect(byID.map(\.bytes.count) == [1, 2, 4, 8, 4, 3, 24, 8])
        // The record words carry the exact length (header + payload); each record still occupies
        // its length rounded up to 8 in the ring.
        for record in drained {
            let word = RecordWord(rawValue: mapped.ring(record.ring).loadWord(at: record.position, ordering: .acquiring))
            #expect(word.length == TraceLayout.recordHeaderSize + record.bytes.count, "event \(record.eventID)")
            #expect(word.size == TraceLayout.recordSize(payloadSize: record.bytes.count), "event \(record.eventID)")
        }
    }

    @Test("DrainedRecord.load reads values at any offset of the payload")
    func drainedRecordLoad() throws {
        let fixture = try UnitTraceFixture("load")
        #expect(fixture.producer.write(eventID: 42, value: UnitTriple(a: 1, b: 0xAABB_CCDD_EEFF_0011, c: 3)))
        var loaded: [UInt64] = []
        var unaligned: UInt32 = 0
        try fixture.drainer.drainOnce(quiescent: true) { record in
            loaded = [record.load(fromByteOffset: 0, as: UInt64.self), record.load(fromByteOffset: 8, as: UInt64.self),
                      record.load(fromByteOffset: 16, as: UInt64.self)]
            unaligned = record.load(fromByteOffset: 9, as: UInt32.self)
        }
        #expect(loaded == [1, 0xAABB_CCDD_EEFF_0011, 3])
        #expect(unaligned == 0xDDEE_FF00)
    }

    @Test("a quiescent-only round trip returns every record in write order, with exact positions")
    func quiescentRoundTripPinned() throws {
        let fixture = try UnitTraceFixture("quiescent", ringSize: 1 << 16, subbufferSize: 1 << 12)
        let mapped = fixture.buffer   // ring views borrow a local reference
        let sizes = [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 1000, 4032, 3, 0, 4032, 24]
        var expected: [UInt16: [UInt8]] = [:]
        var writes: [(id: UInt16, size: Int)] = []
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            var id: UInt16 = 0
            for round in 0..<3 {
                for (i, size) in sizes.enumerated() {
                    let api = UnitWriteAPI.allCases[(i + round) % UnitWriteAPI.allCases.count]
                    let bytes = UnitTrace.pattern(Int(id), count: size)
                    expected[id] = bytes
                    #expect(api.write(fixture.producer, eventID: id, bytes), "\(api) size \(size)")
                    writes.append((id, size))
                    id += 1
                }
            }
        }
        let drained = try fixture.drain(quiescent: true)
        #expect(drained.map(\.eventID) == writes.map(\.id))
        #expect(Set(drained.map(\.ring)) == [0])
        #expect(unitCheckRoundTrip(drained, expected: expected).isEmpty)
        // Recompute every position from the sub-buffer rules: begin record at each sub-buffer start,
        // then the thread record of its opener (the only writer), records packed after it, a record
        // that does not fit opens the next sub-buffer.
        let p = UInt64(fixture.layout.subbufferSize)
        var head: UInt64 = 0
        var positions: [UInt64] = []
        for w in writes {
            let total = UInt64(TraceLayout.recordSize(payloadSize: w.size))
            if head % p == 0 || head % p + total > p {
                head = (head + p - 1) / p * p + UInt64(TraceLayout.beginRecordSize + TraceLayout.threadRecordSize)
            }
            positions.append(head)
            head += total
        }
        #expect(drained.map(\.position) == positions)
        // Each record word stores the exact length; the ring advances by that length rounded up to 8.
        let ring = mapped.ring(0)
        for (w, position) in zip(writes, positions) {
            let word = RecordWord(rawValue: ring.loadWord(at: position, ordering: .acquiring))
            #expect(word.kind == .event && word.eventID == w.id && !word.isBusy, "event \(w.id)")
            #expect(word.length == TraceLayout.recordHeaderSize + w.size, "event \(w.id) of \(w.size) bytes")
            #expect(word.size == TraceLayout.recordSize(payloadSize: w.size), "event \(w.id) of \(w.size) bytes")
        }
        #expect(fixture.head(0) == head)
        #expect(fixture.consumed(0) == head)
    }

    @Test("a thread on a CPU that has no ring (cpuRingCount 1, pinned to CPU 1) writes through the lock-free slow lane",
          .enabled(if: CPUPinner.isAllowed(cpu: 1)))
    func slowLaneRoundTrip() throws {
        let fixture = try UnitTraceFixture("slowlane", cpuRingCount: 1)
        #expect(fixture.layout.slowLaneRing == 1)
        var expected: [UInt16: [UInt8]] = [:]
        var drained: [UnitDrainedRecord] = []
        try UnitTrace.onCPU(1) { () throws(TraceError) in
            for id in UInt16(0)..<600 {
                let size = Int(id) * 37 % (fixture.layout.maximumPayloadSize + 1)
                let bytes = UnitTrace.pattern(Int(id), count: size)
                expected[id] = bytes
                let api = UnitWriteAPI.allCases[Int(id) % UnitWriteAPI.allCases.count]
                #expect(api.write(fixture.producer, eventID: id, bytes))
                if id % 4 == 3 { drained += try fixture.drain(quiescent: false) }
            }
        }
        drained += try fixture.drain(quiescent: true)
        #expect(drained.count == 600)
        #expect(Set(drained.map(\.ring)) == [1])
        #expect(unitCheckRoundTrip(drained, expected: expected).isEmpty)
        #expect(fixture.head(0) == 0)
        #expect(fixture.head(1) > 4 * UInt64(fixture.layout.ringSize))
    }

    @Test("with mm_cid indexing, records go to the ring of the thread's concurrency id and round-trip intact",
          .enabled(if: RseqRuntime.status.supportsConcurrencyID))
    func concurrencyIDRoundTrip() throws {
        let fixture = try UnitTraceFixture("mmcid", indexing: .concurrencyID)
        #expect(fixture.producer.path == .rseqConcurrencyID)
        var expected: [UInt16: [UInt8]] = [:]
        var drained: [UnitDrainedRecord] = []
        for id in UInt16(0)..<400 {
            let bytes = UnitTrace.pattern(Int(id), count: Int(id) * 13 % 300)
            expected[id] = bytes
            #expect(UnitWriteAPI.allCases[Int(id) % UnitWriteAPI.allCases.count].write(fixture.producer, eventID: id, bytes))
            if id % 4 == 3 { drained += try fixture.drain(quiescent: false) }
        }
        drained += try fixture.drain(quiescent: true)
        #expect(drained.count == 400)
        #expect(unitCheckRoundTrip(drained, expected: expected).isEmpty)
        // mm_cid values are compact: a process with few threads uses the lowest rings.
        #expect(drained.allSatisfy { $0.ring < fixture.layout.cpuRingCount })
    }

    @Test("a reservation made on CPU 0 can be committed from CPU 1; readers stop at it until then",
          .enabled(if: CPUPinner.isAllowed(cpu: 1)))
    func commitAfterMigration() throws {
        let fixture = try UnitTraceFixture("migrate")
        let producer = fixture.producer   // a reservation borrows a local producer
        var early: [UnitDrainedRecord] = []
        var cpuAtCommit: Int32 = -1
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            #expect(fixture.producer.write(eventID: 1, value: UInt64(1)))
            var held = producer.reserve(eventID: 2, payloadSize: 8)
            held?.store(UInt64(2), at: 0)
            #expect(fixture.producer.write(eventID: 3, value: UInt64(3)))
            early = try fixture.drain(quiescent: false)
            do {
                try CPUPinner.run(onCPU: 1, realtime: false) {
                    cpuAtCommit = rseqtrace_getcpu()
                    if let reservation = held.take() { reservation.commit() } else { Issue.record("reserve refused") }
                }
            } catch {
                Issue.record("cannot pin to CPU 1: \(error)")
            }
        }
        #expect(cpuAtCommit == 1)
        #expect(early.map(\.eventID) == [1])
        // begin record 0..<24, thread record 24..<48, #1 48..<72.
        #expect(fixture.consumed(0) == 72)
        let late = try fixture.drain(quiescent: false)
        #expect(late.map(\.eventID) == [2, 3])
        #expect(late.map(\.sequence) == [2, 3])
        #expect(late.allSatisfy { $0.ring == 0 })
        // Committed from CPU 1, still attributed to the thread that wrote it.
        let me = Int32(truncatingIfNeeded: rseqtrace_gettid())
        #expect((early + late).allSatisfy { $0.threadID == me && $0.processID == getpid() })
        #expect(fixture.consumed(0) == fixture.head(0))
    }

    @Test("a reservation dropped without commit becomes padding of the same length that the drainer skips")
    func abandonedReservationBecomesPadding() throws {
        let fixture = try UnitTraceFixture("abandon")
        let mapped = fixture.buffer   // ring views borrow a local reference
        let producer = fixture.producer   // a reservation borrows a local producer
        let ring = mapped.ring(0)
        let drained = try UnitTrace.onCPU(0) { () throws(TraceError) -> [UnitDrainedRecord] in
            #expect(fixture.producer.write(eventID: 1, value: UInt64(100)))
            if let abandoned = producer.reserve(eventID: 2, payloadSize: 40) {
                abandoned.store(UInt64(200), at: 0)
                // Still busy while held: a non-quiescent discard drain stops right before it.
                let word = RecordWord(rawValue: ring.loadWord(at: 72, ordering: .acquiring))
                #expect(word.isBusy && word.kind == .event && word.length == 56 && word.eventID == 2)
                let early = try fixture.drain(quiescent: false)
                #expect(early.map(\.eventID) == [1])
                #expect(fixture.consumed(0) == 72)
                // `abandoned` is destroyed here without a commit.
            } else {
                Issue.record("reserve refused")
            }
            #expect(fixture.producer.write(eventID: 3, value: UInt64(300)))
            // Dropped as a temporary, immediately.
            _ = producer.reserve(eventID: 4, payloadSize: 0)
            #expect(fixture.producer.write(eventID: 5, value: UInt64(500)))
            return try fixture.drain(quiescent: false)
        }
        #expect(drained.map(\.eventID) == [3, 5])
        #expect(drained.map(\.sequence) == [300, 500])
        // Layout of ring 0: begin 0..<24, thread 24..<48, #1 48..<72, abandoned #2 72..<128,
        // #3 128..<152, abandoned #4 152..<168, #5 168..<192.
        #expect(RecordWord(rawValue: ring.loadWord(at: 24, ordering: .acquiring)) == RecordWord.threadRecord(lap: 0))
        let padding = RecordWord(rawValue: ring.loadWord(at: 72, ordering: .acquiring))
        #expect(padding == RecordWord(length: 56, kind: .padding, eventID: 0, lap: 0, busy: false))
        let empty = RecordWord(rawValue: ring.loadWord(at: 152, ordering: .acquiring))
        #expect(empty == RecordWord(length: 16, kind: .padding, eventID: 0, lap: 0, busy: false))
        #expect(drained.map(\.position) == [128, 168])
        #expect(fixture.head(0) == 192)
        #expect(fixture.consumed(0) == 192)
        #expect(fixture.drainer.totals.recorded == 3)
        #expect(fixture.drainer.totals.lost == 0)
    }

    @Test("a dropped reservation whose payload is not a multiple of 8 becomes padding of the space it occupies (length rounded up to 8)",
          arguments: [false, true])
    func abandonedUnalignedReservationBecomesAlignedPadding(quiescent: Bool) throws {
        let fixture = try UnitTraceFixture("abandon-odd-\(quiescent)")
        let mapped = fixture.buffer   // ring views borrow a local reference
        let producer = fixture.producer   // a reservation borrows a local producer
        let ring = mapped.ring(0)
        let drained = try UnitTrace.onCPU(0) { () throws(TraceError) -> [UnitDrainedRecord] in
            #expect(fixture.producer.write(eventID: 1, value: UInt64(100)))
            if let abandoned = producer.reserve(eventID: 2, payloadSize: 5) {
                #expect(abandoned.payloadSize == 5)
                // While held, the busy word carries the exact length: 16 + 5.
                let word = RecordWord(rawValue: ring.loadWord(at: 72, ordering: .acquiring))
                #expect(word.isBusy && word.kind == .event && word.length == 21 && word.size == 24 && word.eventID == 2)
            } else {
                Issue.record("reserve refused")
            }
            #expect(fixture.producer.write(eventID: 3, value: (UInt8(7), UInt8(8), UInt8(9))))
            _ = producer.reserve(eventID: 4, payloadSize: 13)
            #expect(fixture.producer.write(eventID: 5, value: UInt64(500)))
            return try fixture.drain(quiescent: quiescent)
        }
        // Layout of ring 0: begin 0..<24, thread 24..<48, #1 48..<72, abandoned #2 72..<96 (length
        // 21), #3 96..<120 (length 19), abandoned #4 120..<152 (length 29), #5 152..<176.
        #expect(drained.map(\.eventID) == [1, 3, 5])
        #expect(drained.map(\.bytes) == [UnitTrace.littleEndian(100), [7, 8, 9], UnitTrace.littleEndian(500)])
        #expect(drained.map(\.position) == [48, 96, 152])
        // Padding lengths are multiples of 8: the abandoned record's size, not its exact length.
        #expect(RecordWord(rawValue: ring.loadWord(at: 72, ordering: .acquiring))
                == RecordWord(length: 24, kind: .padding, eventID: 0, lap: 0, busy: false))
        #expect(RecordWord(rawValue: ring.loadWord(at: 120, ordering: .acquiring))
                == RecordWord(length: 32, kind: .padding, eventID: 0, lap: 0, busy: false))
        #expect(fixture.head(0) == 176)
        #expect(fixture.consumed(0) == 176)
        #expect(fixture.drainer.totals.recorded == 3)
        #expect(fixture.drainer.totals.lost == 0)
    }
}

// MARK: - Payloads that are not a multiple of 8

/// The write paths a record can take.
enum UnitWritePath: CaseIterable, CustomTestStringConvertible, Sendable {
    /// Copy-commit (write(bytes:)/write(payload:)) of a record that fits the open sub-buffer: one
    /// rseq sequence copies the payload and publishes the record.
    case copyCommitInOpenSubbuffer
    /// Copy-commit of a record that does not fit: it opens the next sub-buffer (reserve, copy, commit).
    case copyCommitOpeningSubbuffer
    /// reserve / store or withUnsafeMutablePayload / commit, in place and opening sub-buffers.
    case reserveCommit
    /// Every API through the lock-free slow lane (cpuRingCount 1, thread pinned to CPU 1).
    case lockFreeSlowLane

    var testDescription: String {
        switch self {
        case .copyCommitInOpenSubbuffer: "copy-commit in an open sub-buffer"
        case .copyCommitOpeningSubbuffer: "copy-commit opening a sub-buffer"
        case .reserveCommit: "reserve/commit"
        case .lockFreeSlowLane: "lock-free slow lane"
        }
    }

    static let copyCommitAPIs = UnitWriteAPI.allCases.filter(\.isCopyCommit)
    static let reserveAPIs = UnitWriteAPI.allCases.filter { !$0.isCopyCommit }
}

@Suite("RoundTrip: payloads that are not a multiple of 8")
struct PaddingUnitTests {
    /// Fills every byte of ring 0's first lap with 0xFF payload (one maximum-size record per
    /// sub-buffer), drains it, then writes `count` short records with each API in turn on CPU 0.
    /// Returns the drained short records, each with the API that wrote it.
    static func shortRecordsOverStaleBytes(_ fixture: UnitTraceFixture, payloadSize: Int, count: Int) throws
        -> [(record: UnitDrainedRecord, api: UnitWriteAPI)] {
        let maximum = fixture.layout.maximumPayloadSize
        let ones = [UInt8](repeating: 0xFF, count: maximum)
        var apis: [UInt16: UnitWriteAPI] = [:]
        let drained = try UnitTrace.onCPU(0) { () throws(TraceError) -> [UnitDrainedRecord] in
            for _ in 0..<fixture.layout.subbuffersPerRing {
                #expect(UnitWriteAPI.bytesSpan.write(fixture.producer, eventID: 0xFFFF, ones))
            }
            _ = try fixture.drain(quiescent: false)
            for id in UInt16(0)..<UInt16(count) {
                let api = UnitWriteAPI.allCases[Int(id) % UnitWriteAPI.allCases.count]
                apis[id] = api
                #expect(api.write(fixture.producer, eventID: id, UnitTrace.pattern(Int(id), count: payloadSize)))
            }
            return try fixture.drain(quiescent: false)
        }
        return drained.map { ($0, apis[$0.eventID]!) }
    }

    @Test("readers get exactly the payload written, never the stale alignment bytes after it, whichever path wrote the record",
          arguments: [1, 3, 7, 9, 100])
    func paddingIsAlwaysZero(payloadSize: Int) throws {
        let fixture = try UnitTraceFixture("padall\(payloadSize)")
        let records = try Self.shortRecordsOverStaleBytes(fixture, payloadSize: payloadSize, count: 12)
        #expect(records.count == 12)
        for (record, api) in records {
            #expect(record.bytes.count == payloadSize,
                    "\(api) event \(record.eventID): bytes after the payload \(Array(record.bytes.dropFirst(payloadSize)))")
            #expect(record.bytes == UnitTrace.pattern(Int(record.eventID), count: payloadSize), "\(api) event \(record.eventID)")
        }
    }

    /// One planned write: the record under test (`filler == false`) or a record that fills the rest
    /// of its sub-buffer exactly, so that the next record has to open a new one.
    struct PlannedWrite {
        var id: UInt16
        var api: UnitWriteAPI
        var bytes: [UInt8]
        var filler: Bool
    }

    /// The writes that make `count` records of `payloadSize` bytes take `path`.
    static func plan(_ path: UnitWritePath, payloadSize: Int, count: Int, layout: TraceLayout) -> [PlannedWrite] {
        var writes: [PlannedWrite] = []
        for i in 0..<count {
            // Ids grow in write order (fillers included), as unitCheckRoundTrip expects per ring.
            let id = UInt16(writes.count)
            let bytes = UnitTrace.pattern(Int(id), count: payloadSize)
            switch path {
            case .copyCommitInOpenSubbuffer:
                writes.append(PlannedWrite(id: id, api: UnitWritePath.copyCommitAPIs[i % UnitWritePath.copyCommitAPIs.count],
                                           bytes: bytes, filler: false))
            case .copyCommitOpeningSubbuffer:
                writes.append(PlannedWrite(id: id, api: UnitWritePath.copyCommitAPIs[i % UnitWritePath.copyCommitAPIs.count],
                                           bytes: bytes, filler: false))
                // Fill the rest of the sub-buffer exactly (begin record + thread record + this record
                // + filler == P) unless the next record cannot fit there anyway.
                let rest = layout.subbufferSize - TraceLayout.beginRecordSize - TraceLayout.threadRecordSize
                    - TraceLayout.recordSize(payloadSize: payloadSize)
                if rest >= TraceLayout.recordSize(payloadSize: payloadSize) {
                    writes.append(PlannedWrite(id: id + 1, api: .reservePayload,
                                               bytes: UnitTrace.pattern(Int(id) + 1, count: rest - TraceLayout.recordHeaderSize),
                                               filler: true))
                }
            case .reserveCommit:
                writes.append(PlannedWrite(id: id, api: UnitWritePath.reserveAPIs[i % UnitWritePath.reserveAPIs.count],
                                           bytes: bytes, filler: false))
            case .lockFreeSlowLane:
                writes.append(PlannedWrite(id: id, api: UnitWriteAPI.allCases[i % UnitWriteAPI.allCases.count],
                                           bytes: bytes, filler: false))
            }
        }
        return writes
    }

    static let oddPayloadSizes = [1, 3, 7, 9, 15, 100, 953]

    // On the rseq paths (the default), copy-commit of a record that fits the open sub-buffer is one
    // rseq sequence; in a process forced into the fallback protocol every path is the lock-free one.
    @Test("every per-CPU write path delivers exactly the payload size written and the same bytes, over stale ring bytes",
          arguments: [UnitWritePath.copyCommitInOpenSubbuffer, .copyCommitOpeningSubbuffer, .reserveCommit], oddPayloadSizes)
    func everyPathDeliversTheExactPayload(path: UnitWritePath, payloadSize: Int) throws {
        try Self.checkExactPayloads(path: path, payloadSize: payloadSize)
    }

    @Test("the lock-free slow lane (cpuRingCount 1, pinned to CPU 1) delivers exactly the payload size written and the same bytes",
          .enabled(if: CPUPinner.isAllowed(cpu: 1)), arguments: oddPayloadSizes)
    func slowLaneDeliversTheExactPayload(payloadSize: Int) throws {
        try Self.checkExactPayloads(path: .lockFreeSlowLane, payloadSize: payloadSize)
    }

    static func checkExactPayloads(path: UnitWritePath, payloadSize: Int) throws {
        let slowLane = path == .lockFreeSlowLane
        // 32 sub-buffers of 1 KiB: every record below lands on bytes of the first lap (stale 0xFF).
        let fixture = try UnitTraceFixture("path-\(path)-\(payloadSize)", ringSize: 1 << 15, subbufferSize: 1024,
                                           cpuRingCount: slowLane ? 1 : nil)
        let mapped = fixture.buffer   // ring views borrow a local reference
        let cpu = slowLane ? 1 : 0
        let ringIndex = slowLane ? fixture.layout.slowLaneRing : 0
        let p = UInt64(fixture.layout.subbufferSize)
        let writes = plan(path, payloadSize: payloadSize, count: 12, layout: fixture.layout)
        let ones = [UInt8](repeating: 0xFF, count: fixture.layout.maximumPayloadSize)
        let drained = try UnitTrace.onCPU(cpu) { () throws(TraceError) -> [UnitDrainedRecord] in
            // The whole first lap: one maximum-size record of 0xFF per sub-buffer.
            for _ in 0..<fixture.layout.subbuffersPerRing {
                #expect(UnitWriteAPI.rawBuffer.write(fixture.producer, eventID: 0xFFFF, ones))
            }
            #expect(fixture.head(ringIndex) == UInt64(fixture.layout.ringSize))
            #expect(try fixture.drain(quiescent: false).count == fixture.layout.subbuffersPerRing)
            for w in writes {
                #expect(w.api.write(fixture.producer, eventID: w.id, w.bytes), "\(w.api) event \(w.id)")
            }
            return try fixture.drain(quiescent: false)
        }
        #expect(fixture.head(ringIndex) < 2 * UInt64(fixture.layout.ringSize), "still on the first lap's stale bytes")
        if slowLane { #expect(fixture.head(0) == 0, "CPU 1 has no ring: nothing may reach ring 0") }
        #expect(drained.map(\.eventID) == writes.map(\.id))
        #expect(drained.allSatisfy { $0.ring == ringIndex })
        let expected = Dictionary(uniqueKeysWithValues: writes.map { ($0.id, $0.bytes) })
        let problems = unitCheckRoundTrip(drained, expected: expected)
        #expect(problems.isEmpty, "\(problems)")

        let ring = mapped.ring(ringIndex)
        var opening = 0
        var inPlace = 0
        var apis = Set<String>()
        for (record, w) in zip(drained, writes) where !w.filler {
            #expect(record.bytes.count == payloadSize, "\(w.api) event \(w.id)")
            #expect(record.bytes == w.bytes, "\(w.api) event \(w.id)")
            let word = RecordWord(rawValue: ring.loadWord(at: record.position, ordering: .acquiring))
            #expect(word.length == TraceLayout.recordHeaderSize + payloadSize, "\(w.api) event \(w.id)")
            #expect(word.size == TraceLayout.recordSize(payloadSize: payloadSize), "\(w.api) event \(w.id)")
            // The opener's records follow the begin record and its thread record.
            if record.position % p == UInt64(TraceLayout.beginRecordSize + TraceLayout.threadRecordSize) {
                opening += 1
            } else {
                inPlace += 1
            }
            apis.insert(w.api.description)
        }
        // Without fillers, records are packed: only the first record of each sub-buffer opened it.
        let perSub = fixture.recordsPerSubbuffer(payloadSize: payloadSize)
        let packedOpenings = (12 + perSub - 1) / perSub
        switch path {
        case .copyCommitInOpenSubbuffer:
            #expect(opening == packedOpenings && inPlace == 12 - packedOpenings)
            #expect(inPlace > 0 || perSub == 1)
            #expect(apis.count == UnitWritePath.copyCommitAPIs.count)
        case .copyCommitOpeningSubbuffer:
            #expect(opening == 12 && inPlace == 0)
            #expect(apis.count == UnitWritePath.copyCommitAPIs.count)
        case .reserveCommit:
            #expect(opening == packedOpenings && inPlace == 12 - packedOpenings)
            #expect(apis.count == UnitWritePath.reserveAPIs.count)
        case .lockFreeSlowLane:
            #expect(opening == packedOpenings && inPlace == 12 - packedOpenings)
            #expect(apis.count == UnitWriteAPI.allCases.count)
        }
        #expect(fixture.consumed(ringIndex) == fixture.head(ringIndex))
        #expect(fixture.drainer.totals.recorded == UInt64(fixture.layout.subbuffersPerRing + writes.count))
        #expect(fixture.drainer.totals.lost == 0)
    }
}

// MARK: - Discard mode, full ring

@Suite("RoundTrip: discard mode with a full ring")
struct DiscardFullUnitTests {
    @Test("pinned to one CPU, an undrained 8 KiB ring of 1 KiB sub-buffers takes exactly 8 sub-buffers of records, then drops and counts")
    func fullRingDropsExactly() throws {
        let fixture = try UnitTraceFixture("full")
        let mapped = fixture.buffer   // ring views borrow a local reference
        let producer = fixture.producer   // a reservation borrows a local producer
        let perSub = fixture.recordsPerSubbuffer(payloadSize: 8)
        #expect(perSub == 40)   // (1024 - 24 - 24) / 24
        let capacity = perSub * fixture.layout.subbuffersPerRing      // 320
        let written = 1000
        var accepted: [UInt64] = []
        var refusedCount = 0
        var drained: [UnitDrainedRecord] = []
        var secondAccepted: [UInt64] = []
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for seq in 0..<UInt64(written) {
                let ok: Bool
                if seq % 2 == 0 {
                    ok = fixture.producer.write(eventID: 9, value: seq)
                } else if let reservation = producer.reserve(eventID: 9, payloadSize: 8) {
                    reservation.store(seq, at: 0)
                    fixture.producer.commit(reservation)
                    ok = true
                } else {
                    ok = false
                }
                if ok { accepted.append(seq) } else { refusedCount += 1 }
            }
            #expect(fixture.counterSum(ControlField.dropped) == UInt64(refusedCount))
            #expect(mapped.ring(0).load(ControlField.dropped, ordering: .relaxed) == UInt64(refusedCount))
            drained = try fixture.drain(quiescent: false)

            // After the drain the ring has room again: exactly the sub-buffers whose previous
            // content is now consumed can be opened (consumed >= next + P - S).
            let consumed = Int(fixture.consumed(0))
            let reopenable = (consumed + fixture.layout.ringSize) / fixture.layout.subbufferSize - fixture.layout.subbuffersPerRing
            for seq in UInt64(written)..<UInt64(written + 500) where fixture.producer.write(eventID: 9, value: seq) {
                secondAccepted.append(seq)
            }
            #expect(secondAccepted.count == reopenable * perSub, "reopenable sub-buffers \(reopenable)")
        }
        #expect(accepted == Array(0..<UInt64(capacity)))
        #expect(refusedCount == written - capacity)
        #expect(accepted.count + refusedCount == written)
        #expect(drained.map(\.sequence) == accepted)
        #expect(drained.allSatisfy { $0.ring == 0 && $0.bytes.count == 8 })
        #expect(secondAccepted == Array(UInt64(written)..<UInt64(written + secondAccepted.count)))
        // head 7 * 1024 + 48 + 40 * 24 = 8176 after the first lap: sub-buffers 8...14 reopen.
        #expect(secondAccepted.count == 280)

        let more = try fixture.drain(quiescent: true)
        #expect(more.map(\.sequence) == secondAccepted)
        let totals = fixture.drainer.totals
        let emitted = UInt64(written + 500)
        #expect(totals.recorded == UInt64(accepted.count + secondAccepted.count))
        #expect(totals.dropped == fixture.counterSum(ControlField.dropped))
        #expect(totals.recorded + totals.dropped == emitted)
        #expect(totals.overwritten == 0 && totals.tooLarge == 0)
    }

    @Test("unpinned, recorded + dropped == written exactly and the dropped counters match the refused writes")
    func fullRingBalanceUnpinned() throws {
        let fixture = try UnitTraceFixture("fullfree")
        var ok = 0
        var refused = 0
        var acceptedIDs = Set<UInt64>()
        for seq in 0..<UInt64(3000) {
            let bytes = UnitTrace.littleEndian(seq) + UnitTrace.pattern(Int(seq), count: Int(seq % 50))
            if UnitWriteAPI.allCases[Int(seq) % UnitWriteAPI.allCases.count].write(fixture.producer, eventID: 1, bytes) {
                ok += 1
                acceptedIDs.insert(seq)
            } else {
                refused += 1
            }
        }
        #expect(refused > 0)
        #expect(fixture.counterSum(ControlField.dropped) == UInt64(refused))
        let drained = try fixture.drain(quiescent: false)
        #expect(drained.count == ok)
        #expect(Set(drained.map(\.sequence)) == acceptedIDs)
        let totals = fixture.drainer.totals
        #expect(totals.recorded + totals.dropped == 3000)
        #expect(totals.dropped == UInt64(refused))
        // Writing works again after the drain.
        var after = 0
        for seq in UInt64(3000)..<3100 where fixture.producer.write(eventID: 1, value: seq) { after += 1 }
        #expect(after == 100)
        let tail = try fixture.drain(quiescent: true)
        #expect(tail.map(\.sequence).sorted() == Array(UInt64(3000)..<3100))
    }
}

// MARK: - Overwrite mode

@Suite("RoundTrip: overwrite mode exactness")
struct OverwriteUnitTests {
    /// Sequence number of the first record still in the ring after writing `written` records of
    /// equal size on one CPU without draining: the newest `subbuffersPerRing` sub-buffers survive
    /// (SubbufferOpening recycles sub-buffer k - K when it opens sub-buffer k).
    static func firstSurvivor(written: Int, perSub: Int, subbuffers: Int) -> Int {
        guard written > 0 else { return 0 }
        let current = (written - 1) / perSub
        return perSub * max(0, current - (subbuffers - 1))
    }

    @Test("without draining, a quiescent drain returns exactly the newest sub-buffers and counts everything else as overwritten",
          arguments: [(8, 100), (8, 320), (8, 321), (8, 5000), (40, 3001), (960, 7), (960, 8), (960, 9), (960, 1234), (0, 4000),
                      (13, 3001), (1, 2000), (953, 1234)])
    func overwriteKeepsNewestSuffix(payloadSize: Int, written: Int) throws {
        let fixture = try UnitTraceFixture("ow\(payloadSize)-\(written)", mode: .overwrite)
        let perSub = fixture.recordsPerSubbuffer(payloadSize: payloadSize)
        let capacity = perSub * fixture.layout.subbuffersPerRing
        var refused = 0
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for seq in 0..<written {
                // Sequence number in the event id (payloads may be too short to hold it).
                let bytes = UnitTrace.pattern(seq, count: payloadSize)
                if !UnitWriteAPI.allCases[seq % UnitWriteAPI.allCases.count].write(fixture.producer, eventID: UInt16(seq), bytes) { refused += 1 }
            }
        }
        #expect(refused == 0)
        let drained = try fixture.drain(quiescent: true)
        let first = Self.firstSurvivor(written: written, perSub: perSub, subbuffers: fixture.layout.subbuffersPerRing)
        #expect(drained.map { Int($0.eventID) } == Array(first..<written))
        #expect(drained.allSatisfy { $0.ring == 0 && $0.bytes == UnitTrace.pattern(Int($0.eventID), count: payloadSize) })
        let totals = fixture.drainer.totals
        #expect(totals.recorded == UInt64(written - first))
        #expect(totals.overwritten == UInt64(first))
        #expect(totals.recorded + totals.overwritten == UInt64(written))
        #expect(totals.recorded <= UInt64(capacity))
        #expect(totals.dropped == 0 && totals.tooLarge == 0)
        // A second quiescent drain finds nothing new and loses nothing more.
        #expect(try fixture.drain(quiescent: true).isEmpty)
        #expect(fixture.drainer.totals == totals)
    }

    @Test("non-quiescent drains (pinned commits) interleaved with writes deliver exactly the records not yet recycled",
          arguments: [8, 13, 40, 960])
    func interleavedDrainsAreExact(payloadSize: Int) throws {
        try Self.interleaved(payloadSize: payloadSize, slowLane: false)
    }

    @Test("the same exactness holds on the lock-free slow lane (cpuRingCount 1, writer pinned to CPU 1, lock-free commits)",
          .enabled(if: CPUPinner.isAllowed(cpu: 1)), arguments: [8, 13, 960])
    func interleavedSlowLaneDrainsAreExact(payloadSize: Int) throws {
        try Self.interleaved(payloadSize: payloadSize, slowLane: true)
    }

    static func interleaved(payloadSize: Int, slowLane: Bool) throws {
        let fixture = try UnitTraceFixture("owmix\(payloadSize)-\(slowLane)", mode: .overwrite,
                                           cpuRingCount: slowLane ? 1 : nil)
        let cpu = slowLane ? 1 : 0
        let expectedRing = slowLane ? fixture.layout.slowLaneRing : 0
        let perSub = fixture.recordsPerSubbuffer(payloadSize: payloadSize)
        let subbuffers = fixture.layout.subbuffersPerRing
        // Sizes around a sub-buffer (40 records of 8 bytes) and a ring (320) among others.
        let batches = [5, 50, 400, 1, 321, 700, 40, 1000, 2, 3, 322, 80, 900, 17, 320, 6, 600, 123, 40, 41]
        var written = 0
        var previousEnd = 0            // sequence after the last one delivered
        var problems: [String] = []
        try UnitTrace.onCPU(cpu) { () throws(TraceError) in
            for (round, batch) in batches.enumerated() {
                for _ in 0..<batch {
                    let bytes = UnitTrace.littleEndian(UInt64(written), count: min(8, payloadSize))
                        + UnitTrace.pattern(written, count: max(0, payloadSize - 8))
                    // SAFETY: UInt8 has no padding: every byte of the RawSpan is initialised.
                    if unsafe !fixture.producer.write(eventID: UInt16(truncatingIfNeeded: written), bytes: bytes.span.bytes) {
                        problems.append("write \(written) refused")
                    }
                    written += 1
                }
                let overwrittenBefore = fixture.drainer.totals.overwritten
                let records = try fixture.drain(quiescent: false)
                let first = max(previousEnd, Self.firstSurvivor(written: written, perSub: perSub, subbuffers: subbuffers))
                let ids = records.map { Int($0.eventID) }
                let expectedIDs = (first..<written).map { $0 & 0xFFFF }
                if ids != expectedIDs {
                    problems.append("round \(round): delivered \(ids.first ?? -1)...\(ids.last ?? -1) (\(ids.count)), expected \(first)..<\(written)")
                }
                let gap = UInt64(first - previousEnd)
                if fixture.drainer.totals.overwritten - overwrittenBefore != gap {
                    problems.append("round \(round): overwritten grew by \(fixture.drainer.totals.overwritten - overwrittenBefore), expected \(gap)")
                }
                for record in records where payloadSize >= 8 {
                    let seq = Int(record.sequence)
                    let expected = UnitTrace.littleEndian(UInt64(seq)) + UnitTrace.pattern(seq, count: payloadSize - 8)
                    if record.bytes != expected || record.ring != expectedRing {
                        problems.append("record \(seq) damaged or on ring \(record.ring)")
                    }
                }
                previousEnd = written
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(6))")
        let totals = fixture.drainer.totals
        #expect(totals.recorded + totals.overwritten == UInt64(written))
        #expect(totals.overwritten > 0)
        #expect(totals.dropped == 0 && totals.tooLarge == 0)
        #expect(try fixture.drain(quiescent: true).isEmpty)
    }

    @Test("unpinned writes with interleaved non-quiescent drains balance exactly: recorded + overwritten == written")
    func interleavedUnpinnedBalance() throws {
        let fixture = try UnitTraceFixture("owfree", mode: .overwrite)
        var delivered: [UInt64] = []
        var written: UInt64 = 0
        for round in 0..<25 {
            for _ in 0..<(round * 97 % 700 + 1) {
                let bytes = UnitTrace.littleEndian(written) + UnitTrace.pattern(Int(written), count: Int(written % 32))
                #expect(UnitWriteAPI.allCases[Int(written) % UnitWriteAPI.allCases.count].write(fixture.producer, eventID: 2, bytes))
                written += 1
            }
            delivered += try fixture.drain(quiescent: false).map(\.sequence)
        }
        delivered += try fixture.drain(quiescent: true).map(\.sequence)
        let totals = fixture.drainer.totals
        #expect(Set(delivered).count == delivered.count, "no duplicates")
        #expect(delivered.allSatisfy { $0 < written })
        #expect(totals.recorded == UInt64(delivered.count))
        #expect(totals.recorded + totals.overwritten + totals.dropped == written)
        #expect(totals.dropped == 0)
    }

    @Test("a held reservation blocks recycling of its sub-buffer: later records are dropped and counted, and the balance stays exact",
          arguments: [false, true])
    func heldReservationBlocksRecycling(drainWhileHeld: Bool) throws {
        let fixture = try UnitTraceFixture("owheld-\(drainWhileHeld)", mode: .overwrite)
        let producer = fixture.producer   // a reservation borrows a local producer
        var earlyDrain: [UInt64] = []
        let perSub = fixture.recordsPerSubbuffer(payloadSize: 8)
        let capacity = perSub * fixture.layout.subbuffersPerRing
        var acceptedWhileHeld = 0
        var refusedWhileHeld = 0
        var acceptedAfter = 0
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for seq in UInt64(0)..<10 { #expect(fixture.producer.write(eventID: 1, value: seq)) }
            guard let held = producer.reserve(eventID: 1, payloadSize: 8) else {
                Issue.record("reserve refused")
                return
            }
            if drainWhileHeld {
                // A pinned, non-quiescent drain stops at the busy record (position 24 + 24 + 10 * 24,
                // after the begin and thread records).
                earlyDrain = try fixture.drain(quiescent: false).map(\.sequence)
                #expect(fixture.consumed(0) == 288)
            }
            for seq in UInt64(11)..<1011 {
                if fixture.producer.write(eventID: 1, value: seq) { acceptedWhileHeld += 1 } else { refusedWhileHeld += 1 }
            }
            #expect(fixture.counterSum(ControlField.dropped) == UInt64(refusedWhileHeld))
            held.store(UInt64(10), at: 0)
            held.commit()
            for seq in UInt64(1011)..<1111 where fixture.producer.write(eventID: 1, value: seq) { acceptedAfter += 1 }
        }
        // Sub-buffers 0...7 fill (the held record is #10 in sub-buffer 0); opening sub-buffer 8 would
        // recycle sub-buffer 0, which holds the busy record.
        #expect(acceptedWhileHeld == capacity - 11)
        #expect(refusedWhileHeld == 1000 - (capacity - 11))
        #expect(acceptedAfter == 100)
        #expect(earlyDrain == (drainWhileHeld ? Array(0..<10) : []))
        let drained = try fixture.drain(quiescent: true)
        let totals = fixture.drainer.totals
        #expect(totals.dropped == UInt64(refusedWhileHeld))
        #expect(totals.recorded == UInt64(earlyDrain.count + drained.count))
        #expect(totals.recorded + totals.overwritten + totals.dropped == 1111)
        // Recycling sub-buffer 0 destroyed its 40 records, minus the 10 already read.
        #expect(totals.overwritten == UInt64(1111 - refusedWhileHeld - earlyDrain.count - drained.count))
        // The survivors are the newest accepted records, in order.
        let acceptedSequence = Array(UInt64(0)..<UInt64(capacity)) + Array(UInt64(1011)..<1111)
        #expect(drained.map(\.sequence) == Array(acceptedSequence.suffix(drained.count)))
    }

    @Test("a record committed while a live overwrite read copies the ring is delivered later, intact: never with payload bytes from before its commit")
    func commitDuringSnapshotCopy() throws {
        let fixture = try UnitTraceFixture("owtorn", mode: .overwrite)
        let payloadSize = 200   // several cache lines
        // A writer of its own, whose reservation (unlike a Reservation) a closure can commit.
        let state = UnsafeMutablePointer<RingWriter.State>.allocate(capacity: 1)
        // SAFETY: the fixture's buffer outlives the writer and its reservation (both end in this test).
        unsafe state.initialize(to: fixture.buffer.makeWriterState())
        defer {
            // SAFETY: initialized above; nothing uses the state after this test.
            unsafe state.deinitialize(count: 1)
            // SAFETY: allocated above, deinitialized on the line before.
            unsafe state.deallocate()
        }
        // SAFETY: as above.
        let writer = unsafe RingWriter(state: state)
        var firstRound: [UnitDrainedRecord] = []
        var secondRound: [UnitDrainedRecord] = []
        var committedDuringCopy = false
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for seq in 0..<5 {
                #expect(UnitWriteAPI.bytesSpan.write(fixture.producer, eventID: UInt16(seq), UnitTrace.pattern(seq, count: payloadSize)))
            }
            guard let slot = writer.reserve(eventID: 5, payloadSize: payloadSize) else {
                Issue.record("reserve refused")
                return
            }
            // The event's word: the record ends at the head (a thread record, if any, is before it).
            let position = fixture.head(0) - UInt64(TraceLayout.recordSize(payloadSize: payloadSize))
            let final = UnitTrace.pattern(5, count: payloadSize)
            // SAFETY: the reserved payload has payloadSize bytes.
            unsafe slot.payload.initializeMemory(as: UInt8.self, repeating: 0xEE, count: payloadSize)
            let fill = {
                // SAFETY: as above; the record is committed right after, by this thread only.
                unsafe final.withUnsafeBytes { unsafe slot.payload.copyMemory(from: $0.baseAddress!, byteCount: payloadSize) }
                slot.commit()
            }
            // The copy runs backward, as a memcpy may: a record's payload is copied before its word.
            // Its producer fills and commits it right before the copy loads its word.
            fixture.drainer.snapshotCopyInterleave = { wordPosition in
                if wordPosition == position && !committedDuringCopy {
                    committedDuringCopy = true
                    fill()
                }
            }
            firstRound = try fixture.drain(quiescent: false)
            fixture.drainer.snapshotCopyInterleave = nil
            if !committedDuringCopy { fill() }
            secondRound = try fixture.drain(quiescent: false)
        }
        // The read copies only the records committed before it (the busy one ends its range), so
        // the commit made during the copy is seen by the next read.
        #expect(firstRound.map(\.eventID) == [0, 1, 2, 3, 4])
        #expect(secondRound.map(\.eventID) == [5])
        for record in firstRound + secondRound {
            #expect(record.bytes == UnitTrace.pattern(Int(record.eventID), count: payloadSize), "record \(record.eventID)")
        }
        #expect(fixture.drainer.totals.recorded == 6)
    }

    @Test("a slot declared recycled by a producer that stopped before opening the sub-buffer: its loss is counted exactly once",
          arguments: [true, false])
    func pendingRecycleIsCountedOnce(quiescent: Bool) throws {
        let fixture = try UnitTraceFixture("owpending-\(quiescent)", mode: .overwrite)
        let mapped = fixture.buffer   // ring views borrow a local reference
        let perSub = fixture.recordsPerSubbuffer(payloadSize: 8)
        let capacity = perSub * fixture.layout.subbuffersPerRing
        let ring = mapped.ring(0)
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for seq in UInt64(0)..<UInt64(capacity) { #expect(fixture.producer.write(eventID: 1, value: seq)) }
        }
        let head = fixture.head(0)
        #expect(head == UInt64(fixture.layout.ringSize - 16))
        // Step 1 of the next opening, exactly as SubbufferOpening plans it, committed; step 2 never runs.
        let outcome = SubbufferOpening.plan(layout: fixture.layout, mode: .overwrite, ring: ring, head: head,
                                            consumed: fixture.consumed(0), length: 24)
        guard case .recycleFirst(let recycling) = outcome else {
            Issue.record("expected a recycling step first")
            return
        }
        #expect(recycling.markerField == ControlField.recycleMarker(slot: 0))
        #expect(recycling.marker == RecycleMarker(tag: UInt16(fixture.layout.subbuffersPerRing), lost: UInt64(perSub)))
        ring.store(recycling.markerField, recycling.marker.rawValue, ordering: .releasing)

        // Sub-buffer 0 is dead: readers start after it.
        let drained = try fixture.drain(quiescent: quiescent)
        #expect(drained.map(\.sequence) == Array(UInt64(perSub)..<UInt64(capacity)))
        if quiescent {
            // No producer will ever report it through a begin record: the drainer counts it now.
            #expect(fixture.drainer.totals.overwritten == UInt64(perSub))
            #expect(ring.load(recycling.markerField, ordering: .relaxed) == 0)
            #expect(try fixture.drain(quiescent: true).isEmpty)
            #expect(fixture.drainer.totals.overwritten == UInt64(perSub))
        } else {
            // A live producer will: the next opening carries it in its begin record.
            #expect(fixture.drainer.totals.overwritten == 0)
            try UnitTrace.onCPU(0) { () throws(TraceError) in
                #expect(fixture.producer.write(eventID: 1, value: UInt64(capacity)))
            }
            #expect(try fixture.drain(quiescent: false).map(\.sequence) == [UInt64(capacity)])
            #expect(fixture.drainer.totals.overwritten == UInt64(perSub))
        }
        let totals = fixture.drainer.totals
        #expect(totals.recorded + totals.overwritten == UInt64(capacity + (quiescent ? 0 : 1)))
    }
}

// MARK: - Too large

@Suite("RoundTrip: payloads that can never fit")
struct TooLargeUnitTests {
    @Test("maximumPayloadSize + 1 is refused by every API and counted in tooLarge; maximumPayloadSize itself works",
          arguments: [BufferMode.discard, .overwrite])
    func tooLargeIsRefusedAndCounted(mode: BufferMode) throws {
        let fixture = try UnitTraceFixture("big-\(mode)", mode: mode)
        let producer = fixture.producer   // a reservation borrows a local producer
        let maximum = fixture.layout.maximumPayloadSize
        let tooBig = UnitTrace.pattern(1, count: maximum + 1)
        // SAFETY: UInt8 has no padding: every byte of the RawSpan is initialised.
        #expect(unsafe fixture.producer.write(eventID: 1, bytes: tooBig.span.bytes) == false)
        // SAFETY: the array's storage is readable for the duration of the closure.
        #expect(unsafe tooBig.withUnsafeBytes { unsafe fixture.producer.write(eventID: 1, payload: $0) } == false)
        let refused1 = unitIsRefused(producer.reserve(eventID: 1, payloadSize: maximum + 1))
        #expect(refused1)
        let huge = [UInt8](repeating: 7, count: 1 << 20)
        // SAFETY: UInt8 has no padding: every byte of the RawSpan is initialised.
        #expect(unsafe fixture.producer.write(eventID: 1, bytes: huge.span.bytes) == false)
        let refused2 = unitIsRefused(producer.reserve(eventID: 1, payloadSize: Int.max))
        #expect(refused2)
        #expect(fixture.producer.write(eventID: 1, bytes: tooBig.span) == false)
        #expect(fixture.counterSum(ControlField.tooLarge) == 6)
        #expect(fixture.counterSum(ControlField.dropped) == 0)

        var expected: [UInt16: [UInt8]] = [:]
        for (i, api) in UnitWriteAPI.allCases.enumerated() {
            let bytes = UnitTrace.pattern(100 + i, count: maximum)
            expected[UInt16(100 + i)] = bytes
            #expect(api.write(fixture.producer, eventID: UInt16(100 + i), bytes), "\(api)")
        }
        let apis = UnitWriteAPI.allCases.count
        let drained = try fixture.drain(quiescent: true)
        #expect(drained.count == apis)
        #expect(unitCheckRoundTrip(drained, expected: expected).isEmpty)
        let totals = fixture.drainer.totals
        #expect(totals.tooLarge == 6)
        #expect(totals.dropped == 0)
        #expect(totals.recorded == UInt64(apis))
        #expect(totals.lost == 6)
        // Nothing of the refused records reached a ring: each ring holds only whole sub-buffers of
        // one maximum-size record each.
        let heads = (0..<fixture.layout.ringCount).map { fixture.head($0) }
        #expect(heads.reduce(0, +) == UInt64(apis) * UInt64(fixture.layout.subbufferSize))
    }

    @Test("a negative payload size is refused without touching the ring")
    func negativeReservationIsRefused() throws {
        let fixture = try UnitTraceFixture("negative")
        let producer = fixture.producer   // a reservation borrows a local producer
        let refused3 = unitIsRefused(producer.reserve(eventID: 1, payloadSize: -1))
        #expect(refused3)
        #expect(fixture.counterSum(ControlField.tooLarge) == 1)
        #expect((0..<fixture.layout.ringCount).allSatisfy { fixture.head($0) == 0 })
    }
}

// MARK: - Drainer robustness

@Suite("RoundTrip: drainer facing a damaged ring")
struct DrainerCorruptionUnitTests {
    /// Writes three 8-byte records on CPU 0: ring 0 then holds begin 0..<24, the writer's thread
    /// record 24..<48 and records at 48, 72, 96.
    static func threeRecords(_ fixture: UnitTraceFixture) throws {
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for seq in UInt64(1)...3 { #expect(fixture.producer.write(eventID: 5, value: seq)) }
        }
        #expect(fixture.head(0) == 120)
    }

    static let damages: [(name: String, word: RecordWord, reason: String)] = [
        ("length crossing the sub-buffer", RecordWord(length: 4096, kind: .event, eventID: 5, lap: 0, busy: false),
         "record length 4096 crosses its sub-buffer or the head"),
        ("length crossing the head", RecordWord(length: 64, kind: .event, eventID: 5, lap: 0, busy: false),
         "record length 64 crosses its sub-buffer or the head"),
        ("zero length", RecordWord(length: 0, kind: .event, eventID: 5, lap: 0, busy: false),
         "record length 0 crosses its sub-buffer or the head"),
        // An unaligned event length is valid now (the exact payload size); shorter than the 16-byte
        // header is not.
        ("event shorter than its header", RecordWord(length: 8, kind: .event, eventID: 5, lap: 0, busy: false),
         "record length 8 crosses its sub-buffer or the head"),
        ("reserved bit", RecordWord(rawValue: RecordWord(length: 24, kind: .event, eventID: 5, lap: 0, busy: false).rawValue | 1 << 30),
         "invalid record word 0x541000018"),
        ("unknown kind", RecordWord(rawValue: 0x0000_0005_0700_0018), "invalid record word 0x507000018"),
        ("wrong lap", RecordWord(length: 24, kind: .event, eventID: 5, lap: 7, busy: false), "record from lap 7, expected lap 0"),
        ("begin record in the middle", RecordWord(length: 24, kind: .subbufferBegin, eventID: 0, lap: 0, busy: false),
         "misplaced sub-buffer begin record"),
        ("zero-length padding", RecordWord(length: 0, kind: .padding, eventID: 0, lap: 0, busy: false),
         "record length 0 crosses its sub-buffer or the head"),
        ("padding crossing the head", RecordWord(length: 56, kind: .padding, eventID: 0, lap: 0, busy: false),
         "record length 56 crosses its sub-buffer or the head"),
        ("thread record longer than 24 bytes", RecordWord(length: 32, kind: .thread, eventID: 0, lap: 0, busy: false),
         "thread record of length 32 (thread records are 24 bytes)"),
        ("thread record shorter than 24 bytes", RecordWord(length: 16, kind: .thread, eventID: 0, lap: 0, busy: false),
         "thread record of length 16 (thread records are 24 bytes)"),
        ("unaligned thread record", RecordWord(length: 20, kind: .thread, eventID: 0, lap: 0, busy: false),
         "record length 20 crosses its sub-buffer or the head"),
    ]

    @Test("a damaged record word makes drainOnce throw .corrupted naming the ring, position and object",
          arguments: [BufferMode.discard, .overwrite], Array(0..<13))
    func damagedWordIsReported(mode: BufferMode, damage: Int) throws {
        let d = Self.damages[damage]
        let fixture = try UnitTraceFixture("damage\(damage)-\(mode)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        mapped.ring(0).storeWord(at: 72, d.word.rawValue, ordering: .releasing)
        var thrown: TraceError?
        do {
            _ = try fixture.drain(quiescent: false)
        } catch {
            thrown = error
        }
        let error = try #require(thrown, "\(d.name): drainOnce did not throw")
        #expect(error.code == .corrupted)
        #expect(error.message == """
            ring 0 of trace '\(fixture.buffer.name)' is damaged at position 72: \(d.reason); something other than \
            RseqTrace wrote into \(fixture.path). Ring 0 is quarantined: it is no longer read (48 published bytes \
            left unread), the other rings keep draining; stop the process writing into \(fixture.path), and trace \
            again for a complete record
            """, "\(d.name)")
        // The record before the damage (at 48) was delivered, counted and consumed.
        #expect(fixture.drainer.statistics[0].recorded == 1, "\(d.name)")
        #expect(fixture.consumed(0) == 72, "\(d.name)")
        #expect(fixture.drainer.quarantinedRings[0]?.message == error.message, "\(d.name)")
        #expect(fixture.drainer.statistics[0].quarantined == 1 && fixture.drainer.statistics[0].hidden == 48, "\(d.name)")
        // The ring is quarantined: a second round neither reads it again nor throws again, and
        // delivers nothing twice.
        #expect(try fixture.drain(quiescent: true).isEmpty, "\(d.name)")
        #expect(fixture.drainer.statistics[0].recorded == 1, "\(d.name)")
        #expect(fixture.consumed(0) == 72, "\(d.name)")
        #expect(fixture.drainer.totals.quarantined == 1, "\(d.name)")
    }

    /// Length damage that only the new rules reject: lengths that are not a multiple of 8 where one
    /// is required (padding, begin), or below the minimum of their kind.
    static let lengthRuleDamages: [(name: String, position: UInt64, word: RecordWord)] = [
        ("padding length 12, not a multiple of 8", 72, RecordWord(length: 12, kind: .padding, eventID: 0, lap: 0, busy: false)),
        ("padding length 20, not a multiple of 8", 72, RecordWord(length: 20, kind: .padding, eventID: 0, lap: 0, busy: false)),
        ("padding length 4, below 8", 72, RecordWord(length: 4, kind: .padding, eventID: 0, lap: 0, busy: false)),
        ("event length 15, below the 16-byte header", 72, RecordWord(length: 15, kind: .event, eventID: 5, lap: 0, busy: false)),
        ("event length 1", 72, RecordWord(length: 1, kind: .event, eventID: 5, lap: 0, busy: false)),
        ("begin record length 20 at a sub-buffer start", 0, RecordWord(length: 20, kind: .subbufferBegin, eventID: 0, lap: 0, busy: false)),
        ("begin record length 23 at a sub-buffer start", 0, RecordWord(length: 23, kind: .subbufferBegin, eventID: 0, lap: 0, busy: false)),
    ]

    @Test("unaligned padding or begin lengths, and lengths below a kind's minimum, are damage: .corrupted at that position",
          arguments: [BufferMode.discard, .overwrite], Array(0..<7))
    func lengthRuleViolationsAreDamage(mode: BufferMode, damage: Int) throws {
        let d = Self.lengthRuleDamages[damage]
        let fixture = try UnitTraceFixture("lenrule\(damage)-\(mode)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        mapped.ring(0).storeWord(at: d.position, d.word.rawValue, ordering: .releasing)
        var delivered: [UnitDrainedRecord] = []
        var thrown: TraceError?
        do {
            try fixture.drainer.drainOnce(quiescent: false) { record in
                delivered.append(UnitDrainedRecord(ring: record.ring, eventID: record.eventID, timestamp: record.timestamp,
                                                   position: record.position, bytes: record.bytes))
            }
        } catch {
            thrown = error
        }
        let error = try #require(thrown, "\(d.name): drainOnce did not throw")
        #expect(error.code == .corrupted, "\(d.name)")
        #expect(error.message.hasPrefix("ring 0 of trace '\(fixture.buffer.name)' is damaged at position \(d.position): record length "),
                "\(d.name): \(error.message)")
        #expect(error.message.contains(" crosses its sub-buffer or the head; something other than RseqTrace wrote into \(fixture.path)"),
                "\(d.name): \(error.message)")
        // Exactly the records before the damage were delivered, counted and consumed.
        let before = d.position == 72 ? 1 : 0
        #expect(delivered.map(\.sequence) == Array(UInt64(1)..<UInt64(1 + before)), "\(d.name)")
        #expect(fixture.drainer.statistics[0].recorded == UInt64(before), "\(d.name)")
        #expect(fixture.consumed(0) == (d.position == 72 ? 72 : 0), "\(d.name)")
    }

    @Test("a rejected length is reported as stored in the record word, not rounded up to 8",
          arguments: Array(0..<7))
    func rejectedLengthIsReportedAsStored(damage: Int) throws {
        let d = Self.lengthRuleDamages[damage]
        let fixture = try UnitTraceFixture("lenmsg\(damage)")
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        mapped.ring(0).storeWord(at: d.position, d.word.rawValue, ordering: .releasing)
        var thrown: TraceError?
        do { _ = try fixture.drain(quiescent: false) } catch { thrown = error }
        let error = try #require(thrown, "\(d.name): drainOnce did not throw")
        #expect(error.message.contains("at position \(d.position): record length \(d.word.length) "), "\(d.name): \(error.message)")
    }

    @Test("an event length that is not a multiple of 8 is valid: the reader gets exactly length - 16 payload bytes and the walk goes on",
          arguments: [BufferMode.discard, .overwrite], [17, 18, 20, 23])
    func unalignedEventLengthIsAccepted(mode: BufferMode, length: Int) throws {
        let fixture = try UnitTraceFixture("oddlen\(length)-\(mode)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        // The record at 72 (8-byte payload 2) now claims only `length - 16` bytes of payload; it
        // still occupies 24 bytes, so the next record stays at 96.
        let word = RecordWord(length: length, kind: .event, eventID: 5, lap: 0, busy: false)
        #expect(word.size == 24)
        mapped.ring(0).storeWord(at: 72, word.rawValue, ordering: .releasing)
        let drained = try fixture.drain(quiescent: false)
        #expect(drained.map(\.position) == [48, 72, 96])
        #expect(drained.map(\.eventID) == [5, 5, 5])
        #expect(drained.map(\.bytes) == [UnitTrace.littleEndian(1), UnitTrace.littleEndian(2, count: length - 16),
                                         UnitTrace.littleEndian(3)])
        #expect(fixture.drainer.statistics[0].recorded == 3)
        #expect(fixture.consumed(0) == 120)
        #expect(try fixture.drain(quiescent: true).isEmpty)
    }

    @Test("a busy word of an older lap is damage, not a record in progress")
    func staleBusyWordIsDamage() throws {
        let fixture = try UnitTraceFixture("stalebusy")
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        let stale = RecordWord(length: 24, kind: .event, eventID: 5, lap: 3, busy: true)
        mapped.ring(0).storeWord(at: 72, stale.rawValue, ordering: .releasing)
        var thrown: TraceError?
        do { _ = try fixture.drain(quiescent: false) } catch { thrown = error }
        #expect(thrown?.code == .corrupted)
        #expect(thrown?.message.contains("ring 0") == true)
        #expect(thrown?.message.contains("position 72: invalid record word") == true)
    }

    @Test("an event with no thread record before it in its sub-buffer is damage at the event, in every mode",
          arguments: [BufferMode.discard, .overwrite], [false, true])
    func eventWithoutThreadRecordIsDamage(mode: BufferMode, quiescent: Bool) throws {
        let fixture = try UnitTraceFixture("nothread-\(mode)-\(quiescent)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        // The thread record becomes padding of its size: the events after it name no writer.
        mapped.ring(0).storeWord(at: 24, RecordWord(length: 24, kind: .padding, eventID: 0, lap: 0, busy: false).rawValue,
                                 ordering: .releasing)
        var delivered: [UInt64] = []
        var thrown: TraceError?
        do {
            try fixture.drainer.drainOnce(quiescent: quiescent) { delivered.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        } catch {
            thrown = error
        }
        #expect(thrown?.code == .corrupted)
        #expect(thrown?.message.contains("""
            is damaged at position 48: event record with no thread record before it in its sub-buffer; something other \
            than RseqTrace wrote into
            """) == true, "\(thrown?.message ?? "no error")")
        #expect(delivered.isEmpty)
        #expect(fixture.drainer.statistics[0].recorded == 0)
        #expect(fixture.drainer.statistics[0].hidden == 72)
    }

    @Test("a thread record naming pid 0 and tid 0 is damage")
    func threadRecordNamingNoThreadIsDamage() throws {
        let fixture = try UnitTraceFixture("zerothread")
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        mapped.ring(0).storeWord(at: 40, 0, ordering: .releasing)
        var thrown: TraceError?
        do { _ = try fixture.drain(quiescent: false) } catch { thrown = error }
        #expect(thrown?.code == .corrupted)
        #expect(thrown?.message.contains("is damaged at position 24: thread record names no thread (pid and tid 0)") == true,
                "\(thrown?.message ?? "no error")")
        #expect(fixture.drainer.statistics[0].recorded == 0)
    }

    @Test("an overwrite ring whose CPU does not exist cannot be drained live: .systemCallFailed with EINVAL, the other rings are still drained")
    func missingCPURingIsReported() throws {
        let missing = (0..<64).last(where: { CPUPinner.isAllowed(cpu: $0) })! + 1
        let fixture = try UnitTraceFixture("nocpu", mode: .overwrite, cpuRingCount: missing + 1)
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for seq in UInt64(0)..<5 { #expect(fixture.producer.write(eventID: 1, value: seq)) }
        }
        var delivered: [UInt64] = []
        var thrown: TraceError?
        do {
            try fixture.drainer.drainOnce(quiescent: false) { delivered.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        } catch {
            thrown = error
        }
        #expect(thrown?.code == .systemCallFailed)
        #expect(thrown?.errno?.rawValue == EINVAL)
        #expect(thrown?.message.hasPrefix("ring \(missing): CPU \(missing) is offline or outside this thread's allowed CPUs") == true,
                "\(thrown?.message ?? "no error")")
        #expect(delivered == Array(0..<5))
        #expect(fixture.drainer.totals.recorded == 5)
        // Once producers are done, a quiescent drain needs no pinning.
        #expect(try fixture.drain(quiescent: true).isEmpty)
    }

    @Test("records before a damaged word are delivered, counted and consumed before .corrupted is thrown, and never delivered twice",
          arguments: [(BufferMode.discard, false), (.discard, true), (.overwrite, false), (.overwrite, true)])
    func recordsBeforeDamageAreAccounted(mode: BufferMode, quiescent: Bool) throws {
        let fixture = try UnitTraceFixture("damageacct-\(mode)-\(quiescent)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Self.threeRecords(fixture)
        mapped.ring(0).storeWord(at: 96, RecordWord(length: 4096, kind: .event, eventID: 5, lap: 0, busy: false).rawValue,
                                         ordering: .releasing)
        var delivered: [UInt64] = []
        do {
            try fixture.drainer.drainOnce(quiescent: quiescent) { delivered.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
            Issue.record("drainOnce did not throw")
        } catch {
            #expect(error.code == .corrupted)
            #expect(error.message.contains("is damaged at position 96: record length 4096 crosses its sub-buffer or the head"),
                    "\(error.message)")
        }
        #expect(delivered == [1, 2])
        #expect(fixture.drainer.statistics[0].recorded == 2, "callback saw \(delivered)")
        #expect(fixture.drainer.totals.recorded == 2)
        #expect(fixture.consumed(0) == 96)
        // The ring is quarantined: draining again does not read it (nor throw) and delivers nothing twice.
        var again: [UInt64] = []
        try fixture.drainer.drainOnce(quiescent: quiescent) { again.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        #expect(again.isEmpty)
        #expect(fixture.drainer.quarantinedRings[0]?.message.contains("position 96") == true)
        #expect(fixture.drainer.statistics[0].hidden == 24)
        #expect(fixture.drainer.statistics[0].recorded == 2)
        #expect(fixture.consumed(0) == 96)
    }
}
