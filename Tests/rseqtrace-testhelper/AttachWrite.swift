#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import RseqTraceTestPayloads

/// `attach-write`: attaches to an existing buffer as an extra producer process.
enum AttachWriteCommand {
    static let usage = """
        attach-write --name NAME --threads N --events N --id BASE [--signals] [--yield] [--inject LOOPS]
                     [--time-limit SECONDS]
        """

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: ["signals", "yield"],
                                  valueNames: ["name", "threads", "events", "id", "inject", "time-limit", "seed"])
        let name = try options.string("name")
        let threads = try options.int("threads", in: 1...256)
        let events = try options.int("events", in: 1...10_000_000)
        let base = try options.int("id", in: 0...(1 << 23))
        let inject = try options.int("inject", default: 0, in: 0...1_000_000)
        let timeLimit = try options.int("time-limit", default: 60, in: 1...3600)
        let seed = UInt64(try options.int("seed", default: Int(getpid()), in: 0...Int.max))
        Environment.prepare(inject: inject, signals: options.has("signals"))
        let status = RseqRuntime.status

        guard let buffer = attachAsProducer(name: name) else { return 3 }
        let producer = buffer.makeProducer()
        let state = ProducerState(threads: threads)
        let loop = ProducerLoop(
            threads: threads, events: UInt64(events), threadBase: UInt32(base),
            timerSignal: options.has("signals") ? rtts_timer_signal() : nil,
            yield: options.has("yield"), deadline: ContinuousClock.now.advanced(by: .seconds(timeLimit)), seed: seed)
        ProducerThreads.start(producer, loop, state).join()
        let emitted = state.emitted.load(ordering: .relaxed)
        print("attach-write: mode=\(status.mode) path=\(producer.path) emitted=\(emitted) stored=\(state.stored.load(ordering: .relaxed)) signals=\(rtts_signal_count())")
        if state.timedOut.load(ordering: .relaxed) {
            printError("error: the \(timeLimit) s time limit expired")
            return 1
        }
        return emitted == UInt64(threads) * UInt64(events) ? 0 : 1
    }
}
