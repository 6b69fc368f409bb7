/// Spans read back from a trace: `rseqtrace:span_begin` / `rseqtrace:span_end` pairs (see
/// `TraceSpan`) matched by their `id`, with per-name duration percentiles and the longest spans.
///
/// A span's duration is the end event's timestamp minus the begin event's when both were
/// recorded; an end whose begin is missing (lost, overwritten, or recorded before the trace began)
/// keeps the `duration_ns` the span measured itself and counts as an *orphan end*; a begin without
/// an end (the thread exited, the trace ended first, the end was lost) counts as *unmatched*.
package struct SpanTable {
    /// The names of the two built-in span events.
    package static let beginEventName = "rseqtrace:span_begin"
    package static let endEventName = "rseqtrace:span_end"

    /// One finished span.
    package struct Span: Equatable {
        package var name: String
        package var id: UInt64
        /// Begin timestamp (CLOCK_MONOTONIC ns), nil for an orphan end.
        package var begin: UInt64?
        package var end: UInt64
        package var durationNanoseconds: UInt64
        /// CLOCK_REALTIME of the begin (of the end for an orphan end), ns since the epoch.
        package var realtime: Int64
        /// Which process recorded it, when the trace says (a trace set of several processes).
        package var process: String?
    }

    private var pairing = SpanPairing<String?, Int64>()
    package private(set) var spans: [Span] = []
    package private(set) var orphanEnds = 0
    /// Span events without a usable `id` field (not written by `TraceSpan`).
    package private(set) var malformed = 0

    package init() {}

    /// Feeds one event (in time order); events other than the span events are ignored.
    package mutating func add(_ event: CTFEvent, process: String? = nil) {
        switch pairing.add(event, process: process, context: { event.realtime }) {
        case .notSpan, .began:
            return
        case .malformed:
            malformed += 1
        case .ended(let ended):
            if ended.begun == nil { orphanEnds += 1 }
            spans.append(Span(name: (ended.begun.map { $0.name } ?? ended.name) ?? "?", id: ended.id,
                              begin: ended.begun?.begin, end: ended.end, durationNanoseconds: ended.durationNanoseconds,
                              realtime: ended.begun?.context ?? event.realtime, process: process))
        }
    }

    /// Begins still open: spans whose end is not in the trace, oldest first.
    package var unmatchedBegins: [(name: String, id: UInt64, begin: UInt64, realtime: Int64, process: String?)] {
        pairing.stillOpen.map { (name: $0.name ?? "?", id: $0.id, begin: $0.begin, realtime: $0.context, process: $0.process) }
    }

    /// Duration statistics of the spans of one name.
    package struct NameSummary: Equatable {
        package var name: String
        package var count: Int
        package var p50: UInt64
        package var p99: UInt64
        package var max: UInt64
        package var total: UInt64

        package init(name: String, count: Int, p50: UInt64, p99: UInt64, max: UInt64, total: UInt64) {
            self.name = name
            self.count = count
            self.p50 = p50
            self.p99 = p99
            self.max = max
            self.total = total
        }
    }

    /// Per-name summaries (nearest-rank percentiles), by name.
    package func summaries() -> [NameSummary] {
        var durations: [String: [UInt64]] = [:]
        for span in spans { durations[span.name, default: []].append(span.durationNanoseconds) }
        return durations.keys.sorted().map { name in
            let sorted = durations[name]!.sorted()
            func percentile(_ p: Int) -> UInt64 { sorted[Swift.max(1, (p * sorted.count + 99) / 100) - 1] }
            return NameSummary(name: name, count: sorted.count, p50: percentile(50), p99: percentile(99),
                               max: sorted.last!, total: sorted.reduce(0, &+))
        }
    }

    /// The `count` longest spans, longest first (ties: earlier end first).
    package func longest(_ count: Int) -> [Span] {
        Array(spans.sorted { ($0.durationNanoseconds, $1.end) > ($1.durationNanoseconds, $0.end) }.prefix(count))
    }

    /// The report `stats --spans` prints: per-name percentiles, the longest spans, the unmatched
    /// begins, and a machine-readable last line
    /// `spans: spans=<n> names=<n> unmatched_begins=<n> orphan_ends=<n>`.
    package func report(longestCount: Int = 10, timeOfDay: (Int64) -> String) -> [String] {
        var lines: [String] = []
        func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
            guard text.count < width else { return text + " " }
            let fill = String(repeating: " ", count: width - text.count)
            return right ? fill + text : text + fill
        }
        let summaries = summaries()
        lines.append(pad("span", 32) + pad("count", 10, right: true) + pad("p50_ns", 14, right: true)
                     + pad("p99_ns", 14, right: true) + pad("max_ns", 14, right: true) + pad("total_ns", 16, right: true))
        for summary in summaries {
            lines.append(pad(summary.name, 32) + pad("\(summary.count)", 10, right: true)
                         + pad("\(summary.p50)", 14, right: true) + pad("\(summary.p99)", 14, right: true)
                         + pad("\(summary.max)", 14, right: true) + pad("\(summary.total)", 16, right: true))
        }
        let longest = longest(longestCount)
        if !longest.isEmpty {
            lines.append("")
            lines.append("longest spans:")
            for span in longest {
                let start = span.begin != nil ? "from [\(timeOfDay(span.realtime))]" : "ended [\(timeOfDay(span.realtime))], begin not in trace"
                let who = span.process.map { " \($0)" } ?? ""
                lines.append("  \(span.durationNanoseconds) ns  \(span.name)  id=\(span.id)\(who)  \(start)")
            }
        }
        let unmatched = unmatchedBegins
        if !unmatched.isEmpty {
            lines.append("")
            lines.append("unmatched begins (no end in the trace): \(unmatched.count)")
            for entry in unmatched.prefix(longestCount) {
                let who = entry.process.map { " \($0)" } ?? ""
                lines.append("  \(entry.name)  id=\(entry.id)\(who)  began [\(timeOfDay(entry.realtime))]")
            }
        }
        if orphanEnds > 0 {
            lines.append("ends whose begin is not in the trace: \(orphanEnds) (their durations are the spans' own measurements)")
        }
        if malformed > 0 {
            lines.append("span events without an id field (not written by TraceSpan): \(malformed)")
        }
        lines.append("spans: spans=\(spans.count) names=\(summaries.count) unmatched_begins=\(unmatched.count) orphan_ends=\(orphanEnds)")
        return lines
    }
}
