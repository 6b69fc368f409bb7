import Testing
#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import Synchronization
@testable import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport

// Thread records (docs/BufferProtocol.md §2.1): every event is attributed to the (pid, tid) of the
// thread that wrote it. Each record written here carries its writer as the writer sees itself
// (`[pid << 32 | tid][sequence]`), so every check compares the reader's attribution with the truth.

/// Writing and checking self-describing records.
enum ThreadRecords {
    /// `pid << 32 | tid` of the calling thread, as it sees itself.
    static func me() -> UInt64 {
        UInt64(UInt32(bitPattern: getpid())) << 32 | UInt64(UInt32(truncatingIfNeeded: rseqtrace_gettid()))
    }

    /// Bytes of one record: a 16-byte payload after the 16-byte header.
    static let recordSize = 32

    /// How a record is written.
    enum API: CaseIterable, Sendable, CustomTestStringConvertible {
        /// `write(eventID:value:)`: the copy-commit sequence when no thread record is needed.
        case copyCommit
        /// `reserve`, `store`, `commit`.
        case reserveCommit

        var testDescription: String { self == .copyCommit ? "copy-commit" : "reserve/commit" }
    }

    /// Writes one record naming the calling thread; false when it was dropped.
    static func write(_ producer: Producer, _ api: API, sequence: UInt64) -> Bool {
        switch api {
        case .copyCommit:
            return producer.write(eventID: 7, value: (me(), sequence))
        case .reserveCommit:
            guard let reservation = producer.reserve(eventID: 7, payloadSize: 16) else { return false }
            reservation.store(me(), at: 0)
            reservation.store(sequence, at: 8)
            reservation.commit()
            return true
        }
    }

    /// A drained record: where it is, who the reader says wrote it, and who wrote it.
    struct Drained: Equatable, CustomStringConvertible {
        var ring: Int
        var position: UInt64
        var attributed: UInt64
        var written: UInt64
        var sequence: UInt64

        var description: String {
            "ring \(ring) @\(position) seq \(sequence): attributed to \(attributed >> 32)/\(attributed & 0xFFFF_FFFF), written by \(written >> 32)/\(written & 0xFFFF_FFFF)"
        }
    }

    /// One drain round of `drainer`.
    static func drain(_ drainer: TraceDrainer, quiescent: Bool) throws(TraceError) -> [Drained] {
        var records: [Drained] = []
        try drainer.drainOnce(quiescent: quiescent) { record in
            let attributed = UInt64(UInt32(bitPattern: record.processID)) << 32 | UInt64(UInt32(bitPattern: record.threadID))
            records.append(Drained(ring: record.ring, position: record.position, attributed: attributed,
                                   written: record.load(fromByteOffset: 0, as: UInt64.self),
                                   sequence: record.load(fromByteOffset: 8, as: UInt64.self)))
        }
        return records
    }

    /// The thread records in `[from, head)` of `ring`: position and the pid << 32 | tid they name.
    static func threadRecords(_ buffer: SharedTraceBuffer, ring index: Int, from: UInt64 = 0) -> [(position: UInt64, thread: UInt64)] {
        let ring = buffer.ring(index)
        var found: [(position: UInt64, thread: UInt64)] = []
        let walk = RecordWalk.run(layout: buffer.layout, from: from, to: ring.load(.head, ordering: .acquiring),
                                  word: { ring.loadWord(at: $0, ordering: .acquiring) },
                                  visit: { position, word, thread in if word.kind == .thread { found.append((position, thread)) } })
        #expect(walk.problem == nil, "\(walk.problem?.reason ?? "")")
        return found
    }

    /// Runs `body` on a new thread (pinned to `cpu` unless nil) and waits for it; false when the
    /// thread could not be pinned.
    static func onNewThread(cpu: Int?, _ body: @escaping @Sendable () -> Void) -> Bool {
        let pinned = Atomic<Bool>(true)
        WorkerThreads(count: 1) { _ in
            guard let cpu else { return body() }
            do {
                try UnitTrace.onCPU(cpu) { () throws(TraceError) in body() }
            } catch {
                pinned.store(false, ordering: .relaxed)
            }
        }.join()
        return pinned.load(ordering: .relaxed)
    }
}

