import RseqTrace
import SystemPackage

/// Converts a CTF trace written by rseqtrace into Chrome's Trace Event Format (JSON), which the
/// Perfetto UI and chrome://tracing open.
///
/// Each event becomes an instant event (`"ph":"i"`, thread scope) on a track per CPU (`tid` =
/// CPU id; the slow lane is the last track) of one process (`pid` = the traced process), with its
/// fields as `args`; each discarded-events range becomes a complete event (`"ph":"X"`) named
/// `discarded events` with the count, on the same track. Timestamps are CLOCK_MONOTONIC
/// microseconds with nanosecond decimals. Integers beyond 2^53 and non-finite floats are written
/// as strings so that no JSON reader loses or rejects them; a field with such a value anywhere in
/// the trace is written as a string in every event of that name, as are enumerations (their label,
/// or the number for a value without one), so that each field keeps one JSON type. Output is streamed: memory use does not grow with the trace.
public struct ChromeTraceExporter {
    /// What an export wrote.
    public struct Summary: Sendable {
        /// Event entries written.
        public var events: UInt64 = 0
        /// `discarded events` entries written (one per range of lost events).
        public var discardedRanges: UInt64 = 0
        /// Bytes of JSON written.
        public var bytes: UInt64 = 0
    }

    /// An exporter (it keeps no state between exports).
    public init() {}

    /// Writes `reader`'s trace to `path` (created, or replaced if it is a regular file).
    public func export(_ reader: CTFTraceReader, to path: String) throws(TraceError) -> Summary {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw TraceError(.systemCallFailed, "cannot create \(path): \(error)")
        }
        defer { try? fd.close() }
        return try export(reader, to: fd, named: path)
    }

    /// Writes `reader`'s trace to the open descriptor `descriptor` (e.g. standard output), which it
    /// does not close; `name` names it in errors.
    public func export(_ reader: CTFTraceReader, to descriptor: FileDescriptor, named name: String) throws(TraceError) -> Summary {
        let textFields = try fieldsWrittenAsStrings(reader)
        var out = JSONOutput(fd: descriptor, path: name)
        var summary = Summary()
        let pid = reader.metadata.environmentValue("vpid").flatMap { value -> Int64? in
            if case .integer(let v) = value { return v }
            return nil
        } ?? 0
        let procname = reader.metadata.environmentValue("procname")?.description ?? "traced process"
        try out.write("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")
        try out.write("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(pid),\"args\":{\"name\":\(quoted(procname))}}")
        var namedCPUs = Set<UInt32>()
        var records = reader.records()
        while let record = try records.next() {
            let cpu = record.cpuID
            if namedCPUs.insert(cpu).inserted {
                try out.write(",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(cpu),\"args\":{\"name\":\"cpu \(cpu)\"}}")
            }
            switch record {
            case .event(let event):
                let category = event.name.split(separator: ":").first.map(String.init) ?? event.name
                var line = ",\n{\"name\":\(quoted(event.name)),\"cat\":\(quoted(category)),\"ph\":\"i\",\"s\":\"t\","
                line += "\"ts\":\(microseconds(event.timestamp)),\"pid\":\(pid),\"tid\":\(cpu),\"args\":{"
                line += event.fields.map { field in
                    let value = json(field.value)
                    let asText = !value.hasPrefix("\"") && textFields.contains(FieldKey(event: event.name, field: field.name))
                    return "\(quoted(field.name)):\(asText ? "\"" + value + "\"" : value)"
                }.joined(separator: ",")
                line += "}}"
                try out.write(line)
                summary.events += 1
            case .discarded(let loss):
                let duration = loss.end >= loss.begin ? loss.end - loss.begin : 0
                try out.write(",\n{\"name\":\"discarded events\",\"cat\":\"rseqtrace\",\"ph\":\"X\",\"ts\":\(microseconds(loss.begin)),\"dur\":\(microseconds(duration)),\"pid\":\(pid),\"tid\":\(cpu),\"args\":{\"count\":\(loss.count)}}")
                summary.discardedRanges += 1
            }
        }
        try out.write("\n]}\n")
        try out.flush()
        summary.bytes = out.written
        return summary
    }

    /// An event's field.
    struct FieldKey: Hashable {
        var event: String
        var field: String
    }

    /// The numeric fields that have a value JSON numbers cannot carry exactly (an integer beyond
    /// 2^53, a non-finite float) in some event, and the enumerations: written as strings in every event.
    func fieldsWrittenAsStrings(_ reader: CTFTraceReader) throws(TraceError) -> Set<FieldKey> {
        var keys = Set<FieldKey>()
        var records = reader.records()
        while let record = try records.next() {
            guard case .event(let event) = record else { continue }
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
            let digits = Array("0123456789abcdef")
            return "\"" + String(b.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }) + "\""
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
