import RseqTrace
import Synchronization
import Tracing

/// A swift-distributed-tracing `Tracer` whose spans are recorded into RseqTrace's per-CPU buffers.
///
/// ```swift
/// InstrumentationSystem.bootstrap(RseqTraceTracer())
/// try await withSpan("GET /items", ofKind: .server) { span in
///     span.attributes["http.status_code"] = 200
///     try await handle(request)
/// }
/// ```
///
/// Each span is recorded as:
/// - `rseqtrace:span_begin` {`name`, `id`} and `rseqtrace:span_end` {`name`, `id`, `duration_ns`}:
///   the events of ``RseqTrace/TraceSpan``, so the span is a slice in `rseqtrace export --format
///   perfetto` / `chrome` and is counted by `rseqtrace stats --spans`, like any other span;
/// - `tracing:span_start` {`trace_id` (32 hex digits), `span_id`, `parent_span_id` (0 for a root),
///   `kind`, `operation`, `start_ns`} and `tracing:span_end` {`span_id`, `status` (`unset`, `ok`,
///   `error`), `status_message`, `attributes` (`key=value` pairs sorted by key), `duration_ns`};
/// - `tracing:span_event`, `tracing:span_error` and `tracing:span_link` for what is added to a
///   span while it runs.
///
/// `span_id` equals the `id` of the span's `rseqtrace:span_*` events. `start_ns`, `time_ns` and
/// `duration_ns` come from the instants given to the span (`DefaultTracerClock`, wall-clock
/// nanoseconds since the epoch, unless told otherwise); the events' own timestamps are when they
/// were recorded. Each event is enabled and disabled by name like any other
/// (`rseqtrace record --disable 'tracing:*'` keeps only the slices). While none of a span's
/// events is enabled, the span is not recording: attributes set on it are dropped.
///
/// Parents come from the context the span starts in (the task-local
/// `InstrumentationContext.current` that `withSpan` sets, or an explicit context): a child
/// inherits the trace id and records its parent's span id. A root span gets a new trace id: 64
/// random bits drawn once per process, then the root span's id.
///
/// Propagation between processes uses the W3C `traceparent` header: `inject` writes the current
/// span's identity, `extract` reads it, and a span started in the extracted context continues
/// that trace with the remote span as its parent. `tracestate` and baggage are not propagated.
///
/// A span records its end only when `end()` is called (`withSpan` does); a span that is never
/// ended has only its begin in the trace (`stats --spans` reports it as unmatched).
public struct RseqTraceTracer: Tracer {
    /// The spans this tracer makes.
    public typealias Span = RseqTraceSpan

    /// A tracer. Tracers hold no state: every instance records into the process's buffer.
    public init() {}

    /// Starts a span named `operationName` as a child of the span in `context`, if any.
    public func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> RseqTraceSpan {
        let parentContext = context()
        let parent = parentContext.rseqTraceSpanContext
        let spanID = TraceSpan.nextID()
        let identity = RseqTraceSpanContext(
            traceIDHigh: parent?.traceIDHigh ?? Self.processTraceBits,
            traceIDLow: parent?.traceIDLow ?? spanID,
            spanID: spanID, isSampled: parent?.isSampled ?? true, isRemote: false)
        var spanContext = parentContext
        spanContext.rseqTraceSpanContext = identity
        let start = instant().nanosecondsSinceEpoch

        var recording = false
        var slice = false
        if TraceSpan.namedBeginTracepoint.isEnabled {
            TraceSpan.namedBeginTracepoint.emit(operationName, spanID)
            recording = true
            slice = true
        }
        if TracingEvents.start.isEnabled {
            TracingEvents.start.emit(TraceIDField(high: identity.traceIDHigh, low: identity.traceIDLow), spanID,
                                     parent?.spanID ?? 0, SpanKindField(kind), operationName, start)
            recording = true
        }
        return RseqTraceSpan(operationName: operationName, kind: kind, context: spanContext, identity: identity,
                             startNanoseconds: start, isRecording: recording, isSlice: slice)
    }

    /// Nothing to flush: events are in the shared buffers as soon as they are recorded.
    public func forceFlush() {}

    /// Reads a W3C `traceparent` from `carrier` into `context` (nothing when it is absent or
    /// malformed).
    public func extract<Carrier, Extract>(_ carrier: Carrier, into context: inout InstrumentationContext,
                                          using extractor: Extract)
    where Extract: Extractor, Extract.Carrier == Carrier {
        guard let value = extractor.extract(key: Self.traceparentKey, from: carrier),
              let identity = RseqTraceSpanContext(traceparent: value) else { return }
        context.rseqTraceSpanContext = identity
    }

