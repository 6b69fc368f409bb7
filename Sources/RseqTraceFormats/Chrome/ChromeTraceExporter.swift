import RseqTrace
import SystemPackage

/// Converts a CTF trace written by rseqtrace into Chrome's Trace Event Format (JSON), which the
/// Perfetto UI and chrome://tracing open.
///
/// It draws the trace's ``TraceTimeline`` (the model the Perfetto export draws too): each traced
/// process (`pid`, named by a `process_name` metadata event) has one track per thread (`tid`, with
/// a `thread_name` metadata event) when the trace records which thread wrote each event, or one
/// per CPU otherwise (`tid` = 2^22 + CPU id, above any Linux tid, named `cpu N`). Events are
/// instant events (`"ph":"i"`, thread scope) with their fields as `args`; spans are complete
/// events (`"ph":"X"`) on their thread, nesting as they did, or async events (`"b"`/`"e"`) when a
/// span ended on another thread than it began; a span that never ended is a begin (`"B"`) without
/// an end. Each discarded-events range is a complete event named `discarded events` with the
/// count on its CPU's track, and a counter (`"ph":"C"`) per CPU holds the number of events
/// discarded so far. A set of traces (`CTFTraceSet`, one trace per process) gives one process per
/// traced process: its pid, or an id above 2^22 for a trace that names no pid or whose pid
/// another program of the set had. Timestamps are CLOCK_MONOTONIC microseconds with nanosecond
/// decimals — or, for a set whose traces are not of one boot (different clock uuids),
/// CLOCK_REALTIME microseconds since the epoch. Integers beyond 2^53 and non-finite floats are
/// written as strings so that no JSON reader loses or rejects them; a field with such a value
/// anywhere in the trace is written as a string in every event of that name, as are enumerations
/// (their label, or the number for a value without one), so that each field keeps one JSON type.
/// Output is streamed: memory use grows with the open spans, not with the trace.
public struct ChromeTraceExporter {
    /// What an export wrote.
    public struct Summary: Sendable {
        /// Event entries written (instants: events other than span events).
        public var events: UInt64 = 0
        /// Spans written (complete, async, or unfinished).
        public var spans: UInt64 = 0
        /// Spans whose end is not in the trace (written as a begin without an end).
        public var unfinishedSpans: UInt64 = 0
        /// Thread tracks written (0 when the trace does not record threads).
        public var threads: Int = 0
        /// `discarded events` entries written (one per range of lost events).
        public var discardedRanges: UInt64 = 0
        /// Bytes of JSON written.
        public var bytes: UInt64 = 0
        /// Processes written (one `process_name` each).
        public var processes: Int = 0
    }

    /// An exporter (it keeps no state between exports).
    public init() {}

    /// Writes `reader`'s trace to `path` (created, or replaced if it is a regular file).
    public func export(_ reader: CTFTraceReader, to path: String) throws(TraceError) -> Summary {
        try export(CTFTraceSet(reader: reader), to: path)
    }

    /// Writes `reader`'s trace to the open descriptor `descriptor` (e.g. standard output), which it
    /// does not close; `name` names it in errors.
    public func export(_ reader: CTFTraceReader, to descriptor: FileDescriptor, named name: String) throws(TraceError) -> Summary {
        try export(CTFTraceSet(reader: reader), to: descriptor, named: name)
    }

    /// Writes the traces of `set` to `path` (created, or replaced if it is a regular file);
    /// `problems` as for `export(_:to:named:problems:)`.
    public func export(_ set: CTFTraceSet, to path: String,
                       problems: (CTFTraceSet.Problem) -> Void = { _ in }) throws(TraceError) -> Summary {
        let fd = try OutputFile.create(path)
        defer { try? fd.close() }
        return try export(set, to: fd, named: path, problems: problems)
    }

