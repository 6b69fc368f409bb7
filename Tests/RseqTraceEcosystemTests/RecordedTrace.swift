#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport
import Testing

/// Programs built next to the tests, run under `rseqtrace record`, and their traces read back with
/// our reader (`CTFTraceReader`) and with babeltrace2 / bt2.
enum RecordedTrace {
    static let babeltrace = "/usr/bin/babeltrace2"
    static let python = "/usr/bin/python3"

    /// Directory of the running test executable (`.build/<triple>/<config>/`), from /proc/self/exe.
    static let buildDirectory: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        // SAFETY: readlink writes at most count - 1 bytes into the live local buffer.
        let length = unsafe buffer.withUnsafeMutableBufferPointer { unsafe readlink("/proc/self/exe", $0.baseAddress!, $0.count - 1) }
        guard length > 0 else { return "." }
        let path = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }()

    /// The package root (the build directory is `<root>/.build/<triple>/<config>`).
    static var packageRoot: String {
        var parts = buildDirectory.split(separator: "/", omittingEmptySubsequences: false)
        while let last = parts.last, last != ".build" { parts.removeLast() }
        if !parts.isEmpty { parts.removeLast() }
        return parts.joined(separator: "/")
    }

    static func isExecutable(_ path: String) -> Bool {
        // SAFETY: access reads the NUL-terminated copy of `path` Swift passes for the call.
        unsafe access(path, X_OK) == 0
    }

    /// The environment for a child: ours without the variables that choose the producer mode.
    static func environment() -> [String] {
        ProcessEnvironment.current(removing: ["RSEQTRACE_FORCE_FALLBACK", "GLIBC_TUNABLES", "RSEQTRACE_EVENTS"])
    }

    static func run(_ path: String, _ arguments: [String], timeout: Duration = .seconds(120)) throws(TraceError) -> ChildProcess.Outcome {
        try ChildProcess.spawn([path] + arguments, environment: environment()).wait(timeout: timeout)
    }

    static func removeTree(_ path: String) {
        _ = try? run("/bin/rm", ["-rf", path], timeout: .seconds(30))
    }

    /// A trace directory of this test process, named after `tag`.
    static func directory(_ tag: String) -> String { "/tmp/rseqtrace-eco-\(getpid())-\(tag)" }

    /// Runs `program arguments` under `rseqtrace record` (with `options`) into `output`; returns the
    /// outcome of `record` (whose stdout includes the program's) and the events read back.
    static func record(_ program: String, _ arguments: [String], options: [String] = [], output: String)
        throws -> (ChildProcess.Outcome, [CTFEvent]) {
        removeTree(output)
        let outcome = try run(buildDirectory + "/rseqtrace",
                              ["record", "--output", output] + options + ["--", buildDirectory + "/" + program] + arguments)
        let events = try CTFTraceReader(directory: output).readAll().compactMap { record -> CTFEvent? in
            if case .event(let event) = record { return event }
            return nil
        }
        return (outcome, events)
    }

    /// The `key=value` fields of the first stdout line starting with `prefix`.
    static func fields(_ output: String, _ prefix: String) -> [String: String]? {
        for line in output.split(separator: "\n") where line.hasPrefix(prefix) {
            var fields: [String: String] = [:]
            for token in line.dropFirst(prefix.count).split(separator: " ") {
                guard let equals = token.firstIndex(of: "=") else { continue }
                fields[String(token[..<equals])] = String(token[token.index(after: equals)...])
            }
            return fields
        }
        return nil
    }

    /// Runs Tools/python/check_ecosystem_trace.py (bt2) on `directory`; its `bt2:` line's fields.
    static func bt2Summary(_ directory: String) throws -> [String: String] {
        let script = packageRoot + "/Tools/python/check_ecosystem_trace.py"
        let outcome = try run(python, [script, directory])
        #expect(outcome.exitCode == 0, "\(outcome)")
        return try #require(fields(outcome.stdout, "bt2:"), "\(outcome)")
    }

    /// Lines of `babeltrace2 DIRECTORY` per event name (the name follows the process and pid).
    static func babeltraceCounts(_ directory: String) throws -> [String: Int] {
        let outcome = try run(babeltrace, [directory])
        #expect(outcome.exitCode == 0, "\(outcome.stderr)")
        var counts: [String: Int] = [:]
        for line in outcome.stdout.split(separator: "\n") {
            // "[time] (+delta) host:program:(pid) provider:event: { cpu_id = N }, { ... }"
            let words = line.split(separator: " ", maxSplits: 4)
            guard words.count > 3, words[3].hasSuffix(":") else { continue }
            counts[String(words[3].dropLast()), default: 0] += 1
        }
        return counts
    }
}

extension CTFEvent {
    /// The text of a string field ("" when missing or not text).
    func text(_ name: String) -> String {
        if case .string(let value)? = self[field: name] { return value }
        return ""
    }

    /// An unsigned field (nil when missing or not unsigned).
    func unsigned(_ name: String) -> UInt64? {
        if case .unsigned(let value)? = self[field: name] { return value }
        return nil
    }

    /// The label of an enumeration field.
    func label(_ name: String) -> String? {
        if case .enumeration(let label, _, _)? = self[field: name] { return label }
        return nil
    }
}
