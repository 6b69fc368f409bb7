#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import RseqTraceTestPayloads
import Synchronization

/// What the watchdog of a cell or producer process needs to report a stall.
final class Watch: Sendable {
    let done = Atomic<Bool>(false)
    /// A producer child to kill on a stall (0: none).
    let childPID = Atomic<Int32>(0)

    /// Ends the process with `report()` printed on stdout if `done` is not set within `seconds`.
    func start(seconds: Double, report: @escaping @Sendable () -> String) -> WorkerThreads {
        WorkerThreads(count: 1) { _ in
            let deadline = SystemClock.monotonic() + UInt64(seconds * 1e9)
            while !self.done.load(ordering: .acquiring) {
                if SystemClock.monotonic() >= deadline {
                    let child = self.childPID.load(ordering: .relaxed)
                    if child > 0 { kill(child, SIGKILL) }
                    print(report())
                    // fflush(NULL) flushes every C stream (stdout here) before _exit, which would not.
                    fflush(nil)
                    _exit(4)
                }
                SystemClock.sleep(milliseconds: 20)
            }
        }
    }
}

/// `cell NAME`: runs one cell. In-process cells produce in this process; cross-process cells
/// create the buffer here and drain it while a `produce` child attaches and writes. Prints one
/// `cell:` line (CellReport) and exits 0 (every check passed), 1 (some failed) or 4 (stalled).
enum CellCommand {
    static func run(_ cell: StressCell, seconds: Double, tamper: String?, seed: UInt64) -> Int32 {
        var failures: [String] = []
        var verifierTamper: RecordVerifier.Tamper?
        var countTamper = false
        switch tamper {
        case nil: break
        case "count": countTamper = true
        case let name?:
            guard let kind = RecordVerifier.Tamper(rawValue: name) else {
                printError("error: --tamper must be payload, timestamp, duplicate or count, got '\(name)'")
                return 2
            }
            verifierTamper = kind
        }

        let mode = RseqRuntime.status
        let expected = cell.mode.expectedProducerMode
        if mode.mode != expected { failures.append("mode: expected \(expected), this process runs \(mode)") }

        let watch = Watch()
        let state = ProducerState(threads: cell.threads)
        let early = failures
        let watchdog = watch.start(seconds: seconds + StressMatrix.stallGraceSeconds) {
            let (threads, handler) = Producers.emitted(state)
            return CellReport.line(
                ["name": cell.name, "mode": "\(mode.mode)", "emitted": "\(threads + handler)",
                 "finished_threads": "\(state.finished.load(ordering: .relaxed))"],
                failures: early + ["stalled: not done \(seconds + StressMatrix.stallGraceSeconds) s after the start (" + (cell.drainer == .inProcess
                    ? "producer threads finished: \(state.finished.load(ordering: .relaxed)) of \(cell.threads))"
                    : "draining or waiting for the producer process)")])
        }

        // The buffer: small rings, so that records are dropped or overwritten often.
        let buffer: SharedTraceBuffer
        do {
            buffer = try createUniqueBuffer(name: { "rseqtrace-stress-\(getpid())-\($0)" }, ringSize: 1 << 18,
                                            subbufferSize: 1 << 13, mode: cell.buffer)
        } catch {
            printError("error: cannot create the buffer: \(error)")
            return 3
        }

        let start = ContinuousClock.now
        let deadline = start.advanced(by: .milliseconds(Int(seconds * 1000)))
        var joins: [WorkerThreads] = []
        var child: ChildProcess?
        switch cell.drainer {
        case .inProcess:
            buffer.removeName()
            let settings = ProducerSettings(threads: cell.threads, pacing: cell.pacing, signals: cell.signals,
                                            deadline: deadline, seed: seed)
            switch Producers.launch(buffer.makeProducer(), settings, state) {
            case .success(let threads): joins = threads
            case .failure(let error):
                printError("error: \(error.message)")
                return 3
            }
        case .crossProcess:
            let environment = ProcessEnvironment.current(removing: [SharedTraceBuffer.environmentVariable])
            do {
                let started = try ChildProcess.spawn(
                    [selfPath, "produce", cell.name, "--buffer", buffer.name, "--seconds", "\(seconds)", "--seed", "\(seed)"],
                    environment: environment, stdin: .null)
                watch.childPID.store(started.pid, ordering: .relaxed)
                child = started
            } catch {
                printError("error: cannot start the producer process: \(error)")
                return 3
            }
        }

        // Drain while producing.
        let drainer = TraceDrainer(buffer: buffer)
        var verifier = RecordVerifier(layout: buffer.layout)
        verifier.tamper = verifierTamper
        // The SIGUSR1 handler writes its payload thread from whichever thread it interrupts.
        verifier.sharedPayloadThreads = [SignalTracing.thread]
        var drainError: TraceError?
        var rounds = 0
        while true {
            if let child {
                child.pump()
                if child.hasExited { break }
            } else if state.finished.load(ordering: .acquiring) == cell.threads {
                break
            }
            do {
                let delivered = try drainer.drainOnce { verifier.check($0) }
                rounds += 1
                if delivered == 0 { SystemClock.sleep(microseconds: 100) }
            } catch {
                drainError = error
                state.stop.store(true, ordering: .relaxed)
                break
            }
        }
        var emitted: UInt64 = 0
        var handler: UInt64 = 0
        var migrations = state.migrations.load(ordering: .relaxed)
        if let child {
            let outcome = child.wait(timeout: .seconds(Int(seconds + StressMatrix.stallGraceSeconds) + 1))
            watch.childPID.store(0, ordering: .relaxed)
            if outcome.exitCode == 4 {
                failures.append("stalled: the producer process's threads did not finish within \(seconds + StressMatrix.stallGraceSeconds - 1) s (\(outcome.lastLine(startingWith: "produce: ") ?? ""))")
            } else if !outcome.exitedCleanly {
                failures.append("producer process: \(outcome.timedOut ? "timed out" : outcome.termination?.description ?? "not reaped") \(outcome.stderr.split(separator: "\n").first ?? "")")
            }
            if outcome.exitCode == 4 {
                // Stalled: reported above.
            } else if let line = outcome.lastLine(startingWith: "produce: ") {
                let fields = CellReport.parse(String(line.dropFirst(9))).fields
                emitted = UInt64(fields["emitted"] ?? "") ?? 0
                handler = UInt64(fields["handler"] ?? "") ?? 0
                migrations = UInt64(fields["migrations"] ?? "") ?? 0
                if fields["mode"] != "\(expected)" { failures.append("mode: the producer process runs \(fields["mode"] ?? "?"), expected \(expected)") }
                if fields["timers_failed"] != "0" { failures.append("signals: \(fields["timers_failed"] ?? "?") per-thread timers could not be created") }
            } else {
                failures.append("producer process: no report line")
            }
        } else {
            for threads in joins { threads.join() }
            (emitted, handler) = Producers.emitted(state)
            emitted += handler
            migrations = state.migrations.load(ordering: .relaxed)
            if state.timerFailures.load(ordering: .relaxed) > 0 {
                failures.append("signals: \(state.timerFailures.load(ordering: .relaxed)) per-thread timers could not be created")
            }
        }
        let produced = ContinuousClock.now - start
        verifier.drainFinished(buffer, drainer, rounds: &rounds, drainError: &drainError)
        watch.done.store(true, ordering: .releasing)
        watchdog.join()

        // The checks.
        let totals = drainer.totals
        if countTamper { emitted += 1 }
        if let drainError { failures.append("drain: \(drainError)") }
        if verifier.damaged > 0 { failures.append("damaged: \(verifier.damaged) records fail the payload check (first: \(verifier.problems.first { $0.contains("damaged") || $0.contains("out of range") } ?? ""))") }
        if verifier.duplicates > 0 { failures.append("duplicates: \(verifier.duplicates) (thread, sequence) pairs delivered twice") }
        if verifier.misattributed > 0 {
            failures.append("writers: \(verifier.misattributed) records name another writer than their thread's others (first: \(verifier.problems.first { $0.contains("written by") || $0.contains("no writer") } ?? ""))")
        }
        if verifier.regressions > 0 {
            failures.append("timestamps: \(verifier.regressions) records older than their predecessor in the ring (first: \(verifier.problems.first { $0.contains("timestamp") } ?? ""))")
        }
        let stalled = failures.contains { $0.hasPrefix("stalled") }
        if !stalled && totals.recorded + totals.lost != emitted {
            failures.append("accounting: recorded \(totals.recorded) + lost \(totals.lost) = \(totals.recorded + totals.lost) != emitted \(emitted)")
        }
        if totals.recorded == 0 && drainError == nil { failures.append("nothing recorded") }
        if cell.signals == .tracing && handler == 0 && failures.isEmpty { failures.append("signals: the handler wrote no record") }

        let (wallSeconds, attoseconds) = produced.components
        let wall = Double(wallSeconds) + Double(attoseconds) * 1e-18
        let fields: KeyValuePairs<String, String> = [
            "name": cell.name, "mode": "\(mode.mode)", "events_per_s": "\(Int(Double(emitted) / max(wall, 1e-9)))",
            "emitted": "\(emitted)", "recorded": "\(totals.recorded)", "lost": "\(totals.lost)",
            "handler": "\(handler)", "dropped": "\(totals.dropped)", "overwritten": "\(totals.overwritten)",
            "damaged": "\(verifier.damaged)", "duplicates": "\(verifier.duplicates)", "regressions": "\(verifier.regressions)",
            "misattributed": "\(verifier.misattributed)",
            "slowlane": "\(verifier.slowLane)", "migrations": "\(migrations)",
            "rounds": "\(rounds)", "wall_ms": "\(Int(wall * 1000))",
        ]
        for problem in verifier.problems { printError("problem: \(problem)") }
        print(CellReport.line(fields, failures: failures))
        return failures.isEmpty ? 0 : 1
    }
}

