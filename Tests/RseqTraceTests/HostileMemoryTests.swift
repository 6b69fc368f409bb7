import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats

// Another process of the same user can write anything into a trace object while it is drained.
// These tests scribble control words, record words, counters and the registry with extreme values
// (in this process, and from rseqtrace-testhelper's `hostile-producer`) and check that the consumer
// never traps, names the ring and the damaged field, quarantines only that ring, drains every
// other ring completely, and counts what the damage hides.

/// What the tests share.
enum Hostile {
    /// Two CPUs this process may run on: the victim ring's and a good ring's.
    static let cpus: [Int] = Array((0..<1024).filter { CPUPinner.isAllowed(cpu: $0) }.prefix(2))
    static var available: Bool { cpus.count == 2 }
    static var victim: Int { cpus[0] }
    static var good: Int { cpus[1] }

    /// Writes 8-byte records with sequence numbers `sequences` on `cpu`'s ring.
    static func write(_ fixture: UnitTraceFixture, cpu: Int, _ sequences: ClosedRange<UInt64>) throws {
        try UnitTrace.onCPU(cpu) { () throws(TraceError) in
            for sequence in sequences { #expect(fixture.producer.write(eventID: 5, value: sequence)) }
        }
    }

    /// One drain round: the records delivered and the error thrown, if any.
    static func drain(_ fixture: UnitTraceFixture, quiescent: Bool = false) -> (records: [UnitDrainedRecord], error: TraceError?) {
        var records: [UnitDrainedRecord] = []
        do {
            try fixture.drainer.drainOnce(quiescent: quiescent) { record in
                records.append(UnitDrainedRecord(ring: record.ring, eventID: record.eventID, timestamp: record.timestamp,
                                                 position: record.position, bytes: record.bytes))
            }
            return (records, nil)
        } catch {
            return (records, error)
        }
    }

    static func sequences(_ records: [UnitDrainedRecord], ring: Int) -> [UInt64] {
        records.filter { $0.ring == ring }.map(\.sequence)
    }

    /// Runs rseqtrace-testhelper `hostile-producer` once against `name`: the write comes from
    /// another process.
    static func scribbleFromAnotherProcess(name: String, ring: Int, field: String, value: UInt64, position: UInt64 = 0) throws {
        let run = try HelperProcess.runHelper(["hostile-producer", "--name", name, "--ring", "\(ring)", "--field", field,
                                               "--value", "\(value)", "--position", "\(position)"], timeout: .seconds(30))
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("hostile-producer: ring=\(ring) field=\(field) value=\(value)"), "\(run)")
    }
}

/// One impossible write into the victim ring after its first three records were read and three
/// more written (positions: begin record at 0, the writer's thread record at 24, records at 48, 72,
/// 96 read, `consumed` = 120; records at 120, 144, 168 unread, `head` = 192).
struct HostileScribble: CustomStringConvertible, Sendable {
    var name: String
    /// The control word written, or nil for the record word at `position`.
    var field: ControlField?
    var position: UInt64 = 0
    var value: UInt64
    /// What the error message must contain after "ring <victim> of trace '<name>' ".
    var expected: String
    /// Victim records (sequence numbers 4...6) still delivered before the damage.
    var deliveredBefore: [UInt64] = []
    /// Expected `hidden` bytes per mode (discard, overwrite).
    var hidden: (discard: UInt64, overwrite: UInt64) = (72, 72)
    /// Whether the write comes from rseqtrace-testhelper instead of this process.
    var crossProcess = false

    var description: String { name + (crossProcess ? " (another process)" : "") }

    var helperField: String {
        switch field {
        case ControlField.head?: "head"
        case ControlField.consumed?: "consumed"
        case ControlField.dropped?: "dropped"
        case ControlField.tooLarge?: "tooLarge"
        default: "word"
        }
    }

    static let intMaxPlusOne = UInt64(Int.max) + 1