    /// Writes the traces of `set` to the open descriptor `descriptor` (e.g. standard output),
    /// which it does not close; `name` names it in errors. A trace of a set found damaged while it
    /// is read is written up to the damage, as `CTFTraceSet.Iterator` reads it; `problems` is
    /// called with each such trace when it is found.
    public func export(_ set: CTFTraceSet, to descriptor: FileDescriptor, named name: String,
                       problems: (CTFTraceSet.Problem) -> Void = { _ in }) throws(TraceError) -> Summary {
        let textFields = try fieldsWrittenAsStrings(set)
        var out = JSONOutput(fd: descriptor, path: name)
        var summary = Summary()
        try out.write("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[")
        var first = true
        let counts = try TraceTimeline.draw(set, problems: problems) { (item) throws(TraceError) in
            for line in entries(item, textFields: textFields) {
                try out.write((first ? "\n" : ",\n") + line)
                first = false
            }
        }
        summary.events = counts.instants
        summary.spans = counts.slices + counts.unfinishedSlices
        summary.unfinishedSpans = counts.unfinishedSlices
        summary.discardedRanges = counts.discardedRanges
        summary.threads = counts.threadTracks
        summary.processes = counts.processes
        try out.write("\n]}\n")
        try out.flush()
        summary.bytes = out.written
        return summary
    }

    /// The Chrome `tid` of a track.
    static func chromeThreadID(_ track: TraceTimeline.Track) -> Int64 {
        switch track {
        case .thread(_, let tid): return tid
        case .cpu(_, let cpu), .discardedCounter(_, let cpu): return (1 << 22) + Int64(cpu)
        case .span, .metricCounter: return 0
        }
    }

