#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport
import RseqTraceTestPayloads
import Synchronization

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
        let loop = ProducerLoop(threads: settings.threads, timerSignal: settings.signals == .tracing ? SIGUSR1 : nil,
                                yield: true, paced: settings.pacing == .paced,
                                deadline: settings.deadline, seed: settings.seed)
        return ProducerThreads.start(producer, loop, state)
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
        return .success([threads, ProducerThreads.startMigrator(state, seed: settings.seed)])
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
