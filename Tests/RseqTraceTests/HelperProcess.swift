#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

/// Runs `rseqtrace-testhelper` (or any program) as a child process (`ChildProcess` of
/// RseqTraceSupport), capturing its standard output and error, with a wall-time limit after which it
/// is killed.
enum HelperProcess {
    /// How a child ended and what it printed.
    typealias Outcome = ChildProcess.Outcome
    /// A started child with its output pipes.
    typealias Running = ChildProcess

    /// The `key=value` fields of the first line of `output` that starts with `prefix`.
    static func parseFields(_ output: String, prefix: String) -> [String: String]? {
        for line in output.split(separator: "\n") where line.hasPrefix(prefix) {
            return parseFields(line.dropFirst(prefix.count))
        }
        return nil
    }

    /// `key=value` pairs separated by spaces.
    static func parseFields(_ text: Substring) -> [String: String] {
        var fields: [String: String] = [:]
        for token in text.split(separator: " ") {
            guard let equals = token.firstIndex(of: "=") else { continue }
            fields[String(token[..<equals])] = String(token[token.index(after: equals)...])
        }
        return fields
    }

    // MARK: Locating the helper

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

    /// The helper executable built next to the test bundle.
    static var helperPath: String { buildDirectory + "/rseqtrace-testhelper" }

    /// The `rseqtrace` executable built next to the test bundle.
    static var rseqtracePath: String { buildDirectory + "/rseqtrace" }

    static func isExecutable(_ path: String) -> Bool {
        // SAFETY: access reads the NUL-terminated copy of `path` Swift passes for the call.
        unsafe access(path, X_OK) == 0
    }

    // MARK: Environment

    /// This process's environment with `removing` taken out and `setting` added (replacing).
    static func environment(removing: Set<String> = [], setting: [String: String] = [:]) -> [String] {
        ProcessEnvironment.current(removing: removing, setting: setting)
    }

    /// Variables that choose the producer mode: removed from a child's environment unless set
    /// explicitly, so the parent's own setting never leaks into a test's expectations.
    static let modeVariables: Set<String> = ["RSEQTRACE_FORCE_FALLBACK", "GLIBC_TUNABLES"]

    /// The environment for a child: ours, without the mode variables, plus `setting`.
    static func childEnvironment(_ setting: [String: String] = [:]) -> [String] {
        environment(removing: modeVariables, setting: setting)
    }

    /// A pipe whose ends are closed on exec.
    static func makePipe() throws(TraceError) -> (read: Int32, write: Int32) {
        try makeCloseOnExecPipe()
    }

    // MARK: Running

    /// Starts `path` with `arguments` (argv[1...]) and `environment`, stdout and stderr captured.
    static func start(_ path: String, _ arguments: [String], environment: [String]) throws(TraceError) -> Running {
        try ChildProcess.spawn([path] + arguments, environment: environment)
    }

    /// Runs `path` to completion (or `timeout`).
    static func run(_ path: String, _ arguments: [String], environment: [String],
                    timeout: Duration) throws(TraceError) -> Outcome {
        try start(path, arguments, environment: environment).wait(timeout: timeout)
    }

    /// Runs the `rseqtrace` executable built next to the tests to completion (or `timeout`), with
    /// this process's environment plus `setting` (so it makes the same producer-mode decision).
    static func runRseqtrace(_ arguments: [String], setting: [String: String] = [:],
                             timeout: Duration = .seconds(120)) throws(TraceError) -> Outcome {
        try run(rseqtracePath, arguments, environment: environment(setting: setting), timeout: timeout)
    }

    /// Starts the `rseqtrace` executable built next to the tests, with this process's environment
    /// plus `setting`, stdout and stderr captured; the caller waits for it (`wait(timeout:)`).
    static func startRseqtrace(_ arguments: [String], setting: [String: String] = [:]) throws(TraceError) -> Running {
        try start(rseqtracePath, arguments, environment: environment(setting: setting))
    }

    /// Runs the test helper to completion (or `timeout`).
    static func runHelper(_ arguments: [String], setting: [String: String] = [:],
                          timeout: Duration) throws(TraceError) -> Outcome {
        guard isExecutable(helperPath) else {
            throw TraceError(.notFound, "\(helperPath) is missing: build with `swift build --build-tests` first")
        }
        return try run(helperPath, arguments, environment: childEnvironment(setting), timeout: timeout)
    }
}

extension ChildProcess.Outcome {
    /// The `key=value` fields of the first stdout line starting with `prefix` (e.g. "stress:").
    func fields(of prefix: String) -> [String: String]? {
        HelperProcess.parseFields(stdout, prefix: prefix)
    }
}