@Suite("Thread identity: every event names its writer")
struct ThreadIdentityTests {
    @Test("threads taking turns on one ring: a thread record at each change of writer, each record attributed to its writer",
          arguments: ThreadRecords.API.allCases, [false, true])
    func turnsOnOneRing(api: ThreadRecords.API, slowLane: Bool) throws {
        let cpu = slowLane ? 1 : 0
        try #require(CPUPinner.isAllowed(cpu: cpu), "CPU \(cpu) is not available")
        let fixture = try UnitTraceFixture("turns-\(api)-\(slowLane)", cpuRingCount: slowLane ? 1 : nil)
        let producer = fixture.producer
        let ringIndex = slowLane ? fixture.layout.slowLaneRing : 0
        var mine: UInt64 = 0
        let other = Atomic<UInt64>(0)
        try UnitTrace.onCPU(cpu) { () throws(TraceError) in
            mine = ThreadRecords.me()
            for sequence in UInt64(0)..<3 { #expect(ThreadRecords.write(producer, api, sequence: sequence)) }
            let pinned = ThreadRecords.onNewThread(cpu: cpu) {
                other.store(ThreadRecords.me(), ordering: .relaxed)
                for sequence in UInt64(3)..<5 { _ = ThreadRecords.write(producer, api, sequence: sequence) }
            }
            #expect(pinned)
            for sequence in UInt64(5)..<7 { #expect(ThreadRecords.write(producer, api, sequence: sequence)) }
        }
        let them = other.load(ordering: .relaxed)
        #expect(them != mine && them >> 32 == mine >> 32)
        let drained = try ThreadRecords.drain(fixture.drainer, quiescent: true)
        // begin 0..<24, T(me) 24..<48, #0 #1 #2 at 48, 80, 112, T(other) 144..<168, #3 #4 at 168,
        // 200, T(me) 232..<256, #5 #6 at 256, 288; head 320.
        #expect(drained.map(\.sequence) == Array(0..<7))
        #expect(drained.map(\.position) == [48, 80, 112, 168, 200, 256, 288])
        #expect(drained.allSatisfy { $0.ring == ringIndex })
        #expect(drained.filter { $0.attributed != $0.written }.isEmpty, "\(drained)")
        #expect(drained.map(\.written) == [mine, mine, mine, them, them, mine, mine])
        let threads = ThreadRecords.threadRecords(fixture.buffer, ring: ringIndex)
        #expect(threads.map(\.position) == [24, 144, 232])
        #expect(threads.map(\.thread) == [mine, them, mine])
        #expect(fixture.head(ringIndex) == 320)
        #expect(fixture.drainer.totals.recorded == 7 && fixture.drainer.totals.lost == 0)
    }

    @Test("a reservation abandoned right after its thread record keeps the thread record: the writer's next record follows it without another",
          arguments: [false, true])
    func abandonedLeadKeepsTheThreadRecord(slowLane: Bool) throws {
        let cpu = slowLane ? 1 : 0
        try #require(CPUPinner.isAllowed(cpu: cpu), "CPU \(cpu) is not available")
        let fixture = try UnitTraceFixture("abandon-lead-\(slowLane)", cpuRingCount: slowLane ? 1 : nil)
        let producer = fixture.producer
        let ringIndex = slowLane ? fixture.layout.slowLaneRing : 0
        var mine: UInt64 = 0
        let other = Atomic<UInt64>(0)
        try UnitTrace.onCPU(cpu) { () throws(TraceError) in
            mine = ThreadRecords.me()
            #expect(ThreadRecords.write(producer, .copyCommit, sequence: 0))
            let pinned = ThreadRecords.onNewThread(cpu: cpu) {
                other.store(ThreadRecords.me(), ordering: .relaxed)
                // Reserved with a thread record before it, then dropped without a commit.
                _ = producer.reserve(eventID: 7, payloadSize: 16)
                _ = ThreadRecords.write(producer, .copyCommit, sequence: 1)
            }
            #expect(pinned)
        }
        let them = other.load(ordering: .relaxed)
        let drained = try ThreadRecords.drain(fixture.drainer, quiescent: false)
        // begin, T(me) 24, #0 48..<80, T(other) 80..<104, padding 104..<136, #1 136..<168.
        #expect(drained.map(\.position) == [48, 136])
        #expect(drained.map(\.attributed) == [mine, them])
        #expect(drained.map(\.written) == [mine, them])
        let mapped = fixture.buffer   // ring views borrow a local reference
        let ring = mapped.ring(ringIndex)
        #expect(RecordWord(rawValue: ring.loadWord(at: 80, ordering: .acquiring)) == RecordWord.threadRecord(lap: 0))
        #expect(RecordWord(rawValue: ring.loadWord(at: 104, ordering: .acquiring))
                == RecordWord(length: 32, kind: .padding, eventID: 0, lap: 0, busy: false))
        #expect(ThreadRecords.threadRecords(fixture.buffer, ring: ringIndex).map(\.position) == [24, 80])
        #expect(fixture.head(ringIndex) == 168)
    }

    /// Where the concurrent writers of `concurrentWriters` run.
    enum Placement: CaseIterable, Sendable, CustomTestStringConvertible {
        /// All pinned to CPU 0: rseq sequences on ring 0.
        case oneCPU
        /// All pinned to CPU 1 of a buffer with one CPU ring: the lock-free slow lane.
        case slowLane
        /// Unpinned, rings indexed by mm_cid.
        case concurrencyID

        var testDescription: String {
            switch self {
            case .oneCPU: "rseq, one CPU's ring"
            case .slowLane: "lock-free slow lane"
            case .concurrencyID: "rseq, mm_cid rings"
            }
        }
    }

    @Test("concurrent writers yielding to each other on one CPU: every record is attributed to the thread that wrote it",
          arguments: Placement.allCases)
    func concurrentWriters(placement: Placement) throws {
        if placement == .slowLane { try #require(CPUPinner.isAllowed(cpu: 1), "CPU 1 is not available") }
        if placement == .concurrencyID {
            try #require(RseqRuntime.status.supportsConcurrencyID, "mm_cid is not available")
        }
        let fixture = try UnitTraceFixture("concurrent-\(placement)", ringSize: 1 << 20, subbufferSize: 4096,
                                           indexing: placement == .concurrencyID ? .concurrencyID : .cpuID,
                                           cpuRingCount: placement == .slowLane ? 1 : nil)
        let producer = fixture.producer
        let threads = 3
        let events = 2000
        let ready = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
        let unpinned = Atomic<Int>(0)
        WorkerThreads(count: threads) { index in
            let work = {
                ready.wrappingAdd(1, ordering: .relaxed)
                while ready.load(ordering: .relaxed) < threads { sched_yield() }
                for sequence in 0..<UInt64(events) {
                    let api: ThreadRecords.API = (sequence + UInt64(index)) % 2 == 0 ? .copyCommit : .reserveCommit
                    if !ThreadRecords.write(producer, api, sequence: sequence) { refused.wrappingAdd(1, ordering: .relaxed) }
                    if sequence % 3 == 2 { sched_yield() }
                }
            }
            switch placement {
            case .oneCPU, .slowLane:
                do {
                    try UnitTrace.onCPU(placement == .oneCPU ? 0 : 1) { () throws(TraceError) in work() }
                } catch {
                    unpinned.wrappingAdd(1, ordering: .relaxed)
                    ready.wrappingAdd(1, ordering: .relaxed)
                }
            case .concurrencyID:
                work()
            }
        }.join()
        #expect(unpinned.load(ordering: .relaxed) == 0)
        #expect(refused.load(ordering: .relaxed) == 0)
        let drained = try ThreadRecords.drain(fixture.drainer, quiescent: true)
        #expect(drained.count == threads * events)
        let wrong = drained.filter { $0.attributed != $0.written }
        #expect(wrong.isEmpty, "\(wrong.count) misattributed, first: \(wrong.prefix(3))")
        let writers = Dictionary(grouping: drained, by: \.written)
        #expect(writers.count == threads)
        // On one ring a writer's records drain in the order written; on mm_cid rings a writer whose
        // concurrency id changed has records in several rings, drained ring by ring.
        #expect(writers.values.allSatisfy { records in
            let sequences = records.map(\.sequence)
            return records.count == events
                && (placement == .concurrencyID ? sequences.sorted() : sequences) == Array(0..<UInt64(events))
        })
        #expect(writers.keys.allSatisfy { $0 >> 32 == UInt64(getpid()) })
        if placement != .concurrencyID {
            let ringIndex = placement == .oneCPU ? 0 : fixture.layout.slowLaneRing
            #expect(drained.allSatisfy { $0.ring == ringIndex })
            // Every sub-buffer starts with its opener's thread record; every change of writer
            // within one adds one.
            let threadRecords = ThreadRecords.threadRecords(fixture.buffer, ring: ringIndex)
            let head = fixture.head(ringIndex)
            let subbuffers = Int((head + 4095) / 4096)
            var changes = 0
            for (previous, record) in zip(drained, drained.dropFirst())
            where previous.written != record.written && previous.position / 4096 == record.position / 4096 {
                changes += 1
            }
            #expect(threadRecords.count >= subbuffers + changes)
            #expect(Set(threadRecords.map(\.thread)) == Set(writers.keys))
        }
    }

