#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceTestPayloads
import RseqTraceConsumer
import Synchronization
import RseqTraceSupport

/// One producer thread as the migrator sees it.
final class ProducerSlot: Sendable {
    /// Kernel thread id, valid while `state` is not `exited`.
    let tid = Atomic<Int>(0)
    /// `idle`/`exited` (0), `running` (1), `migrating` (2: the migrator is changing its affinity;
    /// the thread waits for that to end before it exits, so its TID is never reused under us).
    let state = Atomic<Int>(0)
    static let exited = 0, running = 1, migrating = 2
}

/// State shared by the producer threads, the migrator and the draining thread.
final class WorkloadState: Sendable {
    let slots: [ProducerSlot]
    let finished = Atomic<Int>(0)
    let emitted = Atomic<UInt64>(0)
    let stored = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
    let migrations = Atomic<UInt64>(0)
    let timerFailures = Atomic<Int>(0)
    let timedOut = Atomic<Bool>(false)

    init(threads: Int) {
        slots = (0..<threads).map { _ in ProducerSlot() }
    }
}

/// What the producer threads do.
struct WorkloadSettings: Sendable {
    var threads: Int
    var events: Int
    /// Added to the thread index in every payload id (tells processes apart).
    var threadBase: UInt32 = 0
    var signals = false
    var yield = false
    var deadline: ContinuousClock.Instant
    var seed: UInt64
}

enum Workload {
    /// Starts the producer threads. Each writes `events` records unless the deadline passes or
    /// `state.stop` is set; `state.emitted` counts the write calls made (stored or dropped).
    static func startProducers(_ producer: Producer, _ settings: WorkloadSettings, _ state: WorkloadState) -> WorkerThreads {
        WorkerThreads(count: settings.threads) { index in
            let slot = state.slots[index]
            let tid = rtts_gettid()
            slot.tid.store(tid, ordering: .relaxed)
            slot.state.store(ProducerSlot.running, ordering: .releasing)
            var random = XorShift(seed: settings.seed ^ (UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15))
            var timer: Int64 = -1
            if settings.signals {
                // 20...50 µs, different for each thread so the storms do not line up.
                timer = rtts_thread_timer_create(tid, 20_000 + random.next() % 30_001)
                if timer < 0 { state.timerFailures.wrappingAdd(1, ordering: .relaxed) }
            }
            var writer = PayloadWriter()
            var untilYield = 100 + Int(random.next() % 901)
            var emitted: UInt64 = 0
            var stored: UInt64 = 0
            let thread = settings.threadBase + UInt32(index)
            for sequence in 0..<UInt64(settings.events) {
                if sequence & 127 == 0 {
                    if state.stop.load(ordering: .relaxed) { break }
                    if ContinuousClock.now >= settings.deadline {
                        state.timedOut.store(true, ordering: .relaxed)
                        break
                    }
                }
                if writer.emit(producer, thread: thread, sequence: sequence) { stored += 1 }
                emitted += 1
                if settings.yield {
                    untilYield -= 1
                    if untilYield == 0 {
                        sched_yield()
                        untilYield = 100 + Int(random.next() % 901)
                    }
                }
            }
            if timer >= 0 { _ = rtts_thread_timer_delete(timer) }
            while !slot.state.compareExchange(expected: ProducerSlot.running, desired: ProducerSlot.exited,
                                              ordering: .acquiringAndReleasing).exchanged {
                sched_yield()
            }
            state.emitted.wrappingAdd(emitted, ordering: .relaxed)
            state.stored.wrappingAdd(stored, ordering: .relaxed)
            state.finished.wrappingAdd(1, ordering: .releasing)
        }
    }

    /// Every ~50–100 µs, gives a random running producer a new affinity: one random allowed CPU
    /// (two times out of three) or every allowed CPU. Ends when all producers have finished.
    static func startMigrator(_ state: WorkloadState, seed: UInt64) -> WorkerThreads {
        WorkerThreads(count: 1) { _ in
            var random = XorShift(seed: seed ^ 0xA11C_A7E5)
            let cpus = UInt64(max(1, rtts_allowed_cpu_count()))
            let threads = state.slots.count
            while state.finished.load(ordering: .acquiring) < threads {
                usleep(UInt32(50 + random.next() % 51))
                let slot = state.slots[Int(random.next() % UInt64(threads))]
                guard slot.state.compareExchange(expected: ProducerSlot.running, desired: ProducerSlot.migrating,
                                                 ordering: .acquiringAndReleasing).exchanged else { continue }
                let cpu = random.next() % 3 == 0 ? -1 : rtts_allowed_cpu(Int32(random.next() % cpus))
                if rtts_set_thread_affinity(slot.tid.load(ordering: .relaxed), cpu) == 0 {
                    state.migrations.wrappingAdd(1, ordering: .relaxed)
                }
                slot.state.store(ProducerSlot.running, ordering: .releasing)
            }
        }
    }
}

/// Common setup for options that shape the environment of the producers.
enum Environment {
    /// Applies `--inject` and `--signals`; exits with a message on failure.
    static func prepare(inject: Int, signals: Bool) {
        // Only debug builds of the critical sections contain the injection point.
        if inject > 0 { rseqtrace_set_inject_loops(UInt32(inject)) }
        if signals {
            let rc = rtts_install_signal_counter()
            if rc != 0 {
                printError("error: cannot install the timer signal handler (errno \(rc))")
                finish(3)
            }
        }
        if rtts_affinity_snapshot() < 0 {
            printError("error: cannot read this process's CPU affinity")
            finish(3)
        }
    }
}
