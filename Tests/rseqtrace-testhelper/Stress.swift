#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import RseqTraceTestPayloads

/// `stress`: a fresh buffer, N producer threads under optional signal storms, yields and
/// migrations, drained concurrently by the main thread, every record verified.
enum StressCommand {
    static let usage = """
        stress --mode discard|overwrite --threads N --events N [--ring-size BYTES] [--subbuffer-size BYTES]
               [--signals] [--yield] [--migrate] [--inject LOOPS] [--time-limit SECONDS] [--seed N]
        """

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: ["signals", "yield", "migrate"],
                                  valueNames: ["mode", "threads", "events", "ring-size", "subbuffer-size",
                                               "inject", "time-limit", "seed"])
        let mode = try options.bufferMode()
        let threads = try options.int("threads", in: 1...256)
        let events = try options.int("events", in: 1...10_000_000)
        guard threads * events <= 50_000_000 else { throw UsageError("threads x events must be at most 50000000") }
        let ringSize = try options.int("ring-size", default: 1 << 20, in: 8192...(1 << 30))
        let subbufferSize = try options.int("subbuffer-size", default: 1 << 16, in: 256...(1 << 24))
        let inject = try options.int("inject", default: 0, in: 0...1_000_000)
        let timeLimit = try options.int("time-limit", default: 60, in: 1...3600)
        let seed = UInt64(try options.int("seed", default: Int(getpid()), in: 0...Int.max))
        let signals = options.has("signals")

        Environment.prepare(inject: inject, signals: signals)
        let status = RseqRuntime.status

        let buffer: SharedTraceBuffer
        do {
            buffer = try createUniqueBuffer(name: { "rseqtrace-test-\(getpid())-\($0)" }, ringSize: ringSize,
                                            subbufferSize: subbufferSize, mode: mode)
        } catch {
            printError("error: \(error)")
            return 3
        }
        // Nothing else opens this one: drop the name now so a crash leaves nothing in /dev/shm.
        buffer.removeName()

        let producer = buffer.makeProducer()
        let drainer = TraceDrainer(buffer: buffer)
        let state = ProducerState(threads: threads)
        let start = ContinuousClock.now
        let settings = ProducerLoop(threads: threads, events: UInt64(events), timerSignal: signals ? rtts_timer_signal() : nil,
                                    yield: options.has("yield"),
                                    deadline: start.advanced(by: .seconds(timeLimit)), seed: seed)
        var verifier = RecordVerifier(layout: buffer.layout, threads: threads, events: events)

        let producers = ProducerThreads.start(producer, settings, state)
        let migrator = options.has("migrate") ? ProducerThreads.startMigrator(state, seed: seed) : nil
        var drainError: TraceError?
        var rounds = 0
        while state.finished.load(ordering: .acquiring) < threads {
            do {
                let delivered = try drainer.drainOnce { verifier.check($0) }
                rounds += 1
                if delivered == 0 { usleep(100) }
            } catch {
                drainError = error
                state.stop.store(true, ordering: .relaxed)
                break
            }
        }
        producers.join()
        migrator?.join()
        verifier.drainFinished(buffer, drainer, rounds: &rounds, drainError: &drainError)
        let wall = ContinuousClock.now - start

        let totals = drainer.totals
        let emitted = state.emitted.load(ordering: .relaxed)
        let stored = state.stored.load(ordering: .relaxed)
        for problem in verifier.problems { printError("problem: \(problem)") }
        for (index, ring) in drainer.statistics.enumerated() {
            let name = index == buffer.layout.slowLaneRing ? "slow lane" : "cpu \(index)"
            printError("ring \(name): recorded=\(ring.recorded) dropped=\(ring.dropped) overwritten=\(ring.overwritten) tooLarge=\(ring.tooLarge)")
        }
        if let drainError { printError("error: drain failed: \(drainError)") }
        if state.timedOut.load(ordering: .relaxed) { printError("error: the \(timeLimit) s time limit expired") }
        if state.timerFailures.load(ordering: .relaxed) > 0 { printError("error: some per-thread timers could not be created") }

        let wallMilliseconds = wall.components.seconds * 1000 + wall.components.attoseconds / 1_000_000_000_000_000
        print("stress: mode=\(status.mode) buffer=\(mode) emitted=\(emitted) recorded=\(totals.recorded) lost=\(totals.lost) damaged=\(verifier.damaged) duplicates=\(verifier.duplicates) regressions=\(verifier.regressions) misattributed=\(verifier.misattributed) slowlane=\(verifier.slowLane) signals=\(rtts_signal_count()) migrations=\(state.migrations.load(ordering: .relaxed)) path=\(producer.path) stored=\(stored) dropped=\(totals.dropped) overwritten=\(totals.overwritten) toolarge=\(totals.tooLarge) rounds=\(rounds) wall_ms=\(wallMilliseconds)")

        let exact = totals.recorded + totals.lost == emitted
        let clean = verifier.isClean
        let complete = emitted == UInt64(threads) * UInt64(events)
        let ok = exact && clean && complete && drainError == nil && state.timerFailures.load(ordering: .relaxed) == 0
        return ok ? 0 : 1
    }
}
