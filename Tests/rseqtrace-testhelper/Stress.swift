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
        let mode: BufferMode
        switch try options.string("mode") {
        case "discard": mode = .discard
        case "overwrite": mode = .overwrite
        case let other: throw UsageError("--mode must be discard or overwrite, got '\(other)'")
        }
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

        var attempt = 0
        let buffer: SharedTraceBuffer
        while true {
            let configuration = TraceConfiguration(
                name: "rseqtrace-test-\(getpid())-\(attempt)", ringSize: ringSize, subbufferSize: subbufferSize,
                mode: mode)
            do {
                buffer = try SharedTraceBuffer.create(configuration)
                break
            } catch where error.code == .alreadyExists && attempt < 16 {
                attempt += 1
            } catch {
                printError("error: \(error)")
                return 3
            }
        }
        // Nothing else opens this one: drop the name now so a crash leaves nothing in /dev/shm.
        buffer.removeName()

        let producer = buffer.makeProducer()
        let drainer = TraceDrainer(buffer: buffer)
        let state = WorkloadState(threads: threads)
        let start = ContinuousClock.now
        let settings = WorkloadSettings(threads: threads, events: events, signals: signals,
                                        yield: options.has("yield"),
                                        deadline: start.advanced(by: .seconds(timeLimit)), seed: seed)
        var verifier = RecordVerifier(layout: buffer.layout, threads: threads, events: events)

        let producers = Workload.startProducers(producer, settings, state)
        let migrator = options.has("migrate") ? Workload.startMigrator(state, seed: seed) : nil
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
        buffer.markFinished()
        if drainError == nil {
            do {
                try drainer.drainOnce(quiescent: true) { verifier.check($0) }
                rounds += 1
            } catch {
                drainError = error
            }
        }
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
        print("stress: mode=\(status.mode) buffer=\(mode) emitted=\(emitted) recorded=\(totals.recorded) lost=\(totals.lost) damaged=\(verifier.damaged) duplicates=\(verifier.duplicates) regressions=\(verifier.regressions) slowlane=\(verifier.slowLane) signals=\(rtts_signal_count()) migrations=\(state.migrations.load(ordering: .relaxed)) path=\(producer.path) stored=\(stored) dropped=\(totals.dropped) overwritten=\(totals.overwritten) toolarge=\(totals.tooLarge) rounds=\(rounds) wall_ms=\(wallMilliseconds)")

        let exact = totals.recorded + totals.lost == emitted
        let clean = verifier.damaged == 0 && verifier.duplicates == 0 && verifier.regressions == 0
        let complete = emitted == UInt64(threads) * UInt64(events)
        let ok = exact && clean && complete && drainError == nil && state.timerFailures.load(ordering: .relaxed) == 0
        return ok ? 0 : 1
    }
}
