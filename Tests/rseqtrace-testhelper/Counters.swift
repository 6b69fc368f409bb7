#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport
import RseqTraceTestPayloads
import Synchronization

/// `counters`: per-CPU counters (docs/BufferProtocol.md §8) incremented by threads that a migrator
/// keeps moving between CPUs, optionally with the critical section widened (`--inject`) and timer
/// signals: every increment must be counted exactly once. Two counters: `api` through
/// `TraceCounter.increment(by:)`, `raw` through the critical section itself, retried on abort, so
/// the aborts are counted. Prints one `counters:` line; driven by Tests/RseqTraceTests/CounterTests.swift.
enum CountersCommand {
    static let usage = """
        counters --threads N --increments N [--inject LOOPS] [--signals]
        """

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: ["signals"], valueNames: ["threads", "increments", "inject"])
        let threads = try options.int("threads", in: 1...64)
        let increments = try options.int("increments", in: 1...10_000_000)
        let inject = try options.int("inject", default: 0, in: 0...100_000)
        let signals = options.has("signals")
        Environment.prepare(inject: inject, signals: signals)
        let buffer: SharedTraceBuffer
        let api: TraceCounter
        let raw: TraceCounter
        do {
            let file = try MemoryFile.create(label: "rseqtrace-counters")
            buffer = try SharedTraceBuffer.create(
                TraceConfiguration(name: "counters-\(getpid())", ringSize: 8192, subbufferSize: 1024), in: file)
            api = try buffer.makeCounter(named: "test.api")
            raw = try buffer.makeCounter(named: "test.raw")
        } catch {
            printError("error: \(error)")
            return 3
        }
        let usesRseq = RseqRuntime.mode.usesRseq
        let cpuBlocks = UInt32(buffer.layout.cpuRingCount)
        let state = ProducerState(threads: threads)
        let aborts = Atomic<UInt64>(0)
        let migrator = ProducerThreads.startMigrator(state, seed: UInt64(getpid()))
        WorkerThreads.run(count: threads) { index in
            let slot = state.slots[index]
            let tid = rtts_gettid()
            slot.tid.store(tid, ordering: .relaxed)
            slot.state.store(ProducerSlot.running, ordering: .releasing)
            var timer: Int64 = -1
            if signals { timer = rtts_thread_timer_create(tid, 20_000 + UInt64(index) * 7_000) }
            var aborted: UInt64 = 0
            for _ in 0..<increments {
                api.increment()
                api.increment(by: 2)
                guard usesRseq else { raw.increment(by: 3); continue }
                while true {
                    // SAFETY: the counter's words, in the live mapping `raw` keeps; cpu below cpuBlocks.
                    let outcome = unsafe rseqtrace_load_cbgeu_addv__cpu_id(raw.perCPUWords, UInt64(TraceLayout.counterLineSize), cpuBlocks, 3)
                    if outcome == 0 { break }
                    if outcome == -1 { aborted += 1; continue }
                    // Not registered yet (self-registration), or no block: through the API.
                    raw.increment(by: 3)
                    break
                }
            }
            if timer >= 0 { _ = rtts_thread_timer_delete(timer) }
            while !slot.state.compareExchange(expected: ProducerSlot.running, desired: ProducerSlot.exited,
                                              ordering: .acquiringAndReleasing).exchanged {
                sched_yield()
            }
            aborts.wrappingAdd(aborted, ordering: .relaxed)
            state.finished.wrappingAdd(1, ordering: .releasing)
        }
        migrator.join()
        let blocks = buffer.counterBlockValues(slot: api.slot)
        let perCPU = blocks.dropLast().reduce(0, &+)
        let cpusUsed = blocks.dropLast().filter { $0 != 0 }.count
        let total = UInt64(threads * increments)
        print("""
            counters: mode=\(RseqRuntime.status.mode) threads=\(threads) api=\(api.value) expected_api=\(3 * total) \
            raw=\(raw.value) expected_raw=\(3 * total) percpu=\(perCPU) atomic=\(blocks.last ?? 0) cpus_used=\(cpusUsed) \
            aborts=\(aborts.load(ordering: .relaxed)) migrations=\(state.migrations.load(ordering: .relaxed)) \
            signals=\(rtts_signal_count())
            """)
        return api.value == Int64(3 * total) && raw.value == Int64(3 * total) ? 0 : 1
    }
}
