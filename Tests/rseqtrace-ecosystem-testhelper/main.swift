// rseqtrace-ecosystem-testhelper: scenarios for RseqTraceEcosystemTests, run under `rseqtrace record`.
// Each scenario uses only the swift-log / swift-distributed-tracing / swift-metrics APIs on RseqTrace's backends and
// prints one line `ecosystem: scenario=NAME ok=1 ...` with what the test needs to find in the trace
// (span ids, counts); the test reads the trace and checks every event.
//
//   rseqtrace-ecosystem-testhelper logging | tracing | bootstrap | metrics
#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import Logging
import RseqTraceEcosystem
import RseqTraceLogging
import RseqTraceMetrics
import RseqTraceTracing
import Synchronization
import Tracing

struct HelperError: Error, CustomStringConvertible {
    var code: Int
    var description: String { "helper failure \(code)" }
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// Collects a StreamLogHandler's output, to show which handler of a multiplex got a message.
final class Lines: TextOutputStream, @unchecked Sendable {
    let lines = Mutex<[String]>([])
    func write(_ string: String) {
        let text = string.hasSuffix("\n") ? String(string.dropLast()) : string
        lines.withLock { $0.append(text) }
    }
}

let fields = Mutex<[(String, String)]>([])
func say(_ key: String, _ value: some Any) { let text = "\(value)"; fields.withLock { $0.append((key, text)) } }

/// Messages at each level, metadata from the handler, a provider and the message, an error, a
/// filtered message, long text, and a multiplexed logger. Expected in the trace: see
/// RseqTraceEcosystemTests.loggingScenario.
func logging() {
    let provider = Logger.MetadataProvider { ["provided": "p", "shared": "provider"] }
    var logger = Logger(label: "test.logging") { RseqTraceLogHandler(label: $0, logLevel: .info, metadataProvider: provider) }
    logger[metadataKey: "handler"] = "h"
    logger[metadataKey: "shared"] = "handler"
    logger.info("plain")
    logger.info("with metadata", metadata: ["shared": "explicit", "n": "1"])
    var evaluated = 0
    func expensive() -> String { evaluated += 1; return "expensive" }
    logger.debug("filtered \(expensive())")
    logger.trace("filtered \(expensive())")
    say("evaluated", evaluated)
    logger.logLevel = .trace
    for level in Logger.Level.allCases {
        logger.log(level: level, "level \(level)")
    }
    logger.error("failed", error: HelperError(code: 7))
    logger.info("nested", metadata: ["list": ["a", "b"], "map": ["k": "v"]])
    logger.notice("\(String(repeating: "é", count: 600))")   // 1200 bytes: cut to 1024 (512 characters)

    let lines = Lines()
    var both = Logger(label: "test.multiplex") { label in
        MultiplexLogHandler([RseqTraceLogHandler(label: label, logLevel: .warning, metadataProvider: nil),
                             StreamLogHandler(label: label, stream: lines, metadataProvider: nil)])
    }
    both[metadataKey: "m"] = "1"
    both.info("stream only")
    both.warning("to both")
    say("stream", lines.lines.withLock { $0.count })
}

/// Spans through a tracer and through the bootstrapped InstrumentationSystem: nesting, attributes,
/// events, errors, status, explicit instants, links, propagation. The span ids are printed.
func tracing() async {
    let tracer = RseqTraceTracer()
    InstrumentationSystem.bootstrap(tracer)

    // Nested spans in one task, with attributes, an event and a thrown error.
    tracer.withSpan("root", ofKind: .server) { root in
        say("root", root.identity.spanID)
        say("trace", root.identity.traceIDHex)
        root.attributes["b"] = "x"
        root.attributes["a"] = 1
        root.attributes["list"] = [1, 2]
        tracer.withSpan("child") { child in
            say("child", child.identity.spanID)
            child.addEvent(SpanEvent(name: "checkpoint", at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: 42),
                                     attributes: ["ok": true]))
        }
        do {
            try tracer.withSpan("failing", ofKind: .client) { failing in
                say("failing", failing.identity.spanID)
                throw HelperError(code: 3)
            }
        } catch {}
        root.setStatus(SpanStatus(code: .ok))
        root.setStatus(SpanStatus(code: .error, message: "ignored after ok"))
    }

    // The global API (InstrumentationSystem.tracer), async, the child in another task.
    await withSpan("async parent") { parent in
        say("async_parent", (parent as? RseqTraceSpan)?.identity.spanID ?? 0)
        // A detached task does not inherit the task-local context: its span is a root.
        let detached = await Task.detached {
            withSpan("detached") { span in (span as? RseqTraceSpan)?.identity.spanID ?? 0 }
        }.value
        say("detached", detached)
        let inherited = await Task {
            await withSpan("async child") { span in
                await Task.yield()
                return (span as? RseqTraceSpan)?.identity.spanID ?? 0
            }
        }.value
        say("async_child", inherited)
    }

