#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport
import Synchronization

/// One producer thread as the migrator sees it.
package final class ProducerSlot: Sendable {
    /// Kernel thread id, valid while `state` is not `exited`.
    package let tid = Atomic<Int>(0)
    /// `exited` (0), `running` (1), `busy` (2: the migrator is changing its affinity; the thread
    /// waits for that to end before it exits, so its TID is never reused under the migrator).
    package let state = Atomic<Int>(0)
    package static let exited = 0, running = 1, busy = 2
}

/// What the producer threads, the migrator and the threads watching them share.
package final class ProducerState: Sendable {
    package let slots: [ProducerSlot]
    /// Producer threads that have ended.
    package let finished = Atomic<Int>(0)
    /// Write calls made by the producer threads (stored or dropped), added as each thread ends.
    package let emitted = Atomic<UInt64>(0)
    /// Write calls of the producer threads that stored their record, added as each thread ends.
    package let stored = Atomic<UInt64>(0)
    /// Set to make the producer threads end early.
    package let stop = Atomic<Bool>(false)
    /// Affinity changes the migrator made.
    package let migrations = Atomic<UInt64>(0)
    /// Producer threads whose signal timer could not be created.
    package let timerFailures = Atomic<Int>(0)
    /// Set when a producer thread ended because the deadline passed.
    package let timedOut = Atomic<Bool>(false)

    package init(threads: Int) {
        slots = (0..<threads).map { _ in ProducerSlot() }
    }
}

/// What each producer thread does.
package struct ProducerLoop: Sendable {
    package var threads: Int
    /// Records each thread writes at most (`UInt64.max`: until the deadline or `stop`).
    package var events: UInt64
    /// Added to the thread index in every payload id (tells processes apart).
    package var threadBase: UInt32
    /// The signal a per-thread timer sends every 20...50 µs (different for each thread so the
    /// storms do not line up), or nil for no timer.
    package var timerSignal: Int32?
    /// Whether the thread yields the CPU every 100...1000 records.
    package var yield: Bool
    /// Whether the thread pauses 50 µs every 10 records.
    package var paced: Bool
    package var deadline: ContinuousClock.Instant
    package var seed: UInt64

    package init(threads: Int, events: UInt64 = .max, threadBase: UInt32 = 0, timerSignal: Int32? = nil,
                 yield: Bool, paced: Bool = false, deadline: ContinuousClock.Instant, seed: UInt64) {
        self.threads = threads
        self.events = events
        self.threadBase = threadBase
        self.timerSignal = timerSignal
        self.yield = yield
        self.paced = paced
        self.deadline = deadline
        self.seed = seed
    }
}

/// Producer threads writing `PayloadWriter` records, and the migrator moving them between CPUs.
package enum ProducerThreads {
    /// Starts the producer threads. Each writes `loop.events` records unless the deadline passes
    /// (then `state.timedOut` is set) or `state.stop` is set; `state.emitted` counts the write
    /// calls made, `state.stored` those that stored their record.
    package static func start(_ producer: Producer, _ loop: ProducerLoop, _ state: ProducerState) -> WorkerThreads {
        WorkerThreads(count: loop.threads) { index in
            let slot = state.slots[index]
            let tid = rtts_gettid()
            slot.tid.store(tid, ordering: .relaxed)
            slot.state.store(ProducerSlot.running, ordering: .releasing)
            var random = XorShift(seed: loop.seed ^ (UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15))
            var timer: Int64 = -1
            if let signal = loop.timerSignal {
                timer = rtts_thread_timer_create_signal(tid, 20_000 + random.next() % 30_001, signal)
                if timer < 0 { state.timerFailures.wrappingAdd(1, ordering: .relaxed) }
            }
            var writer = PayloadWriter()
            var untilYield = 100 + Int(random.next() % 901)
            var sequence: UInt64 = 0
            var stored: UInt64 = 0
            let thread = loop.threadBase + UInt32(index)
            while sequence < loop.events {
                if sequence & 127 == 0 {
                    if state.stop.load(ordering: .relaxed) { break }
                    if ContinuousClock.now >= loop.deadline {
                        state.timedOut.store(true, ordering: .relaxed)
                        break
                    }
                }
                if writer.emit(producer, thread: thread, sequence: sequence) { stored += 1 }
                sequence += 1
                if loop.paced && sequence % 10 == 0 { pause(nanoseconds: 50_000) }
                if loop.yield {
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
            state.emitted.wrappingAdd(sequence, ordering: .relaxed)
            state.stored.wrappingAdd(stored, ordering: .relaxed)
            state.finished.wrappingAdd(1, ordering: .releasing)
        }
    }

    /// Every 50...100 µs, gives a random running producer a new affinity: one random allowed CPU
    /// (two times out of three) or every allowed CPU. Ends when every producer has finished.
    /// Needs `rtts_affinity_snapshot()` taken first.
    package static func startMigrator(_ state: ProducerState, seed: UInt64) -> WorkerThreads {
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

    /// Sleeps until `nanoseconds` have passed. Signals may interrupt the sleep every few tens of
    /// µs, so it sleeps towards a fixed end instead of resuming with the time the kernel says is
    /// left (which, under a storm, need not shrink).
    package static func pause(nanoseconds: UInt64) {
        let end = SystemClock.monotonic() &+ nanoseconds
        while true {
            let now = SystemClock.monotonic()
            guard now < end else { return }
            var request = SystemClock.timespec(nanoseconds: end - now)
            // SAFETY: `request` is a live local; the remaining time is not wanted.
            _ = unsafe nanosleep(&request, nil)
        }
    }
}

/// Creates a trace buffer under a name no other process uses: `name(attempt)` for attempt 0, 1,
/// ... while the name already exists (at most 17 names).
/// - Throws: the error of the last attempt.
package func createUniqueBuffer(name: (Int) -> String, ringSize: Int, subbufferSize: Int,
                                mode: BufferMode) throws(TraceError) -> SharedTraceBuffer {
    var attempt = 0
    while true {
        let configuration = TraceConfiguration(name: name(attempt), ringSize: ringSize,
                                               subbufferSize: subbufferSize, mode: mode)
        do {
            return try SharedTraceBuffer.create(configuration)
        } catch where error.code == .alreadyExists && attempt < 16 {
            attempt += 1
        }
    }
}

/// A small, fast per-thread random generator (xorshift64*), seeded explicitly.
package struct XorShift: RandomNumberGenerator {
    package var state: UInt64
    package init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    package mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
