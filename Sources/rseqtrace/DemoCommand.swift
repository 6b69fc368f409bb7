#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats
import RseqTraceSupport

extension BufferMode: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "discard": self = .discard
        case "overwrite": self = .overwrite
        default: return nil
        }
    }
    public static var allValueStrings: [String] { ["discard", "overwrite"] }
    public var defaultValueDescription: String { description }
}

/// `rseqtrace demo`: the built-in instrumented workload, drained and checked.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a built-in multi-threaded workload, drain it concurrently and verify every record.",
        discussion: """
            Each thread emits `demo:tick` events (thread, seq, check word), rotating through copy-commit, \
            reserve/commit and a typed Tracepoint, and every 1000th sequence a `demo:types` event carrying \
            one field of every supported type. The consumer drains while they run and checks every field. The last line is machine-readable:
              summary: mode=<rseq|rseq-self|fallback> emitted=<n> recorded=<n> lost=<n> ns_per_event=<x>
            Set RSEQTRACE_FORCE_FALLBACK=1 to use the fallback protocol.
            """)

    @Option(help: "Producer threads (1-1024).")
    var threads: Int = 4

    @Option(help: "Events per thread (1-100000000).")
    var events: Int = 100_000

    @OptionGroup var buffer: BufferOptions

    @Option(help: """
        Where the events go: buffer (RseqTrace's per-CPU buffers, the default), lttng (LTTng-UST: \
        enable 'demo:*' in an lttng session first) or both. With lttng or both every event goes \
        through the typed tracepoints; lttng and both need a build with `--traits LTTng`.
        """)
    var backend: TraceBackend = .buffer

    /// Where the demo writes its trace unless told otherwise; each run replaces the previous one.
    static let defaultOutput = "rseqtrace-demo"

    @Option(help: """
        Directory for the CTF trace. The default, ./rseqtrace-demo, is replaced by each run; any \
        other directory must not exist or be empty.
        """)
    var output: String = DemoCommand.defaultOutput

    @Flag(name: .customLong("no-output"), help: "Do not write a trace.")
    var noOutput = false

    @Flag(name: .customLong("counter"), help: """
        Also increment the per-CPU counter demo:events once per event (its value is written into \
        the trace as metrics:counter events; a final value other than threads x events fails the run).
        """)
    var counter = false

    @Option(name: .customLong("expected-events"), help: """
        Also write every event the run emits, with its field values and text rendering, as JSON \
        lines to this file (Tools/check-lttng compares LTTng-UST traces with it).
        """)
    var expectedEvents: String?

    func validate() throws {
        guard (1...1024).contains(threads) else { throw ValidationError("--threads must be between 1 and 1024, got \(threads)") }
        guard (1...100_000_000).contains(events) else { throw ValidationError("--events must be between 1 and 100000000, got \(events)") }
        // Every demo:types event must fit a record, or the run cannot account for what it emitted.
        if let layout = TraceLayout(cpuRingCount: 1, ringSize: buffer.bufferSize.bytes, subbufferSize: buffer.subbufferSize.bytes),
           layout.maximumPayloadSize < demoTypesMaximumPayloadSize {
            let overhead = layout.subbufferSize - layout.maximumPayloadSize
            var needed = 256
            while needed - overhead < demoTypesMaximumPayloadSize { needed *= 2 }
            throw ValidationError("""
                --subbuffer-size \(layout.subbufferSize) cannot hold the demo's demo:types events: their payloads \
                reach \(demoTypesMaximumPayloadSize) bytes and a \(layout.subbufferSize)-byte sub-buffer holds at most \
                \(layout.maximumPayloadSize); use --subbuffer-size \(needed) or more
                """)
        }
    }

    func run() throws {
        let status = RseqRuntime.status
        if backend.usesLTTng && !TraceBackend.lttngAvailable {
            printError("error: --backend \(backend.rawValue): \(TraceBackend.missingTraitMessage)")
            throw ExitCode.failure
        }
        let configuration = buffer.configuration(name: "rseqtrace-demo-\(getpid())")
        // With LTTng only, the trace is the lttng session's; RseqTrace's buffers stay empty.
        let output = noOutput || backend == .lttng ? nil : self.output
        if let output {
            do {
                try CTFTraceWriter.prepareDirectory(output, replacingPreviousTrace: output == DemoCommand.defaultOutput)
            } catch {
                printError("error: \(error)")
                throw ExitCode.failure
            }
        }
        let workload = DemoWorkload(threads: threads, eventsPerThread: events, configuration: configuration, output: output,
                                    backend: backend, counts: counter)
        let result: DemoResult
        let traceBuffer: SharedTraceBuffer
        let summary: CTFTraceWriter.Summary?
        do {
            (result, traceBuffer, summary) = try workload.run()
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
        if let expectedEvents {
            do throws(TraceError) {
                guard let typesSchema = TraceRuntime.registeredSchemas.first(where: { $0.name == "demo:types" }) else {
                    throw TraceError(.invalidConfiguration, "demo:types was never registered")
                }
                try DemoTypes.writeExpectedEvents(to: expectedEvents, threads: threads, eventsPerThread: events,
                                                  typesSchema: typesSchema)
            } catch {
                printError("error: --expected-events \(expectedEvents): \(error)")
                throw ExitCode.failure
            }
        }
        let layout = traceBuffer.layout
        print("rseqtrace demo: \(threads) threads x \(events) events, \(buffer.mode) mode, \(formatBytes(layout.ringSize)) ring per CPU (\(formatBytes(layout.subbufferSize)) sub-buffers), \(layout.cpuRingCount) CPU rings")
        print("producer mode: \(status)\(status.mode.usesRseq ? " (rseq area feature size \(status.featureSize))" : "")")
        if let value = result.counterValue {
            print("counter demo:events = \(value), expected \(threads * events)\(value == Int64(threads * events) ? "" : ": WRONG")")
        }
        print("")
        print("ring          emitted    recorded        lost   (dropped / overwritten / too-large / abandoned)")
        for (index, ring) in result.perRing.enumerated() {
            let name = index == layout.slowLaneRing ? "slow lane" : "cpu \(index)"
            print(pad(name, 9) + pad("\(ring.recorded.addingSaturated(ring.lost))", 12, right: true)
                  + pad("\(ring.recorded)", 12, right: true) + pad("\(ring.lost)", 12, right: true)
                  + "   (\(ring.dropped) / \(ring.overwritten) / \(ring.tooLarge) / \(ring.abandoned))"
                  + (ring.quarantined > 0 ? "   quarantined, \(ring.hidden) bytes unread" : ""))
        }
        print("")
        let events = Double(max(result.emitted, result.forwarded, 1))
        let nsPerEvent = Double(result.cpuNanoseconds) / events
        let rate = Double(max(result.emitted, result.forwarded)) / (Double(max(result.wallNanoseconds, 1)) / 1e9)
        print("verified: \(result.intact) demo:tick and \(result.typesIntact) demo:types records intact, \(result.damaged) damaged, \(result.duplicates) duplicated, \(result.timestampRegressions) per-CPU timestamp regressions (\(result.drainRounds) drain rounds)")
        print("cost: \(format(nsPerEvent)) ns of producer CPU time per event; \(format(rate / 1e6)) million events/s aggregate over \(format(Double(result.wallNanoseconds) / 1e6)) ms")
        if let summary, let output {
            print("trace: \(output) (CTF 1.8): \(summary.events) events in \(summary.packets) packets, \(format(summary.bytesPerEvent)) bytes per event on disk, \(summary.discarded) discarded")
            print(RecordDiagnosis.readWith(output))
            if let warning = RecordDiagnosis.emptyStringWarning(output) { print("warning: \(warning)") }
        }
        if backend.usesLTTng {
            let ticks = UInt64(threads) * UInt64(self.events)
            print("lttng: forwarded \(result.forwarded) events to LTTng-UST (demo:tick=\(ticks) demo:types=\(result.forwarded - ticks)); read them from the lttng session's trace")
            for problem in TraceBackend.lttngProblems { printError("lttng: \(problem)") }
        }
        if let value = result.counterValue, value != Int64(threads * self.events) {
            printError("error: verification failed: the per-CPU counter demo:events is \(value) at the end, expected \(threads * self.events) (one increment per event)")
            throw ExitCode.failure
        }
        if backend == .lttng {
            print("summary: mode=\(status.mode) backend=lttng forwarded=\(result.forwarded) ns_per_event=\(format(nsPerEvent))")
            return
        }
        for ring in result.perRing.indices where result.perRing[ring].quarantined > 0 {
            printError("error: ring \(ring) was quarantined: something other than RseqTrace wrote into the trace object")
        }
        let balanced = result.recorded.addingSaturated(result.lost) == result.emitted
        if !balanced || result.damaged > 0 || result.duplicates > 0 || result.timestampRegressions > 0
            || result.intact + result.typesIntact != result.recorded {
            printError("error: verification failed: recorded \(result.recorded) + lost \(result.lost) != emitted \(result.emitted), or damaged/duplicated/out-of-order records (see above)")
            print("summary: mode=\(status.mode) emitted=\(result.emitted) recorded=\(result.recorded) lost=\(result.lost) ns_per_event=\(format(nsPerEvent))")
            throw ExitCode.failure
        }
        print("summary: mode=\(status.mode) emitted=\(result.emitted) recorded=\(result.recorded) lost=\(result.lost) ns_per_event=\(format(nsPerEvent))")
    }
}

func format(_ value: Double) -> String {
    let scaled = (value * 100).rounded() / 100
    var text = "\(scaled)"
    if text.hasSuffix(".0") { text += "0" }
    return text
}

func formatBytes(_ bytes: Int) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
    if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
    return "\(bytes) B"
}

func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return right ? fill + text : text + fill
}