    static let all: [HostileScribble] = [
        HostileScribble(name: "consumed = 0", field: .consumed, value: 0,
                        expected: "has an impossible consumed (offset 128 of its control block): consumed changed from 120 to 0"),
        HostileScribble(name: "consumed = UInt64.max", field: .consumed, value: .max,
                        expected: "consumed changed from 120 to 18446744073709551615"),
        HostileScribble(name: "consumed = Int.max + 1", field: .consumed, value: intMaxPlusOne,
                        expected: "consumed changed from 120 to 9223372036854775808"),
        HostileScribble(name: "consumed unaligned", field: .consumed, value: 121, expected: "consumed changed from 120 to 121"),
        HostileScribble(name: "consumed beyond the buffer", field: .consumed, value: 120 + 4 * 8192,
                        expected: "consumed changed from 120 to 32888"),
        // Jumping to the head would hide the three unread records without a trace.
        HostileScribble(name: "consumed jumps to head", field: .consumed, value: 192, expected: "consumed changed from 120 to 192"),
        HostileScribble(name: "consumed jumps to head", field: .consumed, value: 192, expected: "consumed changed from 120 to 192",
                        crossProcess: true),
        HostileScribble(name: "head = 0", field: .head, value: 0,
                        expected: "has an impossible head (offset 0 of its control block): head went backwards from 120 to 0"),
        HostileScribble(name: "head = 0", field: .head, value: 0, expected: "head went backwards from 120 to 0", crossProcess: true),
        HostileScribble(name: "head = UInt64.max", field: .head, value: .max,
                        expected: "head 18446744073709551615 is not a position producers can reach"),
        HostileScribble(name: "head = Int.max + 1", field: .head, value: intMaxPlusOne,
                        expected: "head 9223372036854775808 is not a position producers can reach"),
        HostileScribble(name: "head unaligned", field: .head, value: 193, expected: "head 193 is not a position producers can reach"),
        // Beyond a ring in discard mode is impossible; in overwrite mode the head may be anywhere
        // ahead, and the records the reader then expects are missing.
        HostileScribble(name: "head beyond the buffer", field: .head, value: 120 + 8192 + 8,
                        expected: "", hidden: (72, 8192)),
        HostileScribble(name: "record word = 0", position: 144, value: 0,
                        expected: "is damaged at position 144: invalid record word 0x0", deliveredBefore: [4], hidden: (48, 48)),
        HostileScribble(name: "record word = UInt64.max", position: 144, value: .max,
                        expected: "is damaged at position 144: invalid record word 0xffffffffffffffff", deliveredBefore: [4],
                        hidden: (48, 48)),
        HostileScribble(name: "record word = UInt64.max", position: 144, value: .max,
                        expected: "is damaged at position 144: invalid record word 0xffffffffffffffff", deliveredBefore: [4],
                        hidden: (48, 48), crossProcess: true),
        HostileScribble(name: "record word = Int.max + 1", position: 144, value: intMaxPlusOne,
                        expected: "is damaged at position 144: invalid record word 0x8000000000000000", deliveredBefore: [4],
                        hidden: (48, 48)),
        HostileScribble(name: "record length beyond the buffer", position: 144,
                        value: RecordWord(length: 0xFF_FFFF, kind: .event, eventID: 5, lap: 0, busy: false).rawValue,
                        expected: "is damaged at position 144: record length 16777215 crosses its sub-buffer or the head",
                        deliveredBefore: [4], hidden: (48, 48)),
    ]
}

@Suite("Hostile shared memory: the consumer validates everything it reads",
       .enabled(if: Hostile.available, "two CPUs this process may run on"))