/// `produce NAME --buffer BUFFER`: the producer process of a cross-process cell. Attaches to the
/// buffer, writes like an in-process cell, prints `produce: mode=… emitted=… handler=…`.
enum ProduceCommand {
    static func run(_ cell: StressCell, bufferName: String, seconds: Double, seed: UInt64) -> Int32 {
        let mode = RseqRuntime.status
        let state = ProducerState(threads: cell.threads)
        let watch = Watch()
        // A second before the cell's own watchdog, so that the cell can report the stall as this
        // process's.
        let watchdog = watch.start(seconds: seconds + StressMatrix.stallGraceSeconds - 1) {
            let (threads, handler) = Producers.emitted(state)
            return "produce: mode=\(mode.mode) stalled=1 emitted=\(threads + handler) finished_threads=\(state.finished.load(ordering: .relaxed))"
        }
        let buffer: SharedTraceBuffer
        do {
            buffer = try SharedTraceBuffer.open(name: bufferName)
        } catch {
            printError("error: cannot attach to the buffer: \(error)")
            return 3
        }
        let settings = ProducerSettings(threads: cell.threads, pacing: cell.pacing, signals: cell.signals,
                                        deadline: ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000))),
                                        seed: seed)
        switch Producers.launch(buffer.makeProducer(), settings, state) {
        case .success(let threads):
            for thread in threads { thread.join() }
        case .failure(let error):
            printError("error: \(error.message)")
            return 3
        }
        watch.done.store(true, ordering: .releasing)
        watchdog.join()
        let (threads, handler) = Producers.emitted(state)
        print("produce: mode=\(mode.mode) emitted=\(threads + handler) handler=\(handler) migrations=\(state.migrations.load(ordering: .relaxed)) timers_failed=\(state.timerFailures.load(ordering: .relaxed))")
        return 0
    }
}
