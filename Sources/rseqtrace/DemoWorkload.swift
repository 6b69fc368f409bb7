#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats
import Synchronization
import RseqTraceSupport

/// Event ids of the built-in workload.
enum DemoEvent {
    /// `demo:tick`: `thread` (u32), `seq` (u64) and a check word derived from both.
    static let tick: UInt16 = 1
}

/// Payload of `demo:tick`: 20 bytes (MemoryLayout.size), packed in this field order.
struct DemoTick: BitwiseCopyable, Equatable {
    var sequence: UInt64
    var check: UInt64
    var thread: UInt32

    /// The schema that describes this payload to readers (CTF metadata).
    static let schema = EventSchema(name: "demo:tick", fields: [
        EventField("seq", .uint64), EventField("check", .uint64), EventField("thread", .uint32),
    ])

    init(thread: UInt32, sequence: UInt64) {
        self.thread = thread
        self.sequence = sequence
        self.check = DemoTick.check(thread: thread, sequence: sequence)
    }

    static func check(thread: UInt32, sequence: UInt64) -> UInt64 {
        (UInt64(thread) << 40 ^ sequence ^ 0x5EED) &* 0x9E37_79B9_7F4A_7C15
    }
}

/// How often a producer thread also emits `demo:types` (every `typesInterval`-th sequence).
let typesInterval: UInt64 = 1000

/// What a demo run measured and verified.
struct DemoResult {
    var emitted: UInt64 = 0
    /// Events handed to the LTTng-UST forwarder (`--backend lttng|both`): every event, typed.
    var forwarded: UInt64 = 0
    /// `demo:types` events decoded with every field as expected.
    var typesIntact: UInt64 = 0
    var recorded: UInt64 = 0
    var lost: UInt64 = 0
    var intact: UInt64 = 0
    var damaged: UInt64 = 0
    var duplicates: UInt64 = 0
    var timestampRegressions: UInt64 = 0
    var cpuNanoseconds: UInt64 = 0
    /// The value of the per-CPU counter `demo:events` at the end (`--counter`), or nil.
    var counterValue: Int64?
    var wallNanoseconds: UInt64 = 0
    var perRing: [TraceDrainer.RingStatistics] = []
    var drainRounds = 0
}

/// Runs the built-in multi-threaded workload against a fresh trace object and drains it
/// concurrently, checking every record.
struct DemoWorkload {
    var threads: Int
    var eventsPerThread: Int
    var configuration: TraceConfiguration
    /// Where to write the drained events as a CTF trace (a prepared directory), if anywhere.
    var output: String?
    /// Where typed events go. With LTTng (`lttng`, `both`) every event goes through the typed
    /// tracepoints, since copy-commit and reserve/commit write to the buffer only.
    var backend: TraceBackend = .buffer
    /// Whether each event also increments the per-CPU counter `demo:events`.
    var counts = false

