#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import RseqTraceTestPayloads
import Synchronization

// `storm` and `stuck`: the lock-free protocol of fallback rings and the slow lane
// (docs/BufferProtocol.md §5), driven by Tests/RseqTraceTests/LockFreeFallbackTests.swift.

/// Checks drained records: intact payloads, no duplicates, per-ring timestamps non-decreasing.
struct CheckedRecordVerifier {
    var seen: Set<UInt64> = []
    var lastTimestamp: [UInt64]
    var recorded: UInt64 = 0
    var damaged: UInt64 = 0
    var duplicates: UInt64 = 0
    var regressions: UInt64 = 0
    /// Records whose writer (pid, tid) differs from the first record of the same source: each
    /// source below `stormHandlerSource` is one thread of this process.
    var misattributed: UInt64 = 0
    var writers: [UInt64: (processID: Int32, threadID: Int32)] = [:]

    init(rings: Int) { lastTimestamp = Array(repeating: 0, count: rings) }

    mutating func check(_ record: borrowing DrainedRecord) {
        recorded += 1
        if record.timestamp < lastTimestamp[record.ring] {
            regressions += 1
            if regressions <= 5 {
                printError("problem: ring \(record.ring) timestamp \(record.timestamp) after \(lastTimestamp[record.ring]) at \(record.position)")
            }
        }
        lastTimestamp[record.ring] = max(lastTimestamp[record.ring], record.timestamp)
        guard record.payloadSize == MemoryLayout<CheckedPayload>.size else {
            damaged += 1
            return
        }
        let payload = record.load(fromByteOffset: 0, as: CheckedPayload.self)
        guard payload.isIntact else {
            damaged += 1
            if damaged <= 5 { printError("problem: torn record on ring \(record.ring) at \(record.position)") }
            return
        }
        if !seen.insert(payload.source << 40 | payload.sequence).inserted { duplicates += 1 }
        // Handler records are written by whichever thread the signal interrupts.
        guard payload.source < stormHandlerSource else { return }
        let writer = (processID: record.processID, threadID: record.threadID)
        if let first = writers[payload.source] {
            if first != writer || writer.processID != getpid() {
                misattributed += 1
                if misattributed <= 5 {
                    printError("problem: source \(payload.source) written by pid \(writer.processID) tid \(writer.threadID), earlier by \(first)")
                }
            }
        } else {
            writers[payload.source] = writer
        }
    }

    var line: String {
        "recorded=\(recorded) damaged=\(damaged) duplicates=\(duplicates) regressions=\(regressions) misattributed=\(misattributed)"
    }
}

/// Counters shared by the threads of one helper run.
final class SharedCounters: Sendable {
    let finished = Atomic<Int>(0)
    let timedOut = Atomic<Bool>(false)
    let emitted = Atomic<UInt64>(0)
    let stored = Atomic<UInt64>(0)
    let sent = Atomic<UInt64>(0)
    let released = Atomic<Bool>(false)
    let threadIDs: [ThreadID]
    init(threads: Int) { threadIDs = (0..<threads).map { _ in ThreadID() } }
}

/// A thread's pthread_t, published by the thread itself.
final class ThreadID: Sendable {
    let value = Atomic<UInt>(0)
}

/// What the SIGUSR1 handler writes with (set before the handler is installed, never changed after).
nonisolated(unsafe) var stormProducer: Producer?
let stormHandlerEmitted = Atomic<UInt64>(0)
let stormHandlerStored = Atomic<UInt64>(0)
/// `source` of records written by signal handlers.
let stormHandlerSource: UInt64 = 1 << 20

/// Writes one record from a signal handler: the lock-free path only swaps, adds and stores.
func stormSignalHandler(_ signal: Int32) {
    // SAFETY: written once before the handler is installed, never after.
    guard let producer = unsafe stormProducer else { return }
    let sequence = stormHandlerEmitted.wrappingAdd(1, ordering: .relaxed).oldValue
    if producer.write(eventID: 2, value: CheckedPayload(source: stormHandlerSource, sequence: sequence)) {
        stormHandlerStored.wrappingAdd(1, ordering: .relaxed)
    }
}

/// Creates a fresh buffer for this process (name dropped at once: nothing else opens it).
func makeHelperBuffer(_ purpose: String, ringSize: Int, subbufferSize: Int, mode: BufferMode) -> SharedTraceBuffer? {
    for attempt in 0..<16 {
        let configuration = TraceConfiguration(name: "rseqtrace-test-\(purpose)-\(getpid())-\(attempt)",
                                               ringSize: ringSize, subbufferSize: subbufferSize, mode: mode)
        do {
            let buffer = try SharedTraceBuffer.create(configuration)
            buffer.removeName()
            return buffer
        } catch where error.code == .alreadyExists {
            continue
        } catch {
            printError("error: \(error)")
            return nil
        }
    }
    return nil
}