struct HostileMemoryTests {
    @Test("an impossible control or record word quarantines only its ring: typed error naming the ring and field, no trap, other rings fully drained, what it hides counted",
          arguments: [BufferMode.discard, .overwrite], HostileScribble.all)
    func scribbleQuarantinesTheRing(mode: BufferMode, scribble: HostileScribble) throws {
        let (victim, good) = (Hostile.victim, Hostile.good)
        let fixture = try UnitTraceFixture("hostile-\(mode)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Hostile.write(fixture, cpu: victim, 1...3)
        try Hostile.write(fixture, cpu: good, 101...103)
        let first = Hostile.drain(fixture)
        #expect(first.error == nil)
        #expect(Hostile.sequences(first.records, ring: victim) == [1, 2, 3])
        #expect(Hostile.sequences(first.records, ring: good) == [101, 102, 103])
        try Hostile.write(fixture, cpu: victim, 4...6)
        try Hostile.write(fixture, cpu: good, 104...106)
        #expect(fixture.consumed(victim) == 120 && fixture.head(victim) == 192)

        if scribble.crossProcess {
            try Hostile.scribbleFromAnotherProcess(name: fixture.buffer.name, ring: victim, field: scribble.helperField,
                                                   value: scribble.value, position: scribble.position)
        } else if let field = scribble.field {
            mapped.ring(victim).store(field, scribble.value, ordering: .releasing)
        } else {
            mapped.ring(victim).storeWord(at: scribble.position, scribble.value, ordering: .releasing)
        }

        let second = Hostile.drain(fixture)
        let error = try #require(second.error, "\(scribble): the damage was not reported")
        #expect(error.code == .corrupted)
        #expect(error.message.hasPrefix("ring \(victim) of trace '\(fixture.buffer.name)' "), "\(error.message)")
        if scribble.name == "head beyond the buffer" {
            let expected = mode == .discard
                ? "has an impossible head (offset 0 of its control block): head 8320 is more than one ring (8192 bytes) beyond consumed 120"
                : "is damaged at position 1024: invalid record word 0x0"
            #expect(error.message.contains(expected), "\(error.message)")
        } else {
            #expect(error.message.contains(scribble.expected), "\(error.message)")
        }
        #expect(error.message.contains("Ring \(victim) is quarantined"), "\(error.message)")
        #expect(error.message.contains("stop the process writing into \(fixture.path)"), "\(error.message)")
        // The other ring was drained in the same round, completely.
        #expect(Hostile.sequences(second.records, ring: good) == [104, 105, 106])
        #expect(Hostile.sequences(second.records, ring: victim) == scribble.deliveredBefore)
        #expect(fixture.drainer.quarantinedRings.keys.sorted() == [victim])
        #expect(fixture.drainer.quarantinedRings[victim]?.message == error.message)
        let stats = fixture.drainer.statistics[victim]
        #expect(stats.quarantined == 1)
        #expect(stats.hidden == (mode == .discard ? scribble.hidden.discard : scribble.hidden.overwrite), "\(stats)")
        #expect(stats.recorded == 3 + UInt64(scribble.deliveredBefore.count))

        // Later rounds skip the quarantined ring without throwing and keep draining the others.
        try Hostile.write(fixture, cpu: good, 107...109)
        let third = Hostile.drain(fixture)
        #expect(third.error == nil, "\(String(describing: third.error))")
        #expect(third.records.map(\.sequence) == [107, 108, 109])
        let last = Hostile.drain(fixture, quiescent: true)
        #expect(last.error == nil && last.records.isEmpty)
        let totals = fixture.drainer.totals
        #expect(totals.quarantined == 1)
        #expect(totals.recorded == 12 + UInt64(scribble.deliveredBefore.count))
        #expect(fixture.drainer.statistics[good].recorded == 9 && fixture.drainer.statistics[good].quarantined == 0)
        #expect(fixture.consumed(good) == fixture.head(good))
    }

    @Test("a begin record claiming an impossible loss is damage at its position, never summed",
          arguments: [(BufferMode.discard, UInt64(1)), (.discard, .max), (.overwrite, RecycleMarker.maximumLost + 1),
                      (.overwrite, .max), (.overwrite, HostileScribble.intMaxPlusOne)])
    func beginRecordLoss(mode: BufferMode, lost: UInt64) throws {
        let (victim, good) = (Hostile.victim, Hostile.good)
        let fixture = try UnitTraceFixture("hostile-begin-\(mode)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Hostile.write(fixture, cpu: victim, 1...3)
        try Hostile.write(fixture, cpu: good, 101...103)
        mapped.ring(victim).storeWord(at: 16, lost, ordering: .releasing)
        let drained = Hostile.drain(fixture)
        let error = try #require(drained.error)
        #expect(error.message.contains("ring \(victim) of trace '\(fixture.buffer.name)' is damaged at position 0: sub-buffer begin record claims \(lost) lost records"),
                "\(error.message)")
        #expect(Hostile.sequences(drained.records, ring: good) == [101, 102, 103])
        #expect(drained.records.allSatisfy { $0.ring == good })
        #expect(fixture.drainer.totals.overwritten == 0)
        #expect(fixture.drainer.statistics[victim].hidden == 120)
    }

    @Test("counters at UInt64.max saturate the totals instead of trapping; nothing is quarantined",
          arguments: [false, true])
    func countersSaturate(crossProcess: Bool) throws {
        let (victim, good) = (Hostile.victim, Hostile.good)
        let fixture = try UnitTraceFixture("hostile-counters")
        let mapped = fixture.buffer   // ring views borrow a local reference
        try Hostile.write(fixture, cpu: victim, 1...3)
        try Hostile.write(fixture, cpu: good, 101...103)
        let writes: [(Int, String, ControlField)] = [(victim, "dropped", .dropped), (good, "dropped", .dropped),
                                                     (victim, "tooLarge", .tooLarge), (good, "tooLarge", .tooLarge)]
        for (ring, name, field) in writes {
            if crossProcess {
                try Hostile.scribbleFromAnotherProcess(name: fixture.buffer.name, ring: ring, field: name, value: .max)
            } else {
                mapped.ring(ring).store(field, .max, ordering: .relaxed)
            }
        }
        let drained = Hostile.drain(fixture)
        #expect(drained.error == nil)
        #expect(drained.records.count == 6)
        let totals = fixture.drainer.totals
        #expect(totals.dropped == .max && totals.tooLarge == .max && totals.lost == .max)
        #expect(fixture.drainer.statistics[victim].lost == .max)
        #expect(totals.recorded == 6 && totals.quarantined == 0)
    }

    @Test("overwrite mode: a recycle marker declaring a sub-buffer dead with fewer losses than its unread records is damage; one that counts them is a loss",
          arguments: [UInt64(0), 39, 40, 1000])
    func recycleMarkerMustCoverTheRecordsItSkips(lost: UInt64) throws {
        let (victim, good) = (Hostile.victim, Hostile.good)
        let fixture = try UnitTraceFixture("hostile-marker", mode: .overwrite)
        let mapped = fixture.buffer   // ring views borrow a local reference
        // 40 records fill a sub-buffer (after its begin and thread records): 290 records leave the
        // ring's last one open, and the next opening (at 8192) recycles slot 0.
        try Hostile.write(fixture, cpu: victim, 1...290)
        try Hostile.write(fixture, cpu: good, 1001...1003)
        #expect(fixture.head(victim) == 7456)
        mapped.ring(victim).store(ControlField.recycleMarker(slot: 0), RecycleMarker(tag: 8, lost: lost).rawValue,
                                  ordering: .releasing)
        let drained = Hostile.drain(fixture, quiescent: true)
        #expect(Hostile.sequences(drained.records, ring: good) == [1001, 1002, 1003])
        if lost < 40 {
            let error = try #require(drained.error)
            #expect(error.message.contains("""
                ring \(victim) of trace '\(fixture.buffer.name)' has an impossible recycle marker of slot 0 (offset 512 of its \
                control block): it declares sub-buffer 0 recycled with \(lost) lost records, but 40 unread records are still in it
                """), "\(error.message)")
            #expect(Hostile.sequences(drained.records, ring: victim).isEmpty)
            #expect(fixture.drainer.statistics[victim].hidden == 7456)
            #expect(fixture.drainer.quarantinedRings.keys.sorted() == [victim])
        } else {
            #expect(drained.error == nil)
            #expect(Hostile.sequences(drained.records, ring: victim) == Array(41...290))
            #expect(fixture.drainer.statistics[victim].overwritten == lost)
            #expect(fixture.drainer.totals.quarantined == 0)
        }
    }

    @Test("the lock-free slow lane's head and consumed are checked like the others: quarantine naming the word, the CPU rings drained",
          arguments: [BufferMode.discard, .overwrite],
                     [(ControlField.head, UInt64.max, "head 18446744073709551615 is not a position producers can reach"),
                      (.head, HostileScribble.intMaxPlusOne, "head 9223372036854775808 is not a position producers can reach"),
                      (.head, 3, "head 3 is not a position producers can reach"),
                      (.consumed, .max, "consumed 18446744073709551615 is not 8-byte aligned or is beyond head 0"),
                      (.consumed, 4096, "consumed 4096 is not 8-byte aligned or is beyond head 0")])
    func slowLanePositions(mode: BufferMode, scribble: (field: ControlField, value: UInt64, expected: String)) throws {
        let good = Hostile.good
        let fixture = try UnitTraceFixture("hostile-slowlane-\(mode)", mode: mode)
        let mapped = fixture.buffer   // ring views borrow a local reference
        let slowLane = fixture.layout.slowLaneRing
        try Hostile.write(fixture, cpu: good, 1...3)
        mapped.ring(slowLane).store(scribble.field, scribble.value, ordering: .releasing)
        let drained = Hostile.drain(fixture, quiescent: true)
        let error = try #require(drained.error)
        #expect(error.message.hasPrefix("ring \(slowLane) of trace '\(fixture.buffer.name)' has an impossible \(scribble.field.name)"),
                "\(error.message)")
        #expect(error.message.contains(scribble.expected), "\(error.message)")
        #expect(Hostile.sequences(drained.records, ring: good) == [1, 2, 3])
        #expect(fixture.drainer.quarantinedRings.keys.sorted() == [slowLane])
        #expect(Hostile.drain(fixture, quiescent: true).error == nil)
    }

    @Test("a counter at UInt64.max after resetCounters took counts out saturates the drainer's totals")
    func counterAfterResetSaturates() throws {
        let victim = Hostile.victim
        let fixture = try UnitTraceFixture("hostile-reset")
        let mapped = fixture.buffer   // ring views borrow a local reference
        mapped.ring(victim).store(.dropped, 5, ordering: .relaxed)
        try fixture.drainer.resetCounters()
        #expect(fixture.drainer.statistics[victim].dropped == 5)
        mapped.ring(victim).store(.dropped, .max, ordering: .relaxed)
        fixture.drainer.refreshCounters()
        #expect(fixture.drainer.statistics[victim].dropped == .max)
        #expect(fixture.drainer.totals.lost == .max)
    }

    /// Byte offsets inside the registry region of the first entry's fields.
    static let registryScribbles: [(name: String, offset: Int, bytes: [UInt8], expected: String)] = [
        ("entry length 0xFFFFFFFF", 0, [0xFF, 0xFF, 0xFF, 0xFF], "event registry entry at offset 0: invalid length 4294967295"),
        ("entry length 0", 0, [0, 0, 0, 0], "event registry entry at offset 0: invalid length 0"),
        ("field count 255", 6, [0xFF], "event registry entry at offset 0: field"),
        ("name length 255", 7, [0xFF], "event registry entry at offset 0: name runs past the entry"),
    ]

    @Test("a registryUsed beyond the registry, unaligned or above Int.max is a typed error, not a trap",
          arguments: [UInt64.max, HostileScribble.intMaxPlusOne, UInt64(TraceLayout.registrySize + 8), 12])
    func registryUsedIsChecked(used: UInt64) throws {
        let fixture = try UnitTraceFixture("hostile-regused")
        _ = try fixture.buffer.registerEvent(EventSchema(name: "h:e", fields: [EventField("v", .uint64)]))
        let buffer = fixture.buffer
        // SAFETY: registryUsed is an 8-aligned word of the mapped header.
        unsafe buffer.base.sharedWord64(at: HeaderField.registryUsed.rawValue).pointee.store(used, ordering: .releasing)
        for attempt in ["read", "register"] {
            var thrown: TraceError?
            do {
                if attempt == "read" {
                    _ = try buffer.registeredEvents()
                } else {
                    _ = try buffer.registerEvent(EventSchema(name: "h:f", fields: []))
                }
            } catch {
                thrown = error
            }
            #expect(thrown?.code == .corrupted, "\(attempt)")
            #expect(thrown?.message.contains("event registry of '\(buffer.name)' claims \(used) bytes (registryUsed") == true,
                    "\(attempt): \(thrown?.message ?? "no error")")
        }
    }

    @Test("a malformed registry entry is a typed error; a recorder goes on with events written without their schema",
          arguments: Array(0..<4))
    func registryEntryIsChecked(index: Int) throws {
        let scribble = Self.registryScribbles[index]
        let fixture = try UnitTraceFixture("hostile-regentry")
        let id = try fixture.buffer.registerEvent(EventSchema(name: "h:e", fields: [EventField("v", .uint64)]))
        let buffer = fixture.buffer
        for (i, byte) in scribble.bytes.enumerated() {
            // SAFETY: inside the mapped registry region (offsets below 8 of its first entry).
            unsafe buffer.base.storeBytes(of: byte, toByteOffset: TraceLayout.registryOffset + scribble.offset + i, as: UInt8.self)
        }
        var thrown: TraceError?
        do { _ = try buffer.registeredEvents() } catch { thrown = error }
        #expect(thrown?.code == .corrupted)
        #expect(thrown?.message.hasPrefix(scribble.expected) == true, "\(scribble.name): \(thrown?.message ?? "no error")")
        #expect(thrown?.message.contains("of the event registry of '\(buffer.name)'") == true)

        let output = CTFEndToEndTests.temporaryDirectory("hostile-registry-\(index)")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        try CTFTraceWriter.prepareDirectory(output)
        let recorder = try TraceRecorder(buffer: buffer, output: output, traceName: "hostile", procname: "hostile", pid: getpid())
        #expect(recorder.registryProblem?.code == .corrupted)
        try UnitTrace.onCPU(Hostile.good) { () throws(TraceError) in
            for sequence in UInt64(1)...3 { #expect(fixture.producer.write(eventID: id, value: sequence)) }
        }
        #expect(try recorder.round() == 3)
        let summary = try #require(try recorder.finish())
        #expect(summary.events == 3)
    }

    @Test("a damaged registry that cannot take metrics:counter costs the counter samples, in every round, not the recording")
    func counterSamplesWithoutARegistry() throws {
        let fixture = try UnitTraceFixture("hostile-regcounter")
        let buffer = fixture.buffer
        let id = try buffer.registerEvent(EventSchema(name: "h:e", fields: [EventField("v", .uint64)]))
        // A counter registered without its sample event (a producer that stopped between the two).
        let slot = try buffer.registerCounter(named: "requests")
        // SAFETY: `slot` was registered just above.
        let counter = unsafe TraceCounter(name: "requests", slot: slot, buffer: buffer)
        let scribble = Self.registryScribbles[0]
        for (i, byte) in scribble.bytes.enumerated() {
            // SAFETY: inside the mapped registry region (offsets below 8 of its first entry).
            unsafe buffer.base.storeBytes(of: byte, toByteOffset: TraceLayout.registryOffset + scribble.offset + i, as: UInt8.self)
        }
        let output = CTFEndToEndTests.temporaryDirectory("hostile-regcounter")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        try CTFTraceWriter.prepareDirectory(output)
        let recorder = try TraceRecorder(buffer: buffer, output: output, traceName: "hostile", procname: "hostile", pid: getpid())
        var recorded = 0
        for round in UInt64(0)..<3 {
            counter.increment(by: 5)
            try UnitTrace.onCPU(Hostile.good) { () throws(TraceError) in
                #expect(fixture.producer.write(eventID: id, value: round))
            }
            recorded += try recorder.round()
        }
        #expect(recorded == 3)
        #expect(recorder.registryProblem?.code == .corrupted)
        let summary = try #require(try recorder.finish())
        #expect(summary.events == 3, "no metrics:counter sample among the events")
        #expect(counter.value == 15)
    }
}

@Suite("Hostile shared memory: rseqtrace record",
       .enabled(if: Hostile.available && HelperProcess.isExecutable(HelperProcess.rseqtracePath)
                    && HelperProcess.isExecutable(HelperProcess.helperPath),
                "two CPUs and the rseqtrace and helper executables"))
struct HostileRecordTests {
    @Test("record: another process moves a ring's head backwards: exit 1 naming the ring, quarantined=1, every other record in the trace",
          .timeLimit(.minutes(2)), arguments: ["discard", "overwrite"])
    func recordQuarantines(mode: String) throws {
        let (victim, good) = (Hostile.victim, Hostile.good)
        let output = CTFEndToEndTests.temporaryDirectory("hostile-record-\(mode)")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        let run = try HelperProcess.runRseqtrace(
            ["record", "--mode", mode, "--interval-ms", "1", "--output", output, "--", HelperProcess.helperPath, "hostile-producer",
             "--ring", "\(victim)", "--good", "\(good)", "--events", "20", "--field", "head", "--value", "0"],
            timeout: .seconds(100))
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stdout.contains("hostile-producer: written=60"), "\(run)")
        #expect(run.stderr.contains("error: ring \(victim) of trace '"), "\(run)")
        #expect(run.stderr.contains("has an impossible head (offset 0 of its control block): head went backwards from"), "\(run)")
        #expect(run.stderr.contains("Ring \(victim) is quarantined"), "\(run)")
        let summary = try #require(run.stdoutLines.last.flatMap(RecordSummary.init), "\(run)")
        #expect(summary.number("quarantined") == 1)
        #expect(summary.number("recorded") == 60)
        #expect(summary.number("lost") == 0)
        #expect(summary.number("hidden_bytes") == 0)
        #expect(summary.number("exit_status") == 0)
        #expect(UnitTrace.exists(output + "/metadata"))
    }
}