    /// Writes the W3C `traceparent` of the span in `context` into `carrier` (nothing without a span).
    public func inject<Carrier, Inject>(_ context: InstrumentationContext, into carrier: inout Carrier,
                                        using injector: Inject)
    where Inject: Injector, Inject.Carrier == Carrier {
        guard let identity = context.rseqTraceSpanContext else { return }
        injector.inject(identity.traceparent, forKey: Self.traceparentKey, into: &carrier)
    }

    /// The carrier key of the W3C trace context.
    public static let traceparentKey = "traceparent"

    /// The high half of root spans' trace ids: random, drawn once per process.
    static let processTraceBits: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        var bits: UInt64 = 0
        while bits == 0 { bits = generator.next() }
        return bits
    }()
}

/// A span of ``RseqTraceTracer``. Thread-safe: its name, attributes and status may be changed
/// from any task while it runs.
public final class RseqTraceSpan: Tracing.Span {
    /// The span's context: the context it started in, with its own identity
    /// (``RseqTraceSpanContext``) in place of its parent's.
    public let context: InstrumentationContext
    /// The span's identity (also in ``context``).
    public let identity: RseqTraceSpanContext
    /// What kind of operation the span covers.
    public let kind: SpanKind
    /// When the span started, in nanoseconds since the epoch.
    public let startNanoseconds: UInt64
    /// Whether any of the span's events was enabled when it started; otherwise attributes, events,
    /// errors and links added to it are dropped.
    public let isRecording: Bool
    /// Whether `rseqtrace:span_begin` was recorded, so the end records `rseqtrace:span_end`.
    private let isSlice: Bool

    private struct State {
        var operationName: String
        var attributes: SpanAttributes = [:]
        var status: SpanStatus?
        var ended = false
    }

    private let state: Mutex<State>

    init(operationName: String, kind: SpanKind, context: InstrumentationContext, identity: RseqTraceSpanContext,
         startNanoseconds: UInt64, isRecording: Bool, isSlice: Bool) {
        self.context = context
        self.identity = identity
        self.kind = kind
        self.startNanoseconds = startNanoseconds
        self.isRecording = isRecording
        self.isSlice = isSlice
        self.state = Mutex(State(operationName: operationName))
    }

    /// The span's name; a new name is recorded in the span's end events.
    public var operationName: String {
        get { state.withLock { $0.operationName } }
        set { state.withLock { $0.operationName = newValue } }
    }

    /// The span's attributes, recorded (rendered as text) in `tracing:span_end`.
    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set {
            guard isRecording else { return }
            state.withLock { $0.attributes = newValue }
        }
    }

    /// Sets the status recorded when the span ends (OpenTelemetry's rule: `ok` is final, and an
    /// `error` does not replace it).
    public func setStatus(_ status: SpanStatus) {
        state.withLock { current in
            if current.status?.code == .ok { return }
            current.status = status
        }
    }

    /// Records `event` as `tracing:span_event`.
    public func addEvent(_ event: SpanEvent) {
        guard isRecording, TracingEvents.event.isEnabled else { return }
        TracingEvents.event.emit(identity.spanID, event.name, TraceString(TracingEvents.render(event.attributes)),
                                 event.nanosecondsSinceEpoch)
    }

    /// Records `error` as `tracing:span_error`: its type, its description and `attributes`.
    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes,
                                                    at instant: @autoclosure () -> Instant) {
        guard isRecording, TracingEvents.error.isEnabled else { return }
        TracingEvents.error.emit(identity.spanID, String(reflecting: type(of: error)),
                                 TraceString(String(describing: error)), TraceString(TracingEvents.render(attributes)),
                                 instant().nanosecondsSinceEpoch)
    }

    /// Records `link` as `tracing:span_link` (a link to a context without a span is ignored).
    public func addLink(_ link: SpanLink) {
        guard isRecording, let other = link.context.rseqTraceSpanContext, TracingEvents.link.isEnabled else { return }
        TracingEvents.link.emit(identity.spanID, TraceIDField(high: other.traceIDHigh, low: other.traceIDLow),
                                other.spanID, TraceString(TracingEvents.render(link.attributes)))
    }

    /// Ends the span at `instant`: records `tracing:span_end` and `rseqtrace:span_end`. Only the
    /// first call records anything.
    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let ended: State? = state.withLock { current in
            if current.ended { return nil }
            current.ended = true
            return current
        }
        guard let ended, isRecording else { return }
        let end = instant().nanosecondsSinceEpoch
        let duration = end >= startNanoseconds ? end - startNanoseconds : 0
        if TracingEvents.end.isEnabled {
            let status: SpanStatusField
            switch ended.status?.code {
            case nil: status = .unset
            case .ok?: status = .ok
            case .error?: status = .error
            }
            TracingEvents.end.emit(identity.spanID, status, ended.status?.message ?? "",
                                   TraceString(TracingEvents.render(ended.attributes)), duration)
        }
        if isSlice { TraceSpan.namedEndTracepoint.emit(ended.operationName, identity.spanID, duration) }
    }
}