    // Explicit instants: duration_ns is exactly end - start.
    let timed = tracer.startSpan("timed", at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: 1_000_000_000_000))
    say("timed", timed.identity.spanID)
    timed.operationName = "timed renamed"
    timed.end(at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: 1_000_000_012_345))
    timed.end(at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: 1_000_000_099_999))   // ignored

    // Propagation: a remote parent extracted from a carrier, then injected again.
    var context = ServiceContext.topLevel
    tracer.extract(["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"], into: &context,
                   using: DictionaryExtractor())
    tracer.withSpan("remote child", context: context, ofKind: .consumer) { span in
        say("remote_child", span.identity.spanID)
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: DictionaryInjector())
        say("injected", carrier["traceparent"] ?? "none")
        // A link to the earlier timed span.
        span.addLink(timed)
    }
}

/// RseqTraceBootstrap with a second handler (standard output) and span ids in the metadata: a
/// message inside a span carries its ids, one outside carries none; debug passes at level debug.
func bootstrap() {
    RseqTraceBootstrap.bootstrap(logLevel: .debug, spanIDsInLogs: true) { label, provider in
        StreamLogHandler.standardOutput(label: label, metadataProvider: provider)
    }
    let logger = Logger(label: "test.bootstrap")
    logger.debug("outside")
    withSpan("outer") { span in
        let identity = (span as? RseqTraceSpan)?.identity
        say("span", identity?.spanIDHex ?? "none")
        say("trace", identity?.traceIDHex ?? "none")
        logger.info("inside")
    }
    logger.trace("below the level")
    Counter(label: "test.bootstrap").increment(by: 7)
}

/// Every kind of swift-metrics metric through RseqTraceMetricsFactory. Counters: `test.requests`
/// incremented 5000 times by each of 8 tasks (40000), `test.bytes{kind=body}` 7 times by 5 (35),
/// `test.reset` incremented by 10, reset, then by 3 (3), and the same `test.requests` made twice.
/// Events: 4 `metrics:fp_counter` of 0.5, a gauge and a recorder (`metrics:recorder`: 42.5, 7, 3,
/// 4.25), a meter (`metrics:meter`: set 10, increment 2.5, decrement 1), a timer
/// (`metrics:timer`: 1500 and 2500 ns).
func metrics() async {
    let factory = RseqTraceMetricsFactory()
    MetricsSystem.bootstrap(factory)
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<8 {
            group.addTask {
                let counter = Counter(label: "test.requests")
                for _ in 0..<5000 { counter.increment() }
            }
        }
    }
    let bytes = Counter(label: "test.bytes", dimensions: [("kind", "body")])
    for _ in 0..<7 { bytes.increment(by: 5) }
    let reset = Counter(label: "test.reset")
    reset.increment(by: 10)
    reset.reset()
    reset.increment(by: 3)
    let fp = FloatingPointCounter(label: "test.fp")
    for _ in 0..<4 { fp.increment(by: 0.5) }
    let gauge = Gauge(label: "test.gauge")
    gauge.record(42.5)
    gauge.record(7)
    let recorder = Recorder(label: "test.recorder")
    recorder.record(3)
    recorder.record(4.25)
    let meter = Meter(label: "test.meter")
    meter.set(10)
    meter.increment(by: 2.5)
    meter.decrement(by: 1)
    let timer = CoreMetrics.Timer(label: "test.timer")
    timer.recordNanoseconds(1500)
    timer.recordNanoseconds(2500)
    say("problems", factory.problems.count)
    let handler = factory.makeCounter(label: "test.requests", dimensions: []) as? RseqTraceCounterHandler
    say("requests_handler", handler?.counter.map { "percpu:slot\($0.value == 40000 ? "" : "-wrong")" } ?? "none")
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let scenario = arguments.first else {
    print("usage: rseqtrace-ecosystem-testhelper logging | tracing | bootstrap | metrics")
    exit(64)
}
switch scenario {
case "logging": logging()
case "tracing": await tracing()
case "bootstrap": bootstrap()
case "metrics": await metrics()
default:
    print("rseqtrace-ecosystem-testhelper: unknown scenario '\(scenario)'")
    exit(64)
}
print("ecosystem: scenario=\(scenario) ok=1 " + fields.withLock { $0 }.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