    func run() throws(TraceError) -> (DemoResult, SharedTraceBuffer, CTFTraceWriter.Summary?) {
        let buffer = try SharedTraceBuffer.create(configuration)
        // TraceRuntime keeps an attached buffer mapped for the process's lifetime, so its deinit
        // (which removes the /dev/shm name) never runs: remove the name here (the mapping stays).
        defer { buffer.removeName() }
        let tick = try buffer.registerEvent(DemoTick.schema)
        precondition(tick == DemoEvent.tick, "demo:tick is the first event registered")
        let producer = buffer.makeProducer()
        let counter = counts ? try buffer.makeCounter(named: "demo:events") : nil
        // Typed tracepoints (demo:tick's third API, demo:types) write through the runtime.
        try TraceRuntime.attach(buffer)
        try backend.activate()
        try TraceRuntime.disable("demo:disabled")
        try TraceRuntime.disable("demo:text")   // its probe is checked by Tools/check-fastpath, not recorded
        let typedOnly = backend.usesLTTng
        let recorder = try TraceRecorder(buffer: buffer, output: output, traceName: "rseqtrace-demo",
                                         procname: "rseqtrace", pid: getpid())
        let finished = Atomic<Int>(0)
        let cpuTime = Atomic<UInt64>(0)
        let threads = self.threads
        let events = self.eventsPerThread

        var seen = [[Bool]](repeating: [Bool](repeating: false, count: events), count: threads)
        var result = DemoResult()
        var lastStamp = [UInt64](repeating: 0, count: buffer.layout.ringCount)
        var schemas: [UInt16: EventSchema] = [:]
        func check(_ record: borrowing DrainedRecord) {
            if record.timestamp < lastStamp[record.ring] { result.timestampRegressions += 1 }
            lastStamp[record.ring] = record.timestamp
            if record.eventID != DemoEvent.tick {
                if schemas[record.eventID] == nil, let current = try? buffer.registeredEvents() { schemas = current }
                guard let schema = schemas[record.eventID], schema.name == "demo:types",
                      let fields = EventPayloadDecoder.decode(record.bytes, schema: schema),
                      case .unsigned(let thread)? = fields.first(where: { $0.name == "u32" })?.value,
                      case .unsigned(let sequence)? = fields.first(where: { $0.name == "u64" })?.value,
                      fields == DemoTypes(thread: UInt32(truncatingIfNeeded: thread), sequence: sequence).expectedFields(schema: schema) else {
                    result.damaged += 1
                    return
                }
                result.typesIntact += 1
                return
            }
            guard record.payloadSize == MemoryLayout<DemoTick>.size else {
                result.damaged += 1
                return
            }
            let tick = record.load(fromByteOffset: 0, as: DemoTick.self)
            guard Int(tick.thread) < threads, tick.sequence < UInt64(events),
                  tick.check == DemoTick.check(thread: tick.thread, sequence: tick.sequence) else {
                result.damaged += 1
                return
            }
            if seen[Int(tick.thread)][Int(tick.sequence)] {
                result.duplicates += 1
            } else {
                seen[Int(tick.thread)][Int(tick.sequence)] = true
                result.intact += 1
            }
        }

        let wallStart = SystemClock.monotonic()
        let workers = WorkerThreads(count: threads) { index in
            // Producers run at a lower priority than the draining thread, as an application's
            // threads would next to a tracing daemon; otherwise the drainer starves.
            // (Linux nice values are per thread; `who` 0 is the calling thread.)
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            let thread = UInt32(index)
            let start = SystemClock.threadCPUTime()
            for sequence in 0..<UInt64(events) {
                // Rotate through the three producer APIs so all are exercised.
                switch typedOnly ? 2 : sequence % 3 {
                case 0: _ = fastPathProbeCopyCommit(producer, thread, sequence)
                case 1: _ = fastPathProbeReserveCommit(producer, thread, sequence)
                default: fastPathProbeTypedEmit(thread, sequence)
                }
                fastPathProbeDisabled(thread, sequence)
                if let counter { fastPathProbeCounterIncrement(counter, 1) }
                if sequence % typesInterval == 0 { fastPathProbeTypedText("disabled text probe", sequence) }
                if sequence % typesInterval == typesInterval - 1 {
                    DemoTypes(thread: thread, sequence: sequence).emit()
                }
            }
            cpuTime.wrappingAdd(SystemClock.threadCPUTime() &- start, ordering: .relaxed)
            finished.wrappingAdd(1, ordering: .releasing)
        }
        var drainError: TraceError?
        while finished.load(ordering: .acquiring) < threads {
            do throws(TraceError) {
                if try recorder.round(check) == 0 { SystemClock.sleep(microseconds: 200) }
                result.drainRounds += 1
            } catch {
                drainError = error
                break
            }
        }
        workers.join()
        result.wallNanoseconds = SystemClock.monotonic() &- wallStart
        if let drainError { throw drainError }
        buffer.markFinished()
        try recorder.round(quiescent: true, check)
        result.drainRounds += 1
        let summary = try recorder.finish()

        let totals = recorder.drainer.totals
        let all = UInt64(threads) * (UInt64(events) + UInt64(events) / typesInterval)
        result.emitted = backend.sinks.contains(.buffer) ? all : 0
        result.forwarded = backend.usesLTTng ? all : 0
        result.recorded = totals.recorded
        result.lost = totals.lost
        result.cpuNanoseconds = cpuTime.load(ordering: .relaxed)
        result.perRing = recorder.drainer.statistics
        result.counterValue = counter?.value
        return (result, buffer, summary)
    }
}