    @Test("a thread that keeps its CPU writes exactly one thread record per sub-buffer, whatever API and size",
          arguments: [false, true])
    func oneThreadRecordPerSubbuffer(slowLane: Bool) throws {
        let cpu = slowLane ? 1 : 0
        try #require(CPUPinner.isAllowed(cpu: cpu), "CPU \(cpu) is not available")
        let fixture = try UnitTraceFixture("one-per-sub-\(slowLane)", ringSize: 1 << 20, subbufferSize: 4096,
                                           cpuRingCount: slowLane ? 1 : nil)
        let ringIndex = slowLane ? fixture.layout.slowLaneRing : 0
        var mine: UInt64 = 0
        var written = 0
        try UnitTrace.onCPU(cpu) { () throws(TraceError) in
            mine = ThreadRecords.me()
            for i in 0..<3000 {
                let size = i * 7 % 200
                let api = UnitWriteAPI.allCases[i % UnitWriteAPI.allCases.count]
                #expect(api.write(fixture.producer, eventID: 3, UnitTrace.pattern(i, count: size)))
                written += 1
            }
        }
        let head = fixture.head(ringIndex)
        #expect(head < UInt64(fixture.layout.ringSize), "the ring must not wrap")
        let threads = ThreadRecords.threadRecords(fixture.buffer, ring: ringIndex)
        let subbuffers = (head + 4095) / 4096
        #expect(threads.map(\.position) == (0..<subbuffers).map { $0 * 4096 + 24 })
        #expect(threads.allSatisfy { $0.thread == mine })
        var attributed = 0
        try fixture.drainer.drainOnce(quiescent: true) { record in
            if record.processID == getpid() && UInt64(UInt32(bitPattern: record.threadID)) == mine & 0xFFFF_FFFF {
                attributed += 1
            }
        }
        #expect(attributed == written)
    }