/// `storm`: producer threads write flat out while another thread sends them SIGUSR1 as fast as it
/// can; every handler writes a record too (often into the ring its interrupted thread is reserving
/// in). The main thread drains concurrently. Prints exact figures.
enum StormCommand {
    static let usage = """
        storm --mode discard|overwrite --threads N --events N [--ring-size BYTES] [--subbuffer-size BYTES] [--time-limit SECONDS]
        """

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [],
                                  valueNames: ["mode", "threads", "events", "ring-size", "subbuffer-size", "time-limit"])
        let mode = try options.bufferMode()
        let threads = try options.int("threads", in: 1...64)
        let events = try options.int("events", in: 1...5_000_000)
        let ringSize = try options.int("ring-size", default: 1 << 18, in: 8192...(1 << 30))
        let subbufferSize = try options.int("subbuffer-size", default: 1 << 13, in: 256...(1 << 24))
        let timeLimit = try options.int("time-limit", default: 60, in: 1...3600)
        let status = RseqRuntime.status
        guard let buffer = makeHelperBuffer("storm", ringSize: ringSize, subbufferSize: subbufferSize, mode: mode) else {
            return 3
        }
        let producer = buffer.makeProducer()
        // SAFETY: set before the handler that reads it is installed; never written again.
        unsafe stormProducer = producer
        var action = sigaction()
        // SAFETY: a C function pointer to a handler that only uses the lock-free write path.
        unsafe action.__sigaction_handler.sa_handler = { stormSignalHandler($0) }
        action.sa_flags = SA_RESTART
        // SAFETY: initialising the local action's mask.
        unsafe sigemptyset(&action.sa_mask)
        // SAFETY: installing the local action; the old one is not needed.
        guard unsafe sigaction(SIGUSR1, &action, nil) == 0 else {
            printError("error: cannot install the SIGUSR1 handler (errno \(errno))")
            return 3
        }

        let start = ContinuousClock.now
        let deadline = start.advanced(by: .seconds(timeLimit))
        let shared = SharedCounters(threads: threads)
        let writers = WorkerThreads(count: threads) { index in
            shared.threadIDs[index].value.store(UInt(pthread_self()), ordering: .releasing)
            var mine: UInt64 = 0
            var kept: UInt64 = 0
            for sequence in 0..<UInt64(events) {
                if sequence & 1023 == 0 && ContinuousClock.now >= deadline {
                    shared.timedOut.store(true, ordering: .relaxed)
                    break
                }
                if producer.write(eventID: 1, value: CheckedPayload(source: UInt64(index), sequence: sequence)) { kept += 1 }
                mine += 1
            }
            shared.emitted.wrappingAdd(mine, ordering: .relaxed)
            shared.stored.wrappingAdd(kept, ordering: .relaxed)
            shared.finished.wrappingAdd(1, ordering: .releasing)
        }
        // The signaller: SIGUSR1 to each writer in turn, flat out, while writers run.
        let signaller = WorkerThreads(count: 1) { _ in
            var next = 0
            while shared.finished.load(ordering: .acquiring) < threads {
                let thread = shared.threadIDs[next].value.load(ordering: .acquiring)
                next = (next + 1) % threads
                // A finished thread's id may be stale: signal only while some writer still runs.
                if thread != 0 && shared.finished.load(ordering: .acquiring) == 0 {
                    if pthread_kill(pthread_t(thread), SIGUSR1) == 0 { shared.sent.wrappingAdd(1, ordering: .relaxed) }
                } else {
                    sched_yield()
                }
            }
        }
        let drainer = TraceDrainer(buffer: buffer)
        var verifier = CheckedRecordVerifier(rings: buffer.layout.ringCount)
        var drainError: TraceError?
        var rounds = 0
        while shared.finished.load(ordering: .acquiring) < threads {
            do {
                if try drainer.drainOnce({ verifier.check($0) }) == 0 { usleep(50) }
                rounds += 1
            } catch {
                drainError = error
                break
            }
        }
        writers.join()
        signaller.join()
        // Handlers still pending run before the writers exit; block further ones for the final drain.
        var block = sigset_t()
        // SAFETY: a local signal set.
        unsafe sigemptyset(&block)
        // SAFETY: as above.
        unsafe sigaddset(&block, SIGUSR1)
        // SAFETY: blocking SIGUSR1 in this thread with the local set; the old mask is not needed.
        unsafe pthread_sigmask(SIG_BLOCK, &block, nil)
        if drainError == nil {
            do {
                try drainer.drainOnce(quiescent: true) { verifier.check($0) }
            } catch {
                drainError = error
            }
        }
        let wall = ContinuousClock.now - start
        let totals = drainer.totals
        let handlerEmitted = stormHandlerEmitted.load(ordering: .relaxed)
        let total = shared.emitted.load(ordering: .relaxed) + handlerEmitted
        let timedOut = shared.timedOut.load(ordering: .relaxed)
        if let drainError { printError("error: drain failed: \(drainError)") }
        if timedOut { printError("error: the \(timeLimit) s time limit expired") }
        let wallMilliseconds = wall.components.seconds * 1000 + wall.components.attoseconds / 1_000_000_000_000_000
        print("storm: mode=\(status.mode) buffer=\(mode) path=\(producer.path) emitted=\(total) handler_emitted=\(handlerEmitted) signals_sent=\(shared.sent.load(ordering: .relaxed)) \(verifier.line) lost=\(totals.lost) dropped=\(totals.dropped) overwritten=\(totals.overwritten) abandoned=\(totals.abandoned) stored=\(shared.stored.load(ordering: .relaxed) + stormHandlerStored.load(ordering: .relaxed)) rounds=\(rounds) timed_out=\(timedOut) wall_ms=\(wallMilliseconds)")
        let exact = totals.recorded + totals.lost == total && totals.recorded == verifier.recorded
        let clean = verifier.damaged == 0 && verifier.duplicates == 0 && verifier.regressions == 0
        return exact && clean && drainError == nil && !timedOut ? 0 : 1
    }
}

