import RseqTrace
import SystemPackage

/// Writes events as JSON Lines, one object per event, exactly enough for another tool to compare
/// what it decodes from a trace (babeltrace2's bt2, for example) with what was emitted:
///
///     {"event":"demo:tick","fields":{"seq":1,"check":2,"thread":0},"text":"seq=1 check=2 thread=0"}
///
/// `fields` are the values a CTF reader shows (``CTFFieldValue``, byte arrays with their
/// `_<name>_length`): integers as JSON integers (any width), floats in their shortest exact decimal
/// form (binary32 values widened to binary64 first), strings as JSON strings, byte arrays as arrays
/// of integers and enumerations as `[label or null, value]`. `text` is the rendering the LTTng-UST
/// bridge's `rseqtrace:text` events carry (`EventSchema.renderText`).
package struct EventJSONLines {
    private var output: JSONOutput

    /// Creates or truncates the file at `path`.
    package init(path: String) throws(TraceError) {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw TraceError(.systemCallFailed, "cannot create \(path)", errno: error as? Errno)
        }
        output = JSONOutput(fd: fd, path: path)
    }

    /// Appends one event.
    package mutating func append(event: String, fields: [CTFFieldValue], text: String) throws(TraceError) {
        var line = "{\"event\":" + EventJSONLines.quoted(event) + ",\"fields\":{"
        for (index, field) in fields.enumerated() {
            if index > 0 { line += "," }
            line += EventJSONLines.quoted(field.name) + ":" + EventJSONLines.json(field.value)
        }
        line += "},\"text\":" + EventJSONLines.quoted(text) + "}\n"
        try output.write(line)
    }

    /// Writes what is buffered and closes the file.
    package mutating func finish() throws(TraceError) {
        try output.flush()
        do {
            try output.fd.close()
        } catch {
            throw TraceError(.systemCallFailed, "cannot close \(output.path)", errno: error as? Errno)
        }
    }

    static func json(_ value: CTFValue) -> String {
        switch value {
        case .unsigned(let v): return "\(v)"
        case .signed(let v): return "\(v)"
        case .bool(let v): return v ? "true" : "false"
        case .float32(let v): return number(Double(v))
        case .float64(let v): return number(v)
        case .bytes(let bytes): return "[" + bytes.map { "\($0)" }.joined(separator: ",") + "]"
        case .string(let text): return quoted(text)
        case .enumeration(let label, let value, let isSigned):
            return "[" + (label.map(quoted) ?? "null") + "," + (isSigned ? "\(value)" : "\(UInt64(bitPattern: value))") + "]"
        }
    }

    /// Finite values as JSON numbers; infinities and NaN (which JSON lacks) as strings.
    static func number(_ value: Double) -> String { value.isFinite ? "\(value)" : quoted("\(value)") }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String { ChromeTraceExporter().quoted(text) }
}
