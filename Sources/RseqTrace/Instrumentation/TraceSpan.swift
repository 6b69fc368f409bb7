import CRseqTrace
import Synchronization

/// A named duration on the timeline: a begin event when it starts and an end event, carrying its
/// duration, when it ends.
///
/// ```swift
/// let span = TraceSpan.begin("http:request")
/// let response = handle(request)
/// span.end()
/// ```
///
/// or, around a block (synchronous or `async`):
///
/// ```swift
/// try await withTraceSpan("db:query") { try await database.run(query) }
/// ```
///
/// A span is two events of the built-in tracepoints `rseqtrace:span_begin` (fields `name`, `id`)
/// and `rseqtrace:span_end` (`name`, `id`, `duration_ns`); enable them like any event
/// (`--enable 'rseqtrace:span_*'`; they are on by default wherever every event is). `id` is unique
/// within the process, so a begin and its end pair up even when an `async` span ends on another
/// thread; nesting follows from the times on each thread. While `rseqtrace:span_begin` is
/// disabled, beginning a span costs one load and ending it nothing.
///
/// `duration_ns` is measured by the span itself, inside the two event timestamps: it is at most
/// the end event's timestamp minus the begin event's. It survives the loss of the begin event, so
/// a reader can still draw the slice; a begin without an end (the thread exited, the end event was
/// lost) is shown by `rseqtrace stats --spans` as unmatched.
///
/// A span that is dropped without ``end()`` ends when it goes out of scope.
@frozen
public struct TraceSpan: ~Copyable {
    /// The span's name (`provider:name` by convention).
    public let name: StaticString
    /// The span's identifier in the trace, unique within the process; 0 when the begin event was
    /// not recorded (tracing disabled), in which case ending the span records nothing.
    public let id: UInt64
    @usableFromInline let beginCycles: UInt64

    @usableFromInline
    init(name: StaticString, id: UInt64, beginCycles: UInt64) {
        self.name = name
        self.id = id
        self.beginCycles = beginCycles
    }

    /// Begins a span named `name`: records `rseqtrace:span_begin` when it is enabled.
    @inlinable
    public static func begin(_ name: StaticString) -> TraceSpan {
        let word = TraceSpan.beginTracepoint.site.stateWord
        if TracepointSite.isDisabled(word) { return TraceSpan(name: name, id: 0, beginCycles: 0) }
        return beginSlow(name)
    }

    @usableFromInline
    @inline(never)
    static func beginSlow(_ name: StaticString) -> TraceSpan {
        guard TraceSpan.beginTracepoint.isEnabled else { return TraceSpan(name: name, id: 0, beginCycles: 0) }
        let id = rseqtrace_span_id_next()
        TraceSpan.beginTracepoint.emit(name, id)
        // Read after the begin event's timestamp, so the measured duration lies within the events'.
        return TraceSpan(name: name, id: id, beginCycles: CycleClock.now())
    }

    /// Ends the span: records `rseqtrace:span_end` with its duration in nanoseconds.
    @inlinable
    public consuming func end() {
        let id = self.id
        let name = self.name
        let begin = self.beginCycles
        discard self
        if id != 0 { TraceSpan.endSlow(name: name, id: id, beginCycles: begin) }
    }

    deinit {
        if id != 0 { TraceSpan.endSlow(name: name, id: id, beginCycles: beginCycles) }
    }

    @usableFromInline
    @inline(never)
    static func endSlow(name: StaticString, id: UInt64, beginCycles: UInt64) {
        // Read before the end event's timestamp (see beginSlow).
        let end = CycleClock.now()
        TraceSpan.endTracepoint.emit(name, id, nanoseconds(cycles: end >= beginCycles ? end &- beginCycles : 0))
    }

    /// The built-in begin tracepoint: fields `name`, `id`.
    public static let beginTracepoint = Tracepoint2<StaticString, UInt64>("rseqtrace:span_begin", fields: "name id")
    /// The built-in end tracepoint: fields `name`, `id`, `duration_ns`.
    public static let endTracepoint = Tracepoint3<StaticString, UInt64, UInt64>("rseqtrace:span_end", fields: "name id duration_ns")

    /// The begin tracepoint for spans named at run time (the swift-distributed-tracing tracer of
    /// RseqTraceTracing): the same event and schema as ``beginTracepoint`` (a `String` field has the
    /// schema of a `StaticString` one), so readers draw both kinds of span alike.
    package static let namedBeginTracepoint = Tracepoint2<String, UInt64>("rseqtrace:span_begin", fields: "name id")
    /// The end tracepoint for spans named at run time: the event and schema of ``endTracepoint``.
    package static let namedEndTracepoint = Tracepoint3<String, UInt64, UInt64>("rseqtrace:span_end", fields: "name id duration_ns")

    /// A new span identifier, unique within the process and never 0 (the scheme of ``id``), for
    /// spans begun through ``namedBeginTracepoint``.
    package static func nextID() -> UInt64 { rseqtrace_span_id_next() }

    /// Counter ticks per second of the clock the current buffer stamps records with; set when a
    /// buffer is attached (0 before: no span can have begun).
    static let cyclesPerSecond = Atomic<UInt64>(0)

    /// `cycles` of the record clock in nanoseconds (0 while no buffer is attached).
    static func nanoseconds(cycles: UInt64) -> UInt64 {
        let frequency = cyclesPerSecond.load(ordering: .relaxed)
        guard frequency > 0 else { return 0 }
        let product = cycles.multipliedFullWidth(by: 1_000_000_000)
        guard product.high < frequency else { return UInt64.max }
        return frequency.dividingFullWidth(product).quotient
    }

    /// Uses `clock` to convert span durations to nanoseconds (the clock of the attached buffer).
    static func useClock(_ clock: CycleClock) {
        cyclesPerSecond.store(clock.frequency, ordering: .relaxed)
    }
}

/// Runs `body` inside a span named `name` (see ``TraceSpan``) and returns its result; the span ends
/// when `body` returns or throws.
@inlinable
public func withTraceSpan<Result: ~Copyable, Failure: Error>(
    _ name: StaticString, _ body: () throws(Failure) -> Result
) throws(Failure) -> Result {
    let span = TraceSpan.begin(name)
    do {
        let result = try body()
        span.end()
        return result
    } catch {
        span.end()
        throw error
    }
}

/// Runs the asynchronous `body` inside a span named `name` (see ``TraceSpan``) and returns its
/// result; the span ends when `body` returns or throws, possibly on another thread than it began.
@inlinable
public func withTraceSpan<Result: ~Copyable, Failure: Error>(
    _ name: StaticString,
    isolation: isolated (any Actor)? = #isolation,
    _ body: () async throws(Failure) -> Result
) async throws(Failure) -> Result {
    let span = TraceSpan.begin(name)
    do {
        let result = try await body()
        span.end()
        return result
    } catch {
        span.end()
        throw error
    }
}
