import Testing
#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import Synchronization

/// A producer process that dies between reserve and commit must not stall a live drain: once its
/// thread is certainly gone, the drain replaces its busy record with padding, counts it abandoned
/// and reads on, while other producer processes keep writing into the same ring. A producer that is
/// only stopped is never treated so (docs/BufferProtocol.md §4.6).
@Suite("Records of producers that died", .serialized)
struct AbandonedRecordTests {
    /// What a test's live drains delivered.
    struct Delivered {
        /// Payloads of event 7 (the dying or stopped helper), in ring order.
        var helperPayloads: [UInt64] = []
        /// Records of event 8 (the writers) per tag.
        var writerRecords: [UInt64: Int] = [:]
        /// Records that were not on the ring every producer was pinned to.
        var elsewhere = 0
    }

    /// The first CPU this process may run on: every producer of a test is pinned there, so all
    /// records land in one ring.
    static func producerCPU() throws -> Int32 {
        #expect(rtts_affinity_snapshot() >= 1)
        let cpu = rtts_allowed_cpu(0)
        try #require(cpu >= 0)
        return cpu
    }

    /// Drains `drainer` live once, adding what it delivered to `delivered`.
    static func drainLive(_ drainer: TraceDrainer, ring: Int32, into delivered: inout Delivered) throws {
        try drainer.drainOnce { record in
            if record.ring != Int(ring) { delivered.elsewhere += 1 }
            let value = record.load(fromByteOffset: 0, as: UInt64.self)
            switch record.eventID {
            case 7: delivered.helperPayloads.append(value)
            case 8: delivered.writerRecords[value >> 32, default: 0] += 1
            default: break
            }
        }
    }

    /// Starts the two writer processes (tags 1 and 2) pinned to `cpu`, with `setting` in their environment.
    static func startWriters(name: String, cpu: Int32, events: Int, pauseMicroseconds: Int,
                             setting: [String: String] = [:]) throws -> [ChildProcess] {
        try [1, 2].map { tag in
            try HelperProcess.start(HelperProcess.helperPath,
                                    ["keep-writing", "--name", name, "--cpu", "\(cpu)", "--events", "\(events)",
                                     "--tag", "\(tag)", "--pause-us", "\(pauseMicroseconds)"],
                                    environment: HelperProcess.childEnvironment(setting))
        }
    }

    /// How the dying producer reserves its last record, and which protocol every producer uses.
    enum Variant: String, CaseIterable, CustomStringConvertible {
        /// rseq ring, a busy event (owner: the thread record before it).
        case event
        /// rseq ring, a busy lead (owner: its body, `ok` set).
        case lead
        /// Producers in fallback mode: the slow lane (lock-free), a busy event.
        case fallbackEvent
        /// Producers in fallback mode: the slow lane (lock-free), a busy lead.
        case fallbackLead
        var description: String { rawValue }
        var lead: Bool { self == .lead || self == .fallbackLead }
        var setting: [String: String] {
            self == .fallbackEvent || self == .fallbackLead ? ProcessModeSetting.forcedFallback.environment : [:]
        }
    }

    /// Waits for a writer, returning how many records it stored.
    static func storedCount(_ writer: ChildProcess) throws -> Int {
        let outcome = writer.wait(timeout: .seconds(60))
        #expect(outcome.exitedCleanly, "\(outcome)")
        let fields = try #require(outcome.fields(of: "keep-writing:"), "\(outcome)")
        return try #require(fields["stored"].flatMap { Int($0) })
    }