    /// The JSON entries of one timeline item.
    func entries(_ item: TraceTimeline.Item, textFields: Set<FieldKey>) -> [String] {
        switch item {
        case .process(let process):
            return ["{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(process.pid),\"args\":{\"name\":\(quoted(process.name))}}"]
        case .track(let info):
            switch info.track {
            case .thread(let pid, _), .cpu(let pid, _):
                return ["{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(Self.chromeThreadID(info.track)),\"args\":{\"name\":\(quoted(info.name))}}"]
            case .span, .discardedCounter, .metricCounter:
                return []   // async spans and counters are named by their events
            }
        case .instant(let track, let event):
            let category = event.name.split(separator: ":").first.map(String.init) ?? event.name
            var line = "{\"name\":\(quoted(event.name)),\"cat\":\(quoted(category)),\"ph\":\"i\",\"s\":\"t\","
            line += "\"ts\":\(microseconds(event.timestamp)),\"pid\":\(track.pid),\"tid\":\(Self.chromeThreadID(track)),\"args\":{"
            line += event.fields.map { field in
                let value = json(field.value)
                let asText = !value.hasPrefix("\"") && textFields.contains(FieldKey(event: event.name, field: field.name))
                return "\(quoted(field.name)):\(asText ? "\"" + value + "\"" : value)"
            }.joined(separator: ",")
            line += "}}"
            return [line]
        case .slice(let slice):
            var args = "\"id\":\(json(.unsigned(slice.id)))"
            if slice.beginMissing { args += ",\"begin_not_in_trace\":true" }
            let common = "\"name\":\(quoted(slice.name)),\"cat\":\"span\",\"pid\":\(slice.track.pid)"
            guard let end = slice.end else {
                return ["{\(common),\"ph\":\"B\",\"ts\":\(microseconds(slice.begin)),\"tid\":\(Self.chromeThreadID(slice.track)),\"args\":{\(args),\"end_not_in_trace\":true}}"]
            }
            if case .span(_, let id) = slice.track {
                let scope = "\"id\":\"0x\(String(id, radix: 16))\""
                return ["{\(common),\"ph\":\"b\",\(scope),\"ts\":\(microseconds(slice.begin)),\"args\":{\(args)}}",
                        "{\(common),\"ph\":\"e\",\(scope),\"ts\":\(microseconds(end))}"]
            }
            return ["{\(common),\"ph\":\"X\",\"ts\":\(microseconds(slice.begin)),\"dur\":\(microseconds(end - slice.begin)),\"tid\":\(Self.chromeThreadID(slice.track)),\"args\":{\(args)}}"]
        case .discarded(let track, let loss):
            let duration = loss.end >= loss.begin ? loss.end - loss.begin : 0
            return ["{\"name\":\"discarded events\",\"cat\":\"rseqtrace\",\"ph\":\"X\",\"ts\":\(microseconds(loss.begin)),\"dur\":\(microseconds(duration)),\"pid\":\(track.pid),\"tid\":\(Self.chromeThreadID(track)),\"args\":{\"count\":\(loss.count)}}"]
        case .counter(let track, let at, let value):
            if case .metricCounter(_, let name) = track {
                return ["{\"name\":\(quoted(name)),\"cat\":\"metrics\",\"ph\":\"C\",\"ts\":\(microseconds(at)),\"pid\":\(track.pid),\"args\":{\"value\":\(value)}}"]
            }
            guard case .discardedCounter(_, let cpu) = track else { return [] }
            return ["{\"name\":\"discarded events, cpu \(cpu)\",\"cat\":\"rseqtrace\",\"ph\":\"C\",\"ts\":\(microseconds(at)),\"pid\":\(track.pid),\"args\":{\"discarded\":\(value)}}"]
        }
    }

    /// An event's field.
    struct FieldKey: Hashable {
        var event: String
        var field: String
    }

    /// The numeric fields that have a value JSON numbers cannot carry exactly (an integer beyond
    /// 2^53, a non-finite float) in some event, and the enumerations: written as strings in every event.
    func fieldsWrittenAsStrings(_ set: CTFTraceSet) throws(TraceError) -> Set<FieldKey> {
        var keys = Set<FieldKey>()
        var records = set.records()
        while let element = try records.next() {
            guard case .event(let event) = element.record else { continue }
            for field in event.fields {
                switch field.value {
                case .unsigned, .signed, .float32, .float64:
                    if json(field.value).hasPrefix("\"") { keys.insert(FieldKey(event: event.name, field: field.name)) }
                case .enumeration:
                    // Labels are strings, so a value without a label is written as one too.
                    keys.insert(FieldKey(event: event.name, field: field.name))
                case .bytes, .string, .bool: break
                }
            }
        }
        return keys
    }

    /// "12345.678" from nanoseconds.
    func microseconds(_ ns: UInt64) -> String {
        let fraction = ns % 1000
        let padded = fraction < 10 ? "00\(fraction)" : fraction < 100 ? "0\(fraction)" : "\(fraction)"
        return "\(ns / 1000).\(padded)"
    }

    func json(_ value: CTFValue) -> String {
        switch value {
        case .unsigned(let v): return v <= 1 << 53 ? "\(v)" : "\"\(v)\""
        case .signed(let v): return v.magnitude <= 1 << 53 ? "\(v)" : "\"\(v)\""
        case .bool(let v): return v ? "true" : "false"
        case .float32(let v): return v.isFinite ? "\(v)" : "\"\(v)\""
        case .float64(let v): return v.isFinite ? "\(v)" : "\"\(v)\""
        case .bytes(let b):
            return "\"" + OutputFile.hex(b) + "\""
        case .string(let text): return quoted(text)
        case .enumeration(let label, let value, let isSigned):
            if let label { return quoted(label) }
            return isSigned ? json(.signed(value)) : json(.unsigned(UInt64(bitPattern: value)))
        }
    }

    /// A JSON string literal.
    func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Buffered writes to a file descriptor (the JSON and protobuf exports).
struct JSONOutput {
    let fd: FileDescriptor
    let path: String
    var buffer: [UInt8] = []
    var written: UInt64 = 0

    mutating func write(_ text: String) throws(TraceError) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func write(bytes: [UInt8]) throws(TraceError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func flush() throws(TraceError) {
        guard !buffer.isEmpty else { return }
        do {
            _ = try unsafe buffer.withUnsafeBytes { try unsafe fd.writeAll($0) }  // SAFETY: the array's own bytes
        } catch {
            throw TraceError(.systemCallFailed, "cannot write \(path): \(error)")
        }
        written += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }
}
