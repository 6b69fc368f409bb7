#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats
import SystemPackage

/// What `record` says after its totals about a recording that may not be what the user wanted:
/// a program that never attached to the buffer or enabled no event, rules that matched no event,
/// and empty string fields that babeltrace2 2.0.x misreads. Written on standard output, before the
/// summary line, each line starting with `warning: `.
struct RecordDiagnosis {
    /// The program's name as given.
    var program: String
    /// Events recorded and lost.
    var recorded: UInt64
    var lost: UInt64
    /// How many processes attached to the buffer through `RSEQTRACE_BUFFER` (the buffer header's
    /// count), nil when it could not be read.
    var attachedProcesses: UInt64?
    /// The names of the events the program registered in the buffer (a tracepoint registers when
    /// it is first reached while enabled), nil when the registry could not be read.
    var registeredEvents: [String]?
    /// The rule list the program received, and where its enabling rules came from (`--enable`, or
    /// `RSEQTRACE_EVENTS` inherited from the environment); nil when it received none.
    var rules: (list: String, source: String)?

    /// The warning lines, without the `warning: ` prefix.
    var warnings: [String] {
        var lines: [String] = []
        let names = registeredEvents ?? []
        if recorded == 0 && lost == 0 {
            if attachedProcesses == 0 {
                lines.append("""
                    recorded 0 events: \(program) never attached to the trace buffer. It is not instrumented \
                    with RseqTrace, reached no tracepoint, or writes into a buffer of its own: an instrumented \
                    program attaches to the buffer named by RSEQTRACE_BUFFER when it first reaches a tracepoint \
                    (or calls TraceRuntime.attachFromEnvironment())
                    """)
            } else if registeredEvents != nil && names.isEmpty {
                lines.append("""
                    recorded 0 events: \(program) attached to the trace buffer but enabled no event. The event \
                    rules disabled every event it reached\(rules.map { " (rules: \($0.list))" } ?? ""), its \
                    tracepoints were disabled by a declaration error (reported on its standard error as \
                    'rseqtrace: tracepoint NAME stays disabled: ...'), or it attached a buffer of its own
                    """)
            } else if !names.isEmpty {
                lines.append("recorded 0 events: \(program) enabled \(Self.list(names)) but emitted none")
            }
        }
        if let rules, let parsed = try? EventRules(parsing: rules.list), registeredEvents != nil {
            // Only enabled events reach the registry, so an enabling rule that matches none of them
            // matched nothing the program reached; a disabling rule cannot be judged this way.
            var reported = Set<String>()
            for rule in parsed.rules where rule.enabled && reported.insert(rule.pattern.text).inserted {
                guard !names.contains(where: { rule.pattern.matches($0) }) else { continue }
                lines.append("""
                    \(rules.source) pattern '\(rule.pattern.text)' matched no event; events recorded: \
                    \(names.isEmpty ? "none" : Self.list(names)) (patterns are case-sensitive)
                    """)
            }
        }
        return lines
    }

    /// `a, b and 3 more` (at most 8 names), sorted.
    static func list(_ names: [String]) -> String {
        let sorted = names.sorted()
        let shown = sorted.prefix(8).joined(separator: ", ")
        return sorted.count > 8 ? "\(shown) and \(sorted.count - 8) more" : shown
    }

    /// The buffer header's count of processes that attached through `RSEQTRACE_BUFFER`, read from
    /// the buffer's memory file; nil when it cannot be read.
    static func attachedProcesses(memory: FileDescriptor) -> UInt64? {
        var value: UInt64 = 0
        let offset = off_t(HeaderField.attachedProducers.rawValue)
        // SAFETY: pread writes at most 8 bytes into `value`, which outlives the call.
        let count = unsafe withUnsafeMutableBytes(of: &value) { unsafe pread(memory.rawValue, $0.baseAddress, 8, offset) }
        return count == 8 ? UInt64(littleEndian: value) : nil
    }

    /// The line naming the readers of a trace written to `output`, ours first.
    static func readWith(_ output: String) -> String {
        "read it with: rseqtrace view \(output)   (or rseqtrace stats, rseqtrace export, babeltrace2)"
    }

    /// The largest trace (stream bytes) read back to look for empty strings.
    static let scanLimits = CTFTraceReader.ReadLimits(metadataBytes: 16 << 20, streamFileBytes: 1 << 30,
                                                      totalStreamBytes: 1 << 30, indexFileBytes: 64 << 20)

    /// The warning for a trace in `output` that has empty string field values, nil when it has none.
    /// `schemas`: the events that may be in it; with no string field among them the trace is not read.
    /// A trace with string fields that is too large to read back gets the warning without a count.
    static func emptyStringWarning(_ output: String, schemas: [EventSchema]? = nil) -> String? {
        let hasStringFields = schemas.map { $0.contains { $0.fields.contains { if case .string = $0.type { true } else { false } } } }
        if hasStringFields == false { return nil }
        let caveat = "babeltrace2 2.0.x shows an empty string field with the value of an earlier event's field; rseqtrace view shows them as \"\""
        guard let empty = emptyStrings(in: output) else {
            return hasStringFields == true ? "this trace has string fields (too many events to look for empty ones): \(caveat)" : nil
        }
        return empty > 0 ? "\(empty) string field value(s) of this trace are empty: \(caveat)" : nil
    }

    /// The number of empty string field values in the trace in `directory` (0 without strings), or
    /// nil when it cannot be read within `scanLimits`.
    static func emptyStrings(in directory: String) -> Int? {
        guard let reader = try? CTFTraceReader(directory: directory, limits: scanLimits) else { return nil }
        var records = reader.records()
        var empty = 0
        while let record = try? records.next() {
            guard case .event(let event) = record else { continue }
            for field in event.fields {
                if case .string(let text) = field.value, text.isEmpty { empty += 1 }
            }
        }
        return empty
    }
}
