// rseqtrace-example-server: a small server-like program that uses only the Swift server
// ecosystem's APIs (swift-log, swift-distributed-tracing, swift-metrics); one bootstrap call routes them
// to RseqTrace.
//
//   swift build --product rseqtrace-example-server
//   rseqtrace record -o /tmp/server -- .build/debug/rseqtrace-example-server 200
//   rseqtrace export --format perfetto /tmp/server -o server.perfetto-trace   (open in ui.perfetto.dev)
//
// Arguments: [requests] [--concurrency N] [--fail-every K]. Each request is a client span that injects
// a W3C traceparent into its headers, and a server span that extracts it (so both are in one trace),
// with a database span inside; every K-th request's query fails (404). It logs at info, warning and
// debug (the logger's level is info, so debug messages are filtered out). It counts requests and
// failures with swift-metrics counters (per-CPU counters in the trace: `metrics:counter` events) and
// times each query with a swift-metrics timer (`metrics:timer` events).
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Metrics
import RseqTraceEcosystem
import Tracing

struct ItemNotFound: Error, CustomStringConvertible {
    var id: Int
    var description: String { "item \(id) not found" }
}

/// Headers as a carrier for context propagation.
struct HeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into headers: inout [String: String]) { headers[key] = value }
}

struct HeaderExtractor: Extractor {
    func extract(key: String, from headers: [String: String]) -> String? { headers[key] }
}

/// The "server": handles one request whose headers carry the caller's trace context.
struct ItemServer {
    var logger: Logger
    var failEvery: Int
    let requests = Counter(label: "items.requests")
    let failures = Counter(label: "items.requests", dimensions: [("status", "404")])
    let queryTime = Metrics.Timer(label: "items.query")

    func handle(path: String, id: Int, headers: [String: String]) async -> Int {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: HeaderExtractor())
        return await withSpan("GET /items", context: context, ofKind: .server) { span in
            span.attributes["http.method"] = "GET"
            span.attributes["http.target"] = path
            requests.increment()
            logger.info("request received", metadata: ["request": "\(id)"])
            logger.debug("headers: \(headers)")
            do {
                let count = try await query(id: id)
                span.attributes["http.status_code"] = 200
                span.attributes["items.count"] = count
                span.setStatus(SpanStatus(code: .ok))
                logger.info("request handled", metadata: ["request": "\(id)", "status": "200"])
                return 200
            } catch {
                failures.increment()
                span.attributes["http.status_code"] = 404
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: "not found"))
                logger.warning("request failed", error: error, metadata: ["request": "\(id)", "status": "404"])
                return 404
            }
        }
    }

    func query(id: Int) async throws -> Int {
        let start = ContinuousClock.now
        defer { queryTime.record(duration: ContinuousClock.now - start) }
        return try await withSpan("db.query", ofKind: .client) { span in
            span.attributes["db.statement"] = "SELECT * FROM items WHERE id = ?"
            span.attributes["db.id"] = id
            await Task.yield()
            span.addEvent(SpanEvent(name: "rows fetched", attributes: ["rows": .int64(Int64(id % 7))]))
            if failEvery > 0 && id % failEvery == failEvery - 1 { throw ItemNotFound(id: id) }
            return id % 7
        }
    }
}

var requests = 100
var concurrency = 4
var failEvery = 10
var words = CommandLine.arguments.dropFirst()
while let word = words.popFirst() {
    switch word {
    case "--concurrency", "--fail-every":
        guard let value = words.popFirst().flatMap(Int.init), value >= 0, value <= 1_000_000 else {
            print("rseqtrace-example-server: \(word) needs a number from 0 to 1000000")
            exit(64)
        }
        if word == "--concurrency" { concurrency = max(1, value) } else { failEvery = value }
    default:
        guard let value = Int(word), value >= 0, value <= 10_000_000 else {
            print("rseqtrace-example-server: unknown argument '\(word)'; usage: rseqtrace-example-server [requests] [--concurrency N] [--fail-every K]")
            exit(64)
        }
        requests = value
    }
}

RseqTraceBootstrap.bootstrap(logLevel: .info)

var logger = Logger(label: "example.server")
logger[metadataKey: "service"] = "items"
logger.info("server started", metadata: ["requests": "\(requests)", "concurrency": "\(concurrency)"])

/// Serves `total` requests from `tasks` concurrent clients; returns how many failed.
func serve(_ server: ItemServer, total: Int, tasks: Int) async -> Int {
    await withTaskGroup(of: Int.self) { group in
        for worker in 0..<tasks {
            group.addTask {
                var failed = 0
                for id in stride(from: worker, to: total, by: tasks) {
                    let path = "/items/\(id)"
                    let status = await withSpan("client GET /items", ofKind: .client) { span in
                        span.attributes["request.id"] = id
                        var headers: [String: String] = ["accept": "application/json"]
                        InstrumentationSystem.instrument.inject(ServiceContext.current ?? .topLevel, into: &headers,
                                                                using: HeaderInjector())
                        return await server.handle(path: path, id: id, headers: headers)
                    }
                    if status != 200 { failed += 1 }
                }
                return failed
            }
        }
        var failed = 0
        for await count in group { failed += count }
        return failed
    }
}

let failed = await serve(ItemServer(logger: logger, failEvery: failEvery), total: requests, tasks: concurrency)

logger.info("server stopped", metadata: ["failed": "\(failed)"])
print("rseqtrace-example-server: requests=\(requests) failed=\(failed) concurrency=\(concurrency)")