/// `stuck`: one producer parks inside a reservation (between its swap and its stores, through the
/// `rseqtrace_stall_event_id` hook) while other producers, all on one CPU and so one ring, write
/// flat out; the main thread drains live meanwhile. Then the stuck producer is released and a
/// quiescent drain must balance exactly.
enum StuckCommand {
    static let usage = """
        stuck --mode discard|overwrite --threads N --events N [--ring-size BYTES] [--subbuffer-size BYTES]
        """

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [],
                                  valueNames: ["mode", "threads", "events", "ring-size", "subbuffer-size"])
        let mode = try options.bufferMode()
        let threads = try options.int("threads", in: 1...64)
        let events = try options.int("events", in: 1...5_000_000)
        let ringSize = try options.int("ring-size", default: 16384, in: 8192...(1 << 30))
        let subbufferSize = try options.int("subbuffer-size", default: 1024, in: 256...(1 << 24))
        let status = RseqRuntime.status
        // Every thread on one CPU: every record goes to one ring.
        _ = rtts_affinity_snapshot()
        let cpu = rtts_allowed_cpu(0)
        guard pinCurrentThread(to: cpu) else { return 3 }
        guard let buffer = makeHelperBuffer("stuck", ringSize: ringSize, subbufferSize: subbufferSize, mode: mode) else {
            return 3
        }
        let producer = buffer.makeProducer()
        let ringIndex = producer.path == .lockFree ? Int(cpu) : buffer.layout.slowLaneRing
        let ring = buffer.ring(ringIndex)
        let drainer = TraceDrainer(buffer: buffer)
        var verifier = CheckedRecordVerifier(rings: buffer.layout.ringCount)

        // The stuck producer: a few records, then one that parks right after its reservation.
        let stuckEvent: UInt16 = 3
        let before = 40
        let shared = SharedCounters(threads: threads)
        RingWriter.stallLockFreeReservations(ofEventID: stuckEvent)
        for sequence in 0..<UInt64(before) {
            _ = producer.write(eventID: 1, value: CheckedPayload(source: 99, sequence: sequence))
        }
        let headBefore = ring.load(.head, ordering: .acquiring)
        let stuck = WorkerThreads(count: 1) { _ in
            _ = producer.write(eventID: stuckEvent, value: CheckedPayload(source: 98, sequence: 0))
            shared.released.store(true, ordering: .releasing)
        }
        while ring.load(.head, ordering: .acquiring) == headBefore { usleep(100) }   // it has reserved
        let stuckAt = headBefore

        let others = WorkerThreads(count: threads) { index in
            var mine: UInt64 = 0
            for sequence in 0..<UInt64(events) {
                _ = producer.write(eventID: 1, value: CheckedPayload(source: UInt64(index), sequence: sequence))
                mine += 1
            }
            shared.emitted.wrappingAdd(mine, ordering: .relaxed)
            shared.finished.wrappingAdd(1, ordering: .releasing)
        }
        var liveRounds = 0
        var drainError: TraceError?
        while shared.finished.load(ordering: .acquiring) < threads {
            do {
                try drainer.drainOnce { verifier.check($0) }
                liveRounds += 1
            } catch {
                drainError = error
                break
            }
            usleep(200)
        }
        others.join()
        // A few more live rounds with producers stopped and one still stuck: each returns.
        for _ in 0..<3 where drainError == nil {
            do { try drainer.drainOnce { verifier.check($0) } } catch { drainError = error }
        }
        let liveRecorded = drainer.totals.recorded
        let headWhileStuck = ring.load(.head, ordering: .acquiring)
        // Where the next live read starts (overwrite mode also skips what was overwritten).
        let consumedWhileStuck = mode == .overwrite
            ? max(ring.load(.consumed, ordering: .acquiring), buffer.layout.oldestValid(head: headWhileStuck))
            : ring.load(.consumed, ordering: .acquiring)
        let droppedWhileStuck = drainer.totals.dropped
        let stillStuck = !shared.released.load(ordering: .acquiring)

        RingWriter.stallLockFreeReservations(ofEventID: nil)
        stuck.join()
        if drainError == nil {
            do { try drainer.drainOnce(quiescent: true) { verifier.check($0) } } catch { drainError = error }
        }
        let totals = drainer.totals
        let total = shared.emitted.load(ordering: .relaxed) + UInt64(before) + 1
        let p = UInt64(subbufferSize)
        if let drainError { printError("error: drain failed: \(drainError)") }
        print("stuck: mode=\(status.mode) buffer=\(mode) path=\(producer.path) emitted=\(total) \(verifier.line) lost=\(totals.lost) dropped=\(totals.dropped) overwritten=\(totals.overwritten) abandoned=\(totals.abandoned) live_recorded=\(liveRecorded) live_rounds=\(liveRounds) still_stuck=\(stillStuck) dropped_while_stuck=\(droppedWhileStuck) next_read_subbuffer=\(consumedWhileStuck / p) stuck_subbuffer=\(stuckAt / p) head_while_stuck=\(headWhileStuck) stuck_at=\(stuckAt)")
        let exact = totals.recorded + totals.lost == total
        let clean = verifier.damaged == 0 && verifier.duplicates == 0 && verifier.regressions == 0
        return exact && clean && drainError == nil ? 0 : 1
    }
}

