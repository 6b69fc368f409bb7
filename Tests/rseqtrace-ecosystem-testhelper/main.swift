// rseqtrace-ecosystem-testhelper: scenarios for RseqTraceEcosystemTests, run under `rseqtrace record`.
// Each scenario uses only the swift-log / swift-distributed-tracing APIs on RseqTrace's backends and
// prints one line `ecosystem: scenario=NAME ok=1 ...` with what the test needs to find in the trace
// (span ids, counts); the test reads the trace and checks every event.
//
//   rseqtrace-ecosystem-testhelper logging | tracing | bootstrap
#if canImport(Glibc)
import Glibc
#endif
import Logging
import RseqTraceEcosystem
import RseqTraceLogging
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
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let scenario = arguments.first else {
    print("usage: rseqtrace-ecosystem-testhelper logging | tracing | bootstrap")
    exit(64)
}
switch scenario {
case "logging": logging()
case "tracing": await tracing()
case "bootstrap": bootstrap()
default:
    print("rseqtrace-ecosystem-testhelper: unknown scenario '\(scenario)'")
    exit(64)
}
print("ecosystem: scenario=\(scenario) ok=1 " + fields.withLock { $0 }.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