    @Test("overwrite mode: reading from a middle sub-buffer after the ring wrapped attributes every record",
          arguments: [false, true], [false, true])
    func overwriteFromMiddleSubbuffer(slowLane: Bool, quiescent: Bool) throws {
        let cpu = slowLane ? 1 : 0
        try #require(CPUPinner.isAllowed(cpu: cpu), "CPU \(cpu) is not available")
        let fixture = try UnitTraceFixture("ow-middle-\(slowLane)-\(quiescent)", mode: .overwrite,
                                           cpuRingCount: slowLane ? 1 : nil)
        let producer = fixture.producer
        // Writers take turns: this thread, then a new thread, 37 records each, 20 turns of 32-byte
        // records: about 3 laps of the 8 KiB ring.
        var writers: Set<UInt64> = []
        try UnitTrace.onCPU(cpu) { () throws(TraceError) in
            for turn in 0..<20 {
                let base = UInt64(turn * 37)
                if turn % 2 == 0 {
                    writers.insert(ThreadRecords.me())
                    for sequence in base..<(base + 37) { #expect(ThreadRecords.write(producer, .copyCommit, sequence: sequence)) }
                } else {
                    let other = Atomic<UInt64>(0)
                    #expect(ThreadRecords.onNewThread(cpu: cpu) {
                        other.store(ThreadRecords.me(), ordering: .relaxed)
                        for sequence in base..<(base + 37) { _ = ThreadRecords.write(producer, .reserveCommit, sequence: sequence) }
                    })
                    writers.insert(other.load(ordering: .relaxed))
                }
            }
        }
        let ringIndex = slowLane ? fixture.layout.slowLaneRing : 0
        #expect(fixture.head(ringIndex) > 2 * UInt64(fixture.layout.ringSize))
        let drained = try ThreadRecords.drain(fixture.drainer, quiescent: quiescent)
        // The oldest sub-buffers were recycled: reading starts in a middle one of the ring.
        #expect(!drained.isEmpty && drained.first!.sequence > 0)
        #expect(drained.first!.position % UInt64(fixture.layout.subbufferSize) == 48)
        #expect(drained.map(\.sequence) == Array(drained.first!.sequence..<740))
        #expect(drained.filter { $0.attributed != $0.written }.isEmpty)
        #expect(Set(drained.map(\.written)).isSubset(of: writers))
        #expect(fixture.drainer.totals.recorded + fixture.drainer.totals.overwritten == 740)
    }

    /// How `readerStartingInsideASubbuffer` drains.
    enum ReadKind: CaseIterable, Sendable, CustomTestStringConvertible {
        case discard, overwriteLive, overwriteQuiescent

        var mode: BufferMode { self == .discard ? .discard : .overwrite }
        var quiescent: Bool { self == .overwriteQuiescent }
        var testDescription: String {
            switch self {
            case .discard: "discard, live"
            case .overwriteLive: "overwrite, live"
            case .overwriteQuiescent: "overwrite, quiescent"
            }
        }
    }

    @Test("a read that starts inside a sub-buffer attributes its first records to the thread record before them: from the drainer's cursor, or found by a new drainer",
          arguments: ReadKind.allCases, [false, true])
    func readerStartingInsideASubbuffer(kind: ReadKind, slowLane: Bool) throws {
        let cpu = slowLane ? 1 : 0
        try #require(CPUPinner.isAllowed(cpu: cpu), "CPU \(cpu) is not available")
        let fixture = try UnitTraceFixture("inside-\(kind.mode)-\(kind.quiescent)-\(slowLane)", ringSize: 1 << 16,
                                           subbufferSize: 4096, mode: kind.mode, cpuRingCount: slowLane ? 1 : nil)
        let producer = fixture.producer
        let ringIndex = slowLane ? fixture.layout.slowLaneRing : 0
        let other = Atomic<UInt64>(0)
        var mine: UInt64 = 0
        var rounds: [[ThreadRecords.Drained]] = []
        try UnitTrace.onCPU(cpu) { () throws(TraceError) in
            #expect(ThreadRecords.onNewThread(cpu: cpu) {
                other.store(ThreadRecords.me(), ordering: .relaxed)
                for sequence in UInt64(0)..<5 { _ = ThreadRecords.write(producer, .copyCommit, sequence: sequence) }
            })
            mine = ThreadRecords.me()
            for sequence in UInt64(5)..<8 { #expect(ThreadRecords.write(producer, .copyCommit, sequence: sequence)) }
            rounds.append(try ThreadRecords.drain(fixture.drainer, quiescent: kind.quiescent))
            // Read from where the last round stopped, with the drainer's memory of the thread there.
            for sequence in UInt64(8)..<11 { #expect(ThreadRecords.write(producer, .reserveCommit, sequence: sequence)) }
            rounds.append(try ThreadRecords.drain(fixture.drainer, quiescent: kind.quiescent))
            // A new drainer starts inside the sub-buffer with no memory: it walks from its start.
            for sequence in UInt64(11)..<14 { #expect(ThreadRecords.write(producer, .copyCommit, sequence: sequence)) }
            rounds.append(try ThreadRecords.drain(TraceDrainer(buffer: fixture.buffer), quiescent: kind.quiescent))
        }
        let them = other.load(ordering: .relaxed)
        #expect(rounds.map { $0.map(\.sequence) } == [Array(0..<8), Array(8..<11), Array(11..<14)])
        let all = rounds.flatMap { $0 }
        #expect(all.map(\.attributed) == [UInt64](repeating: them, count: 5) + [UInt64](repeating: mine, count: 9))
        #expect(all.map(\.written) == all.map(\.attributed))
        // begin, T(other) 24, #0...#4 at 48...176, T(me) 208, #5... at 232 + 32 k.
        let positions: [UInt64] = [48, 80, 112, 144, 176] + (UInt64(0)..<9).map { 232 + 32 * $0 }
        #expect(all.map(\.position) == positions)
        #expect(all.allSatisfy { $0.ring == ringIndex })
        #expect(fixture.consumed(ringIndex) == fixture.head(ringIndex))
    }
}

