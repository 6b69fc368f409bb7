import CoreMetrics
import RseqTrace
import Synchronization

/// A swift-metrics `MetricsFactory` that records into RseqTrace.
///
/// ```swift
/// MetricsSystem.bootstrap(RseqTraceMetricsFactory())
/// let requests = Counter(label: "http.requests", dimensions: [("method", "GET")])
/// requests.increment()
/// ```
///
/// - **Counters** are per-CPU counters of the trace buffer (``RseqTrace/TraceCounter``): an
///   increment is one restartable add to the running CPU's slot, without an atomic read-modify-write
///   or a cache line shared between CPUs. The consumer (`rseqtrace record`) sums the slots and
///   writes each counter's value into the trace as a `metrics:counter` event whenever it changed
///   during a drain round, and every counter's final value at the end. A counter's name is its label
///   followed by its dimensions, `label{key=value,key=value}` (at most 120 UTF-8 bytes); making the
///   same counter twice, in this or another process writing the same buffer, gives the same slot.
/// - **Floating-point counters, meters, recorders (and gauges) and timers** are events, one per call:
///   `metrics:fp_counter` (`amount`, `reset`: true for a reset, `name`), `metrics:meter` (`value`, `change`: `set`,
///   `increment` or `decrement`, `name`), `metrics:recorder` (`value`, `name`) and `metrics:timer`
///   (`duration_ns`, `name`). Like every event they can be disabled (`rseqtrace record --disable
///   'metrics:*'`); then a call costs one load.
///
/// Counters are bound to the buffer attached when they are made (the one `rseqtrace record` hands
/// to the program, or `buffer`): a counter made while no buffer is attached counts nothing, as does
/// one whose name cannot be registered (``problems`` says why).
public final class RseqTraceMetricsFactory: MetricsFactory, Sendable {
    private let buffer: SharedTraceBuffer?
    private let recordedProblems = Mutex<[String]>([])

    /// A factory whose counters live in `buffer`, or, when nil, in the buffer the program records
    /// into (`TraceRuntime.attachedBuffer`, attached from `RSEQTRACE_BUFFER` under `rseqtrace record`).
    public init(buffer: SharedTraceBuffer? = nil) {
        self.buffer = buffer ?? TraceRuntime.attachedBuffer
    }

    /// Why counters made so far count nothing (a name too long, a full counter table), one message each.
    public var problems: [String] { recordedProblems.withLock { $0 } }

    /// `label{key=value,key=value}`, or `label` without dimensions: the name a metric is recorded under.
    public static func name(label: String, dimensions: [(String, String)]) -> String {
        guard !dimensions.isEmpty else { return label }
        return label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// A per-CPU counter of the buffer (see the type's documentation).
    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let name = Self.name(label: label, dimensions: dimensions)
        guard let buffer else { return RseqTraceCounterHandler(name: name, counter: nil) }
        do {
            return RseqTraceCounterHandler(name: name, counter: try buffer.makeCounter(named: name))
        } catch {
            recordedProblems.withLock { $0.append("counter \(name) counts nothing: \(error.message)") }
            return RseqTraceCounterHandler(name: name, counter: nil)
        }
    }

    /// A counter of `Double` amounts: each increment is a `metrics:fp_counter` event.
    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        RseqTraceFloatingPointCounterHandler(name: Self.name(label: label, dimensions: dimensions))
    }

    /// A meter: each change is a `metrics:meter` event.
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        RseqTraceMeterHandler(name: Self.name(label: label, dimensions: dimensions))
    }

    /// A recorder (also what a `Gauge` uses): each value is a `metrics:recorder` event.
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        RseqTraceRecorderHandler(name: Self.name(label: label, dimensions: dimensions))
    }

    /// A timer: each duration is a `metrics:timer` event.
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        RseqTraceTimerHandler(name: Self.name(label: label, dimensions: dimensions))
    }

    /// Nothing to release: a counter's slot stays registered (its value stays in the trace).
    public func destroyCounter(_ handler: any CounterHandler) {}
    /// Nothing to release.
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    /// Nothing to release.
    public func destroyMeter(_ handler: any MeterHandler) {}
    /// Nothing to release.
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    /// Nothing to release.
    public func destroyTimer(_ handler: any TimerHandler) {}
}

/// A swift-metrics counter backed by a per-CPU ``RseqTrace/TraceCounter``.
public final class RseqTraceCounterHandler: CounterHandler, Sendable {
    /// The name the counter is registered under (`label{key=value,...}`).
    public let name: String
    /// The per-CPU counter, or nil when it counts nothing (no buffer, or a name that cannot be registered).
    public let counter: TraceCounter?

    init(name: String, counter: TraceCounter?) {
        self.name = name
        self.counter = counter
    }

    /// One restartable add on the running CPU's slot; never blocks, never allocates.
    @inlinable
    public func increment(by amount: Int64) {
        counter?.increment(by: amount)
    }

    /// Brings the counter back to zero (see ``RseqTrace/TraceCounter/reset()``).
    public func reset() {
        counter?.reset()
    }
}

/// The events of the metrics that are not per-CPU counters.
enum MetricsEvents {
    static let floatingPointCounter = Tracepoint3<Double, Bool, String>("metrics:fp_counter", fields: "amount reset name")
    static let meter = Tracepoint3<Double, MeterChange, String>("metrics:meter", fields: "value change name")
    static let recorder = Tracepoint2<Double, String>("metrics:recorder", fields: "value name")
    static let timer = Tracepoint2<Int64, String>("metrics:timer", fields: "duration_ns name")
}

/// The `change` field of `metrics:meter`.
enum MeterChange: UInt8, TraceEnum {
    case set, increment, decrement
}

final class RseqTraceFloatingPointCounterHandler: FloatingPointCounterHandler, Sendable {
    let name: String
    init(name: String) { self.name = name }
    func increment(by amount: Double) { MetricsEvents.floatingPointCounter.emit(amount, false, name) }
    func reset() { MetricsEvents.floatingPointCounter.emit(0, true, name) }
}

final class RseqTraceMeterHandler: MeterHandler, Sendable {
    let name: String
    init(name: String) { self.name = name }
    func set(_ value: Int64) { MetricsEvents.meter.emit(Double(value), .set, name) }
    func set(_ value: Double) { MetricsEvents.meter.emit(value, .set, name) }
    func increment(by amount: Double) { MetricsEvents.meter.emit(amount, .increment, name) }
    func decrement(by amount: Double) { MetricsEvents.meter.emit(amount, .decrement, name) }
}

final class RseqTraceRecorderHandler: RecorderHandler, Sendable {
    let name: String
    init(name: String) { self.name = name }
    func record(_ value: Int64) { MetricsEvents.recorder.emit(Double(value), name) }
    func record(_ value: Double) { MetricsEvents.recorder.emit(value, name) }
}

final class RseqTraceTimerHandler: TimerHandler, Sendable {
    let name: String
    init(name: String) { self.name = name }
    func recordNanoseconds(_ duration: Int64) { MetricsEvents.timer.emit(duration, name) }
}