/// `fallback-write`: creates the named buffer (kept after exit), writes checked records from
/// several threads and exits; another process drains it (cross-process reading of lock-free rings).
enum FallbackWriteCommand {
    static let usage = """
        fallback-write --name NAME --mode discard|overwrite --threads N --events N [--ring-size BYTES] [--subbuffer-size BYTES]
        """

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [],
                                  valueNames: ["name", "mode", "threads", "events", "ring-size", "subbuffer-size"])
        let name = try options.string("name")
        let mode = try options.bufferMode()
        let threads = try options.int("threads", in: 1...64)
        let events = try options.int("events", in: 1...5_000_000)
        let ringSize = try options.int("ring-size", default: 16384, in: 8192...(1 << 30))
        let subbufferSize = try options.int("subbuffer-size", default: 1024, in: 256...(1 << 24))
        let buffer: SharedTraceBuffer
        do {
            buffer = try SharedTraceBuffer.create(TraceConfiguration(
                name: name, ringSize: ringSize, subbufferSize: subbufferSize, mode: mode, removeWhenClosed: false))
        } catch {
            printError("error: \(error)")
            return 3
        }
        let producer = buffer.makeProducer()
        let shared = SharedCounters(threads: threads)
        WorkerThreads.run(count: threads) { index in
            // The source is the writer's thread id: a reader checks each record's attribution.
            let tid = UInt64(rtts_gettid())
            var kept: UInt64 = 0
            for sequence in 0..<UInt64(events)
            where producer.write(eventID: 1, value: CheckedPayload(source: tid, sequence: sequence)) {
                kept += 1
            }
            shared.stored.wrappingAdd(kept, ordering: .relaxed)
        }
        buffer.markFinished()
        print("fallback-write: mode=\(RseqRuntime.status.mode) path=\(producer.path) pid=\(getpid()) emitted=\(threads * events) stored=\(shared.stored.load(ordering: .relaxed))")
        return 0
    }
}
