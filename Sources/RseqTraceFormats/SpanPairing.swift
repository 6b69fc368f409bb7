/// Pairs the span events of a trace (`rseqtrace:span_begin` / `rseqtrace:span_end`, see
/// `TraceSpan`) by process and `id`, in time order: what `SpanTable` (`stats --spans`) and
/// `TraceTimeline` (the viewer exports) both read spans with.
///
/// `Context` is what a reader keeps with a begin until its end (a track, a time of day).
package struct SpanPairing<Process: Hashable, Context> {
    /// What one event was.
    package enum Step {
        /// Not a span event.
        case notSpan
        /// A span event without a usable `id` field (not written by `TraceSpan`).
        case malformed
        /// A begin, now open.
        case began
        /// An end, with its begin or without it.
        case ended(Ended)
    }

    /// A span event's `name` field, when it has one.
    package static func name(of event: CTFEvent) -> String? {
        if case .string(let text)? = event[field: "name"] { return text }
        return nil
    }

    /// An end and what is known of its span.
    package struct Ended {
        package var id: UInt64
        /// The begin event's name and context and its timestamp (CLOCK_MONOTONIC ns), or nil when
        /// the begin is not in the trace (lost, overwritten, or recorded before the trace began).
        package var begun: (name: String?, begin: UInt64, context: Context)?
        /// The end event's name field.
        package var name: String?
        /// The end event's timestamp (CLOCK_MONOTONIC ns).
        package var end: UInt64
        /// The `duration_ns` the span measured itself (0 when the end event lacks it).
        package var measured: UInt64

        /// The span's duration: end minus begin when both events are in the trace, else what the
        /// span measured.
        package var durationNanoseconds: UInt64 {
            guard let begun else { return measured }
            return end >= begun.begin ? end - begun.begin : 0
        }

        /// When the span began: its begin event's timestamp, or the end minus what it measured.
        package var begin: UInt64 { begun?.begin ?? (end >= measured ? end - measured : 0) }
    }

    private struct Key: Hashable {
        var process: Process
        var id: UInt64
    }

    private var open: [Key: (name: String?, begin: UInt64, context: Context)] = [:]

    package init() {}

    /// Feeds one event of `process` (in time order); `context` is kept with a begin.
    package mutating func add(_ event: CTFEvent, process: Process, context: () -> Context) -> Step {
        let isBegin = event.name == SpanTable.beginEventName
        guard isBegin || event.name == SpanTable.endEventName else { return .notSpan }
        guard case .unsigned(let id)? = event[field: "id"] else { return .malformed }
        let key = Key(process: process, id: id)
        if isBegin {
            open[key] = (Self.name(of: event), event.timestamp, context())
            return .began
        }
        var measured: UInt64 = 0
        if case .unsigned(let value)? = event[field: "duration_ns"] { measured = value }
        return .ended(Ended(id: id, begun: open.removeValue(forKey: key), name: Self.name(of: event),
                            end: event.timestamp, measured: measured))
    }

    /// The begins still open (spans whose end is not in the trace so far), oldest first.
    package var stillOpen: [(process: Process, id: UInt64, name: String?, begin: UInt64, context: Context)] {
        open.map { (process: $0.key.process, id: $0.key.id, name: $0.value.name, begin: $0.value.begin, context: $0.value.context) }
            .sorted { ($0.begin, $0.id) < ($1.begin, $1.id) }
    }
}