@Suite("Thread identity across fork",
       .enabled(if: HelperProcess.isExecutable(HelperProcess.helperPath), "the test helper executable"))
struct ThreadIdentityForkTests {
    @Test("a forked child's records name the child, not the thread it was forked from; the parent's later records name the parent again; a second process writing next on the same ring names itself",
          .timeLimit(.minutes(1)), arguments: ProcessModeSetting.allCases)
    func forkChildHasItsOwnIdentity(setting: ProcessModeSetting) throws {
        let cpu = try #require((0..<1024).first { CPUPinner.isAllowed(cpu: $0) })
        let name = uniqueBufferName("fork-\(setting.rawValue)")
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 1 << 16, subbufferSize: 4096,
                                                                     mode: .discard))
        defer { buffer.removeName() }
        let events = 50
        // Two helper processes one after the other, on the same CPU: the second one's first record
        // follows the first one's last record on the same ring (their first threads must not
        // share a mark).
        var runs: [(parent: UInt64, child: UInt64)] = []
        for _ in 0..<2 {
            let outcome = try HelperProcess.runHelper(["fork-write", "--name", name, "--cpu", "\(cpu)", "--events", "\(events)"],
                                                      setting: setting.environment, timeout: .seconds(50))
            #expect(outcome.exitCode == 0, "\(outcome)")
            let fields = try #require(outcome.fields(of: "fork-write:"), "\(outcome)")
            let pid = try #require(fields["pid"].flatMap { UInt64($0) })
            let tid = try #require(fields["tid"].flatMap { UInt64($0) })
            let child = try #require(fields["child"].flatMap { UInt64($0) })
            #expect(child != pid)
            // The child is a process of its own whose only thread's tid is its pid.
            runs.append((pid << 32 | tid, child << 32 | child))
        }
        let drained = try ThreadRecords.drain(TraceDrainer(buffer: buffer), quiescent: true)
        #expect(drained.count == 6 * events)
        let wrong = drained.filter { $0.attributed != $0.written }
        #expect(wrong.isEmpty, "\(wrong.count) misattributed, first: \(wrong.prefix(3))")
        // In ring order: each run's parent before the fork (phase 0), its child (1), the parent again (2).
        var expected: [UInt64] = []
        for run in runs {
            expected += [UInt64](repeating: run.parent, count: events) + [UInt64](repeating: run.child, count: events)
                + [UInt64](repeating: run.parent, count: events)
        }
        #expect(drained.map(\.written) == expected)
        let phases = (0..<2).flatMap { _ in (UInt64(0)...2).flatMap { phase in (0..<UInt64(events)).map { phase << 32 | $0 } } }
        #expect(drained.map(\.sequence) == phases)
        #expect(Set(drained.map(\.ring)).count == 1)
    }
}