    @Test("a producer SIGKILLed mid-record while two others write into its ring: the live drain recovers its record once and keeps delivering",
          .timeLimit(.minutes(2)),
          arguments: [BufferMode.discard, .overwrite], Variant.allCases)
    func killedProducerDoesNotStall(mode: BufferMode, variant: Variant) throws {
        let cpu = try Self.producerCPU()
        let lead = variant.lead
        let name = "rseqtrace-test-abandon-\(mode)-\(variant)-\(getpid())"
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 1 << 16, subbufferSize: 4096,
                                                                     mode: mode))
        // Fallback producers write every record into the slow lane.
        let ring = variant.setting.isEmpty ? cpu : Int32(buffer.layout.slowLaneRing)
        let drainer = TraceDrainer(buffer: buffer)
        var delivered = Delivered()
        let helperEvents = 10
        var arguments = ["die-mid-record", "--name", name, "--events", "\(helperEvents)", "--cpu", "\(cpu)"]
        if lead { arguments.append("--lead") }
        let died = try HelperProcess.runHelper(arguments, setting: variant.setting, timeout: .seconds(30))
        #expect(died.signal == SIGKILL, "\(died)")
        #expect(died.stdout.contains("die-mid-record: committed=\(helperEvents) reserved=1"), "\(died)")

        let writerEvents = 20_000
        let writers = try Self.startWriters(name: name, cpu: cpu, events: writerEvents, pauseMicroseconds: 500,
                                            setting: variant.setting)
        while writers.contains(where: { !$0.hasExited }) {
            try Self.drainLive(drainer, ring: ring, into: &delivered)
            usleep(2000)
        }
        let stored = try writers.map { try Self.storedCount($0) }
        // Live rounds only: everything the writers stored arrives, past the dead record.
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while delivered.writerRecords.values.reduce(0, +) + Int(drainer.totals.overwritten) < stored.reduce(0, +)
                && ContinuousClock.now < deadline {
            try Self.drainLive(drainer, ring: ring, into: &delivered)
            usleep(2000)
        }
        let totals = drainer.totals
        #expect(totals.abandoned == 1, "\(totals)")
        #expect(drainer.statistics[Int(ring)].abandoned == 1)
        #expect(delivered.elsewhere == 0)
        let expectedHelper = lead ? Array(0..<UInt64(helperEvents)) + [1 << 32] : Array(0..<UInt64(helperEvents))
        #expect(delivered.helperPayloads == expectedHelper)
        if mode == .discard {
            // Nothing is overwritten in discard mode: every stored record is delivered.
            #expect(delivered.writerRecords[1, default: 0] == stored[0], "\(totals)")
            #expect(delivered.writerRecords[2, default: 0] == stored[1], "\(totals)")
        } else {
            #expect(delivered.writerRecords[1, default: 0] + delivered.writerRecords[2, default: 0]
                    == stored.reduce(0, +) - Int(totals.overwritten), "\(totals)")
        }
        let emitted = UInt64(expectedHelper.count + 1 + 2 * writerEvents)
        #expect(totals.recorded + totals.lost == emitted, "\(totals)")
        if mode == .overwrite {
            // Producers recycle the recovered record's sub-buffer again: two more laps of records,
            // not drained meanwhile, overwrite old ones and drop none (only a busy record, which
            // blocks recycling, could make them drop).
            drainer.refreshCounters()
            let droppedBefore = drainer.totals.dropped
            let laps = try HelperProcess.runHelper(["keep-writing", "--name", name, "--cpu", "\(cpu)",
                                                   "--events", "6000", "--tag", "3"],
                                                  setting: variant.setting, timeout: .seconds(60))
            #expect(laps.fields(of: "keep-writing:")?["stored"] == "6000", "\(laps)")
            try Self.drainLive(drainer, ring: ring, into: &delivered)
            #expect(drainer.totals.dropped == droppedBefore, "\(drainer.totals)")
            #expect(drainer.totals.overwritten > totals.overwritten, "\(drainer.totals)")
            #expect(drainer.totals.abandoned == 1)
            #expect(drainer.totals.recorded + drainer.totals.lost == emitted + 6000, "\(drainer.totals)")
            return
        }
        // The final quiescent drain finds nothing more, and no second abandoned record.
        var after = Delivered()
        try drainer.drainOnce(quiescent: true) { record in after.helperPayloads.append(record.load(fromByteOffset: 0, as: UInt64.self)) }
        #expect(after.helperPayloads.isEmpty)
        #expect(drainer.totals.abandoned == 1)
        #expect(drainer.totals.recorded + drainer.totals.lost == emitted, "\(drainer.totals)")
    }

    /// The state letter of process `pid` (`/proc/<pid>/stat` field 3), or nil.
    static func processState(_ pid: Int32) -> Character? {
        guard let stat = SystemInfo.readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ").first?.first
    }

    @Test("a producer stopped with SIGSTOP for 2 s with a reservation open is never recovered: its record is delivered after SIGCONT",
          .timeLimit(.minutes(2)),
          arguments: [BufferMode.discard, .overwrite], [false, true])
    func stoppedProducerIsNotRecovered(mode: BufferMode, fallback: Bool) throws {
        let cpu = try Self.producerCPU()
        let name = "rseqtrace-test-stopped-\(mode)-\(fallback)-\(getpid())"
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 1 << 16, subbufferSize: 4096,
                                                                     mode: mode))
        let setting = fallback ? ProcessModeSetting.forcedFallback.environment : [:]
        let ring = fallback ? Int32(buffer.layout.slowLaneRing) : cpu
        let drainer = TraceDrainer(buffer: buffer)
        drainer.abandonmentDelay = .milliseconds(10)
        var delivered = Delivered()
        let helperEvents = 10
        let stopped = try HelperProcess.start(HelperProcess.helperPath,
                                              ["die-mid-record", "--name", name, "--events", "\(helperEvents)",
                                               "--cpu", "\(cpu)", "--stop"],
                                              environment: HelperProcess.childEnvironment(setting))
        var waited = 0
        while Self.processState(stopped.pid) != "T" && waited < 10_000 {
            usleep(1000)
            waited += 1
        }
        try #require(Self.processState(stopped.pid) == "T")
        let writerEvents = 1000
        let writers = try Self.startWriters(name: name, cpu: cpu, events: writerEvents, pauseMicroseconds: 0,
                                            setting: setting)
        // Two seconds of live rounds while it is stopped: its record stays, nothing passes it.
        let held = ContinuousClock.now.advanced(by: .seconds(2))
        while ContinuousClock.now < held {
            try Self.drainLive(drainer, ring: ring, into: &delivered)
            usleep(5000)
        }
        #expect(drainer.totals.abandoned == 0)
        // A lock-free ring delivers only whole committed sub-buffers: the helper's records wait too.
        #expect(delivered.helperPayloads == (fallback ? [] : Array(0..<UInt64(helperEvents))))
        #expect(delivered.writerRecords.isEmpty, "\(delivered.writerRecords)")
        let stored = try writers.map { try Self.storedCount($0) }
        stopped.signal(SIGCONT)
        let resumed = stopped.wait(timeout: .seconds(30))
        #expect(resumed.exitedCleanly, "\(resumed)")
        #expect(resumed.stdout.contains("die-mid-record: resumed committed=\(helperEvents + 1)"), "\(resumed)")
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while (delivered.helperPayloads.count < helperEvents + 1
               || delivered.writerRecords.values.reduce(0, +) + Int(drainer.totals.overwritten) < stored.reduce(0, +))
                && ContinuousClock.now < deadline {
            try Self.drainLive(drainer, ring: ring, into: &delivered)
            usleep(2000)
        }
        let totals = drainer.totals
        #expect(totals.abandoned == 0)
        #expect(delivered.elsewhere == 0)
        // Recycling waited for the stopped record, so nothing was overwritten in either mode.
        #expect(totals.overwritten == 0)
        #expect(delivered.helperPayloads == Array(0...UInt64(helperEvents)))
        #expect(delivered.writerRecords[1, default: 0] == stored[0], "\(totals)")
        #expect(delivered.writerRecords[2, default: 0] == stored[1], "\(totals)")
        #expect(totals.recorded + totals.lost == UInt64(helperEvents + 1 + 2 * writerEvents), "\(totals)")
    }

    @Test("a thread that exits with a reservation open while its process lives on: the live drain recovers its record",
          .timeLimit(.minutes(1)),
          arguments: [false, true])
    func exitedThreadIsRecovered(fallback: Bool) throws {
        let cpu = try Self.producerCPU()
        let name = "rseqtrace-test-thread-exit-\(fallback)-\(getpid())"
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 1 << 16, subbufferSize: 4096))
        let ring = fallback ? Int32(buffer.layout.slowLaneRing) : cpu
        let drainer = TraceDrainer(buffer: buffer)
        var delivered = Delivered()
        let helperEvents = 10
        let process = try HelperProcess.start(HelperProcess.helperPath,
                                              ["die-mid-record", "--name", name, "--events", "\(helperEvents)",
                                               "--cpu", "\(cpu)", "--exit-thread", "--linger", "30"],
                                              environment: HelperProcess.childEnvironment(
                                                  fallback ? ProcessModeSetting.forcedFallback.environment : [:]))
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while drainer.totals.abandoned == 0 && ContinuousClock.now < deadline {
            try Self.drainLive(drainer, ring: ring, into: &delivered)
            usleep(5000)
        }
        // Its process still runs: only the thread is gone.
        #expect(!process.hasExited)
        #expect(drainer.totals.abandoned == 1)
        #expect(drainer.statistics[Int(ring)].abandoned == 1)
        #expect(delivered.helperPayloads == Array(0..<UInt64(helperEvents)))
        // The ring goes on past it.
        #expect(buffer.makeProducer().write(eventID: 7, value: UInt64(99)))
        try drainer.drainOnce(quiescent: false) { record in
            delivered.helperPayloads.append(record.load(fromByteOffset: 0, as: UInt64.self))
        }
        process.signal(SIGKILL)
        let outcome = process.wait(timeout: .seconds(10))
        #expect(outcome.stdout.contains("die-mid-record: thread-exited"), "\(outcome)")
        #expect(drainer.totals.recorded + drainer.totals.lost == UInt64(helperEvents + 2), "\(drainer.totals)")
    }

    @Test("ThreadLiveness: this thread is alive, a joined thread is dead once the kernel released it, impossible ids are unknown",
          .timeLimit(.minutes(1)))
    func livenessOfThreads() {
        #expect(ThreadLiveness.of(pid: getpid(), tid: WorkerThreads.currentThreadID) == .alive)
        let box = Mutex<Int32>(0)
        WorkerThreads.run(count: 1) { _ in box.withLock { $0 = WorkerThreads.currentThreadID } }
        let tid = box.withLock { $0 }
        guard ThreadLiveness.visibilityProblem() == nil else {
            // Not in the initial pid namespace (a container): never certain, never dead.
            #expect(ThreadLiveness.of(pid: getpid(), tid: tid) != .dead)
            return
        }
        // pthread_join returns when the thread's tid is cleared, slightly before the kernel
        // removes it from /proc.
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while ThreadLiveness.of(pid: getpid(), tid: tid) != .dead && ContinuousClock.now < deadline { usleep(1000) }
        #expect(ThreadLiveness.of(pid: getpid(), tid: tid) == .dead)
        // A live thread that started well after the time its ids' owner is known to have run
        // reused the ids: not the owner, so the owner is dead. Without that time: alive.
        let before = ThreadLiveness.bootTimeNow()
        usleep(300_000)
        let release = Atomic<Bool>(false)
        let started = Mutex<Int32>(0)
        let later = WorkerThreads(count: 1) { _ in
            started.withLock { $0 = WorkerThreads.currentThreadID }
            while !release.load(ordering: .acquiring) { usleep(1000) }
        }
        var laterTID: Int32 = 0
        while laterTID == 0 {
            laterTID = started.withLock { $0 }
            usleep(1000)
        }
        #expect(ThreadLiveness.of(pid: getpid(), tid: laterTID) == .alive)
        #expect(ThreadLiveness.of(pid: getpid(), tid: laterTID, existedBy: before) == .dead)
        // Known to exist now (after it started): alive.
        #expect(ThreadLiveness.of(pid: getpid(), tid: laterTID, existedBy: ThreadLiveness.bootTimeNow()) == .alive)
        release.store(true, ordering: .releasing)
        later.join()
        #expect(ThreadLiveness.of(pid: 0, tid: 1) != .dead)
        #expect(ThreadLiveness.of(pid: getpid(), tid: -1) != .dead)
    }

    /// What a live drain does with a busy record laid out by hand at position 48 of ring 0 (after a
    /// begin record and a thread record naming `threadOwner`), given to it in two live rounds with
    /// no delay: the abandoned count and what the word became.
    static func liveVerdict(threadOwner: UInt64, busy: RecordWord, body: UInt64?) throws -> (abandoned: UInt64, word: RecordWord) {
        let name = "rseqtrace-test-owner-rules-\(getpid())"
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 1 << 16, subbufferSize: 4096))
        let ring = buffer.ring(0)
        ring.storeWord(at: 8, 1, ordering: .relaxed)
        ring.storeWord(at: 16, 0, ordering: .relaxed)
        ring.storeWord(at: 0, RecordWord(length: 24, kind: .subbufferBegin, eventID: 0, lap: 0, busy: false).rawValue,
                       ordering: .relaxed)
        ring.storeWord(at: 32, 1, ordering: .relaxed)
        ring.storeWord(at: 40, threadOwner, ordering: .relaxed)
        ring.storeWord(at: 24, RecordWord.threadRecord(lap: 0).rawValue, ordering: .relaxed)
        if let body { ring.storeWord(at: 64, body, ordering: .relaxed) }
        ring.storeWord(at: 48, busy.rawValue, ordering: .releasing)
        ring.store(.head, 48 + UInt64(busy.size), ordering: .releasing)
        let drainer = TraceDrainer(buffer: buffer)
        drainer.abandonmentDelay = .zero
        for _ in 0..<3 { try drainer.drainOnce { _ in } }
        #expect(drainer.quarantinedRings.isEmpty)
        return (drainer.totals.abandoned, RecordWord(rawValue: ring.loadWord(at: 48, ordering: .acquiring)))
    }

    @Test("owner rules: a busy event's owner is the thread record before it, a busy lead's its body only with the owner-known bit; only a dead owner's record becomes padding",
          .timeLimit(.minutes(1)))
    func ownerRules() throws {
        try #require(ThreadLiveness.visibilityProblem() == nil, "needs the initial pid namespace")
        let box = Mutex<Int32>(0)
        WorkerThreads.run(count: 1) { _ in box.withLock { $0 = WorkerThreads.currentThreadID } }
        let deadTID = box.withLock { $0 }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while ThreadLiveness.of(pid: getpid(), tid: deadTID) != .dead && ContinuousClock.now < deadline { usleep(1000) }
        let pid = UInt64(UInt32(getpid()))
        let dead = pid << 32 | UInt64(UInt32(deadTID))
        let alive = pid << 32 | UInt64(UInt32(WorkerThreads.currentThreadID))
        let event = RecordWord(length: 24, kind: .event, eventID: 5, lap: 0, busy: true)
        let lead = RecordWord.lead(length: 24, lap: 0)

        // A busy event after the dead thread's thread record: recovered, as padding of its extent.
        let deadEvent = try Self.liveVerdict(threadOwner: dead, busy: event, body: nil)
        #expect(deadEvent.abandoned == 1)
        #expect(deadEvent.word == RecordWord(length: 24, kind: .padding, eventID: 0, lap: 0, busy: false))
        // After a live thread's thread record: waited for.
        let liveEvent = try Self.liveVerdict(threadOwner: alive, busy: event, body: nil)
        #expect(liveEvent.abandoned == 0 && liveEvent.word == event)
        // A lead naming the dead thread with the owner-known bit: recovered, thread record and event.
        let knownLead = try Self.liveVerdict(threadOwner: alive, busy: lead.withOwnerKnown, body: dead)
        #expect(knownLead.abandoned == 1)
        #expect(knownLead.word == RecordWord(length: 48, kind: .padding, eventID: 0, lap: 0, busy: false))
        // The same lead without it: its body may be stale, so it is never recovered live.
        let unknownLead = try Self.liveVerdict(threadOwner: alive, busy: lead, body: dead)
        #expect(unknownLead.abandoned == 0 && unknownLead.word == lead)
        // A lead naming a live thread: waited for.
        let liveLead = try Self.liveVerdict(threadOwner: dead, busy: lead.withOwnerKnown, body: alive)
        #expect(liveLead.abandoned == 0 && liveLead.word == lead.withOwnerKnown)
    }
}
