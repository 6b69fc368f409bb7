#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport
import RseqTraceTestPayloads
import Synchronization

/// One producer thread as the migrator sees it.
final class ProducerSlot: Sendable {
    /// Kernel thread id, valid while `state` is not `exited`.
    let tid = Atomic<Int>(0)
    /// `exited` (0), `running` (1), `busy` (2: the migrator is changing its affinity; the thread
    /// waits for that to end before it exits, so its TID is never reused under the migrator).
    let state = Atomic<Int>(0)
    static let exited = 0, running = 1, busy = 2
}

/// What the producers, the migrator, the drainer and the watchdog share.
final class ProducerState: Sendable {
    let slots: [ProducerSlot]
    let finished = Atomic<Int>(0)
    /// Write calls made by the threads themselves (stored or dropped).
    let emitted = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
    let migrations = Atomic<UInt64>(0)
    let timerFailures = Atomic<Int>(0)

    init(threads: Int) {
        slots = (0..<threads).map { _ in ProducerSlot() }
    }
}

/// The records written by the SIGUSR1 handler: thread id `thread`, sequences 0, 1, 2, ... taken
/// from one counter, so each is unique whichever thread the signal interrupts.
enum SignalTracing {
    /// The thread id of handler records (beyond any producer thread index).
    static let thread: UInt32 = 4096
    /// Handler records written so far (each write call, stored or dropped).
    static let sequence = Atomic<UInt64>(0)
    /// The producer the handler writes with; set once, before the handler is installed.
    nonisolated(unsafe) static var producer: Producer?

    /// Installs the tracing SIGUSR1 handler for `producer`. Returns 0 or an errno value.
    static func install(_ producer: Producer) -> Int32 {
        // SAFETY: written once, before sigaction makes the handler reachable; read only by it.
        unsafe SignalTracing.producer = producer
        _ = sequence.load(ordering: .relaxed)  // initialises the counter outside the handler
        var action = sigaction()
        // SAFETY: a C function pointer with no captures, stored into the local sigaction's union.
        unsafe action.__sigaction_handler.sa_handler = { _ in
            let saved = errno
            // SAFETY: set before the handler was installed and never changed afterwards.
            if let producer = unsafe SignalTracing.producer {
                let sequence = SignalTracing.sequence.wrappingAdd(1, ordering: .relaxed).oldValue
                _ = PayloadWriter.emitWithoutScratch(producer, thread: SignalTracing.thread, sequence: sequence)
            }
            errno = saved
        }
        action.sa_flags = SA_RESTART
        // SAFETY: `action` is a live local sigaction.
        unsafe sigemptyset(&action.sa_mask)
        // SAFETY: as above; the old action is not wanted.
        return unsafe sigaction(SIGUSR1, &action, nil) == 0 ? 0 : errno
    }
}

/// Settings of one producing process.
struct ProducerSettings: Sendable {
    var threads: Int
    var pacing: Pacing
    var signals: SignalLoad
    var deadline: ContinuousClock.Instant
    var seed: UInt64
}

