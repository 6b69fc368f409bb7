import CoreMetrics
import RseqTrace
import RseqTraceMetrics
import RseqTraceSupport
import SystemPackage
import Testing

/// RseqTraceMetricsFactory through swift-metrics' own types (`Counter`, `Gauge`, ...) with an explicit
/// factory: counters on a private buffer, read back from the buffer; nothing is bootstrapped.
@Suite("RseqTraceMetrics: swift-metrics counters as per-CPU counters")
struct MetricsUnitTests {
    static func makeBuffer(cpus: Int = 2) throws -> (SharedTraceBuffer, FileDescriptor) {
        let file = try MemoryFile.create(label: "rseqtrace-metrics-test")
        let buffer = try SharedTraceBuffer.create(
            TraceConfiguration(name: "metrics-test", ringSize: 8192, subbufferSize: 1024, cpuRingCount: cpus), in: file)
        return (buffer, file)
    }

    @Test("Counter increments are exact per name: label with dimensions, the same counter made twice, reset")
    func counters() throws {
        let (buffer, file) = try Self.makeBuffer()
        defer { try? file.close() }
        let factory = RseqTraceMetricsFactory(buffer: buffer)
        let requests = Counter(label: "http.requests", dimensions: [("method", "GET"), ("status", "200")], factory: factory)
        let again = Counter(label: "http.requests", dimensions: [("method", "GET"), ("status", "200")], factory: factory)
        let plain = Counter(label: "http.requests", factory: factory)
        for _ in 0..<1000 { requests.increment() }
        again.increment(by: 24)
        plain.increment(by: UInt8(3))
        let values = Dictionary(uniqueKeysWithValues: buffer.counterValues().map { ($0.name, $0.value) })
        #expect(values == ["http.requests{method=GET,status=200}": 1024, "http.requests": 3])
        plain.reset()
        plain.increment()
        #expect(buffer.counterValues().map(\.value) == [1024, 1])
        #expect(factory.problems.isEmpty)
        #expect(RseqTraceMetricsFactory.name(label: "a", dimensions: []) == "a")
        #expect(RseqTraceMetricsFactory.name(label: "a", dimensions: [("k", "v"), ("x", "y")]) == "a{k=v,x=y}")
    }

    @Test("a counter whose name cannot be registered counts nothing, and the factory says why")
    func unregistrableCounter() throws {
        let (buffer, file) = try Self.makeBuffer()
        defer { try? file.close() }
        let factory = RseqTraceMetricsFactory(buffer: buffer)
        let long = String(repeating: "x", count: 121)
        let counter = Counter(label: long, factory: factory)
        counter.increment()
        #expect(buffer.counterValues().isEmpty)
        #expect(factory.problems == [
            "counter \(long) counts nothing: counter name '\(long)' is empty, longer than 120 UTF-8 bytes or contains NUL: use a shorter name",
        ])
    }

    @Test("increments from many threads sum exactly")
    func threads() throws {
        let (buffer, file) = try Self.makeBuffer()
        defer { try? file.close() }
        let factory = RseqTraceMetricsFactory(buffer: buffer)
        WorkerThreads.run(count: 4) { _ in
            let counter = Counter(label: "work", factory: factory)
            for _ in 0..<25_000 { counter.increment() }
        }
        #expect(buffer.counterValues().map(\.value) == [100_000])
    }

    @Test("the other metrics are events: the factory's handlers take every swift-metrics call without a buffer")
    func eventMetrics() {
        // Without a buffer attached (and no tracepoint armed), every call is a load and a branch.
        let factory = RseqTraceMetricsFactory(buffer: nil)
        FloatingPointCounter(label: "fp", factory: factory).increment(by: 0.5)
        Gauge(label: "gauge", factory: factory).record(1.5)
        Meter(label: "meter", factory: factory).set(3)
        CoreMetrics.Timer(label: "timer", factory: factory).recordNanoseconds(10)
        Recorder(label: "recorder", factory: factory).record(4)
        let counter = Counter(label: "nothing", factory: factory)
        counter.increment()
        #expect(factory.problems.isEmpty)
    }
}