enum Producers {
    /// Starts the producer threads: each writes records until the deadline or `state.stop`,
    /// with random yields, a 50 µs pause every 10 records when paced, and a per-thread SIGUSR1
    /// timer (20...50 µs) when signals trace.
    static func start(_ producer: Producer, _ settings: ProducerSettings, _ state: ProducerState) -> WorkerThreads {
        WorkerThreads(count: settings.threads) { index in
            let slot = state.slots[index]
            let tid = rtts_gettid()
            slot.tid.store(tid, ordering: .relaxed)
            slot.state.store(ProducerSlot.running, ordering: .releasing)
            var random = XorShift(seed: settings.seed ^ (UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15))
            var timer: Int64 = -1
            if settings.signals == .tracing {
                timer = rtts_thread_timer_create_signal(tid, 20_000 + random.next() % 30_001, SIGUSR1)
                if timer < 0 { state.timerFailures.wrappingAdd(1, ordering: .relaxed) }
            }
            var writer = PayloadWriter()
            var untilYield = 100 + Int(random.next() % 901)
            var sequence: UInt64 = 0
            let thread = UInt32(index)
            while true {
                if sequence & 127 == 0 {
                    if state.stop.load(ordering: .relaxed) || ContinuousClock.now >= settings.deadline { break }
                }
                _ = writer.emit(producer, thread: thread, sequence: sequence)
                sequence += 1
                if settings.pacing == .paced && sequence % 10 == 0 { pause(nanoseconds: 50_000) }
                untilYield -= 1
                if untilYield == 0 {
                    sched_yield()
                    untilYield = 100 + Int(random.next() % 901)
                }
            }
            if timer >= 0 { _ = rtts_thread_timer_delete(timer) }
            while !slot.state.compareExchange(expected: ProducerSlot.running, desired: ProducerSlot.exited,
                                              ordering: .acquiringAndReleasing).exchanged {
                sched_yield()
            }
            state.emitted.wrappingAdd(sequence, ordering: .relaxed)
            state.finished.wrappingAdd(1, ordering: .releasing)
        }
    }

    /// Sleeps until `nanoseconds` have passed. Signals interrupt the sleep every few tens of µs
    /// in some cells, so it sleeps towards a fixed end instead of resuming with the time the
    /// kernel says is left (which, under a storm, need not shrink).
    static func pause(nanoseconds: UInt64) {
        let end = SystemClock.monotonic() &+ nanoseconds
        while true {
            let now = SystemClock.monotonic()
            guard now < end else { return }
            var request = SystemClock.timespec(nanoseconds: end - now)
            // SAFETY: `request` is a live local; the remaining time is not wanted.
            _ = unsafe nanosleep(&request, nil)
        }
    }

    /// Every 50...100 µs, gives a random running producer one random allowed CPU (two times out
    /// of three) or all of them. Ends when every producer has finished.
    static func startMigrator(_ state: ProducerState, seed: UInt64) -> WorkerThreads {
        WorkerThreads(count: 1) { _ in
            var random = XorShift(seed: seed ^ 0xA11C_A7E5)
            let cpus = UInt64(max(1, rtts_allowed_cpu_count()))
            let threads = state.slots.count
            while state.finished.load(ordering: .acquiring) < threads {
                SystemClock.sleep(microseconds: 50 + Int(random.next() % 51))
                let slot = state.slots[Int(random.next() % UInt64(threads))]
                guard slot.state.compareExchange(expected: ProducerSlot.running, desired: ProducerSlot.busy,
                                                 ordering: .acquiringAndReleasing).exchanged else { continue }
                let cpu = random.next() % 3 == 0 ? -1 : rtts_allowed_cpu(Int32(random.next() % cpus))
                if rtts_set_thread_affinity(slot.tid.load(ordering: .relaxed), cpu) == 0 {
                    state.migrations.wrappingAdd(1, ordering: .relaxed)
                }
                slot.state.store(ProducerSlot.running, ordering: .releasing)
            }
        }
    }

    /// Everything a producing process writes: its threads, the migrator and (when signals trace)
    /// the handler. Returns the threads to join, or an error message.
    static func launch(_ producer: Producer, _ settings: ProducerSettings, _ state: ProducerState) -> Result<[WorkerThreads], SetupError> {
        if rtts_affinity_snapshot() < 0 { return .failure(SetupError("cannot read this process's CPU affinity")) }
        if settings.signals == .tracing {
            let rc = SignalTracing.install(producer)
            if rc != 0 { return .failure(SetupError("cannot install the SIGUSR1 handler (errno \(rc))")) }
        }
        let threads = start(producer, settings, state)
        return .success([threads, startMigrator(state, seed: settings.seed)])
    }

    /// Write calls made so far: the threads' (counted when each ends) plus the handler's.
    static func emitted(_ state: ProducerState) -> (threads: UInt64, handler: UInt64) {
        (state.emitted.load(ordering: .relaxed), SignalTracing.sequence.load(ordering: .relaxed))
    }
}

struct SetupError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A small, fast per-thread random generator (xorshift64*), seeded explicitly.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
