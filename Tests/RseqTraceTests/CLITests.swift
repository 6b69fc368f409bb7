import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace

/// What a run of the `rseqtrace` executable produced.
private struct ToolRun: CustomStringConvertible {
    /// Exit status when the process exited normally.
    var exitStatus: Int32?
    /// Terminating signal when it did not.
    var signal: Int32?
    var timedOut: Bool
    var stdout: String
    var stderr: String

    var stdoutLines: [Substring] { stdout.split(separator: "\n", omittingEmptySubsequences: true) }
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }

    var description: String {
        "exit \(exitStatus.map(String.init) ?? "-") signal \(signal.map(String.init) ?? "-") timedOut \(timedOut)\n"
            + "--- stdout\n\(stdout)--- stderr\n\(stderr)"
    }
}

/// `summary: mode=<m> emitted=<n> recorded=<n> lost=<n> ns_per_event=<x>`, parsed strictly.
private struct DemoSummary {
    var mode: String
    var emitted: UInt64
    var recorded: UInt64
    var lost: UInt64
    var nsPerEvent: Double

    init?(_ line: Substring) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0] == "summary:" else { return nil }
        var values: [String: Substring] = [:]
        let keys = ["mode", "emitted", "recorded", "lost", "ns_per_event"]
        for (field, key) in zip(fields.dropFirst(), keys) {
            guard field.hasPrefix(key + "=") else { return nil }
            values[key] = field.dropFirst(key.count + 1)
        }
        guard let mode = values["mode"], ["rseq", "rseq-self", "fallback"].contains(mode),
              let emitted = values["emitted"].flatMap({ UInt64($0) }),
              let recorded = values["recorded"].flatMap({ UInt64($0) }),
              let lost = values["lost"].flatMap({ UInt64($0) }),
              let ns = values["ns_per_event"], !ns.isEmpty,
              ns.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), ns.filter({ $0 == "." }).count <= 1,
              let nsPerEvent = Double(ns) else { return nil }
        self.mode = String(mode)
        self.emitted = emitted
        self.recorded = recorded
        self.lost = lost
        self.nsPerEvent = nsPerEvent
    }
}

/// Spawns the debug `rseqtrace` next to the test bundle with posix_spawn, capturing stdout and
/// stderr through pipes.
private enum RseqTraceTool {
    static let path: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        // SAFETY: readlink writes at most buffer.count - 1 bytes into the array's storage.
        let count = unsafe readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let directory = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return directory + "/rseqtrace"
    }()

    static var isBuilt: Bool {
        // SAFETY: the path is converted to a NUL-terminated C string for the call.
        unsafe access(path, X_OK) == 0
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        // SAFETY: `ts` is a local.
        unsafe clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// This process's environment with `extra` variables set (replacing existing ones).
    static func environment(adding extra: [String: String]) -> [String] {
        var entries: [String] = []
        // SAFETY: environ is a nil-terminated array of NUL-terminated strings owned by libc; it is
        // only read here, on this thread, and not modified meanwhile by these tests.
        var cursor: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = unsafe environ
        // SAFETY: as above; the loop stops at the terminating nil.
        while let entry = unsafe cursor?.pointee {
            // SAFETY: as above.
            entries.append(unsafe String(cString: entry))
            // SAFETY: as above: still inside the array, before its terminating nil.
            unsafe cursor = unsafe cursor?.advanced(by: 1)
        }
        entries.removeAll { entry in extra.keys.contains { entry.hasPrefix($0 + "=") } }
        return entries + extra.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// Runs the tool with `arguments` (and `extraEnvironment` added to this process's environment);
    /// kills it (SIGKILL, by pid) if it runs longer than `limit` seconds.
    static func run(_ arguments: [String], extraEnvironment: [String: String] = [:], limit: Double = 120) -> ToolRun {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        // SAFETY: each array has room for the two descriptors pipe writes.
        guard unsafe pipe(&outPipe) == 0, unsafe pipe(&errPipe) == 0 else {
            return ToolRun(exitStatus: nil, signal: nil, timedOut: false, stdout: "", stderr: "pipe failed: \(errno)")
        }
        // Close-on-exec, so that children spawned concurrently by other tests do not inherit them
        // (which would keep our pipes open after our child exits).
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // SAFETY: a zero-initialised C structure, initialised by posix_spawn_file_actions_init below.
        var actions = unsafe posix_spawn_file_actions_t()
        // SAFETY: `actions` is a local initialised here and destroyed below.
        unsafe posix_spawn_file_actions_init(&actions)
        // SAFETY: as above; dup2 in the child clears close-on-exec on 1 and 2 only.
        unsafe posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        // SAFETY: as above.
        unsafe posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        // SAFETY: strdup copies each argument into a fresh NUL-terminated C string, freed below.
        let argv = unsafe ([path] + arguments).map { unsafe strdup($0) } + [nil]
        // SAFETY: as above.
        let envp = unsafe environment(adding: extraEnvironment).map { unsafe strdup($0) } + [nil]
        var pid: pid_t = 0
        // SAFETY: `path` and the strdup'ed argv/envp strings are NUL-terminated and live until after
        // the call; both arrays end with nil.
        let rc = unsafe posix_spawn(&pid, path, &actions, nil, argv, envp)
        // SAFETY: initialised above, not used after this.
        unsafe posix_spawn_file_actions_destroy(&actions)
        // SAFETY: each pointer came from strdup and is freed once.
        for unsafe pointer in unsafe argv + envp { unsafe free(pointer) }
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            return ToolRun(exitStatus: nil, signal: nil, timedOut: false, stdout: "", stderr: "posix_spawn failed: \(rc)")
        }

        var out: [UInt8] = []
        var err: [UInt8] = []
        var fds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0),
                   pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = monotonicSeconds() + limit
        var timedOut = false
        while fds.contains(where: { $0.fd >= 0 }) {
            if monotonicSeconds() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
            // SAFETY: `fds` holds fds.count pollfd structures.
            let ready = unsafe poll(&fds, nfds_t(fds.count), 500)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                // SAFETY: read writes at most chunk.count bytes into the array's storage.
                let n = unsafe read(fds[i].fd, &chunk, chunk.count)
                if n > 0 {
                    if i == 0 { out += chunk[0..<n] } else { err += chunk[0..<n] }
                } else if n == 0 || errno != EINTR {
                    close(fds[i].fd)
                    fds[i].fd = -1
                }
            }
        }
        for descriptor in fds where descriptor.fd >= 0 { close(descriptor.fd) }
        var status: Int32 = 0
        // SAFETY: `status` is a local.
        while unsafe waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7F
        return ToolRun(exitStatus: signal == 0 ? (status >> 8) & 0xFF : nil, signal: signal == 0 ? nil : signal,
                       timedOut: timedOut, stdout: String(decoding: out, as: UTF8.self),
                       stderr: String(decoding: err, as: UTF8.self))
    }
}

@Suite("CLI: the rseqtrace executable", .enabled(if: RseqTraceTool.isBuilt, "the rseqtrace executable is built next to the tests"))
struct CLITests {
    @Test("demo --threads 3 --events 3000 exits 0 and its summary balances: emitted 9009 (9000 ticks + 9 demo:types) == recorded + lost")
    func demoDiscardBalances() throws {
        let run = RseqTraceTool.run(["demo", "--no-output", "--threads", "3", "--events", "3000"])
        #expect(run.exitStatus == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        let summary = try #require(DemoSummary(last), "last line: \(last)")
        #expect(summary.emitted == 9009)
        // The child inherits this environment, so it makes the same rseq decision as this process
        // (glibc 2.36 registers rseq on this kernel: "rseq").
        #expect(summary.mode == RseqRuntime.mode.rawValue)
        #expect(summary.recorded + summary.lost == summary.emitted)
        #expect(summary.nsPerEvent > 0)
        // 9000 records of 40 bytes cannot fill 4 MiB rings that are drained concurrently.
        #expect(summary.lost == 0)
        #expect(run.stdout.contains("verified: 9000 demo:tick and 9 demo:types records intact, 0 damaged, 0 duplicated, 0 per-CPU timestamp regressions"), "\(run)")
    }

    @Test("demo in overwrite mode with 16K rings loses records, counts every one, and still verifies")
    func demoOverwriteBalances() throws {
        let run = RseqTraceTool.run(["demo", "--no-output", "--mode", "overwrite", "--buffer-size", "16K", "--subbuffer-size", "1K",
                                     "--threads", "2", "--events", "5000"])
        #expect(run.exitStatus == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        let summary = try #require(DemoSummary(last), "last line: \(last)")
        #expect(summary.emitted == 10010)
        #expect(summary.lost > 0)
        #expect(summary.recorded > 0)
        #expect(summary.recorded + summary.lost == summary.emitted)
        #expect(run.stdout.contains("overwrite mode, 16 KiB ring per CPU (1 KiB sub-buffers)"))
        #expect(run.stdout.contains(" records intact, 0 damaged, 0 duplicated, 0 per-CPU timestamp regressions"), "\(run)")
    }

    @Test("with RSEQTRACE_FORCE_FALLBACK=1 the demo runs the locked protocol and still balances exactly",
          arguments: [["--threads", "2", "--events", "2000"],
                      ["--mode", "overwrite", "--buffer-size", "16K", "--subbuffer-size", "1K", "--threads", "2", "--events", "5000"]])
    func demoFallbackBalances(arguments: [String]) throws {
        let run = RseqTraceTool.run(["demo", "--no-output"] + arguments, extraEnvironment: ["RSEQTRACE_FORCE_FALLBACK": "1"])
        #expect(run.exitStatus == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        #expect(run.stdout.contains("producer mode: fallback (RSEQTRACE_FORCE_FALLBACK is set)"), "\(run)")
        let last = try #require(run.stdoutLines.last, "\(run)")
        let summary = try #require(DemoSummary(last), "last line: \(last)")
        #expect(summary.mode == "fallback")
        #expect(summary.emitted == (arguments.contains("overwrite") ? 10010 : 4004))
        #expect(summary.recorded + summary.lost == summary.emitted)
        if !arguments.contains("overwrite") { #expect(summary.lost == 0) }
    }

    @Test("bad input exits 64 with a single error line (followed only by the usage)",
          arguments: [
            (["demo", "--threads", "0"], "Error: --threads must be between 1 and 1024, got 0"),
            (["demo", "--threads", "1025"], "Error: --threads must be between 1 and 1024, got 1025"),
            (["demo", "--events", "0"], "Error: --events must be between 1 and 100000000, got 0"),
            (["demo", "--mode", "bogus"], "Error: The value 'bogus' is invalid for '--mode <mode>'. Please provide one of 'discard' and 'overwrite'."),
            (["demo", "--buffer-size", "3000"], "Error: --buffer-size 3000 and --subbuffer-size 65536 must be powers of two"),
            (["demo", "--buffer-size", "1M", "--subbuffer-size", "1M"], "Error: --buffer-size 1048576 and --subbuffer-size 1048576 must be powers of two"),
            (["demo", "--buffer-size", "2G"], "Error: --buffer-size 2147483648 and --subbuffer-size 65536 must be powers of two"),
            (["demo", "--buffer-size", "16KiB"], "Error: The value '16KiB' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size=-8K"], "Error: The value '-8K' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size", "1M", "--subbuffer-size", "256"], "Error: --buffer-size 1048576 and --subbuffer-size 256 must be powers of two"),
            (["demo", "--buffer-size", "-8K"], "Error: Missing value for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size", "99999999999G"], "Error: The value '99999999999G' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--buffer-size", "0"], "Error: The value '0' is invalid for '--buffer-size <buffer-size>'"),
            (["demo", "--threads", "abc"], "Error: The value 'abc' is invalid for '--threads <threads>'"),
            (["demo", "--no-such-flag"], "Error: Unknown option '--no-such-flag'"),
            (["no-such-command"], "Error: Unexpected argument 'no-such-command'"),
          ])
    func badInput(arguments: [String], error: String) throws {
        let run = RseqTraceTool.run(arguments, limit: 60)
        #expect(run.exitStatus == 64, "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
        let lines = run.stderrLines
        let errorLines = lines.filter { $0.hasPrefix("Error:") }
        #expect(errorLines.count == 1, "\(run)")
        let first = try #require(lines.first)
        #expect(first.hasPrefix(error), "\(first)")
        // Nothing but the usage (and its Help/See lines) follows the one error line.
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("Usage:") || $0.hasPrefix("Help:") || $0.hasPrefix("  ") }, "\(run)")
        // No trace object was created.
        #expect(!run.stdout.contains("summary:"))
    }

    @Test("without the LTTng trait (as the test suite builds it), demo --backend lttng and both fail with the rebuild hint",
          arguments: ["lttng", "both"])
    func backendWithoutTrait(backend: String) {
        let run = RseqTraceTool.run(["demo", "--backend", backend, "--events", "10", "--no-output"], limit: 60)
        #expect(run.exitStatus == 1, "\(run)")
        #expect(run.stderrLines == [
            "error: --backend \(backend): this rseqtrace was built without the LTTng trait: rebuild with `swift build --traits LTTng` (needs liblttng-ust-dev)",
        ], "\(run)")
        #expect(!run.stdout.contains("summary:"), "\(run)")
    }

    @Test("demo --expected-events writes every emitted event with its values and text rendering, one JSON line each")
    func demoExpectedEvents() throws {
        let path = "/tmp/rseqtrace-cli-\(getpid())-expected.jsonl"
        defer { _ = try? HelperProcess.run("/bin/rm", ["-f", path], environment: HelperProcess.childEnvironment(), timeout: .seconds(30)) }
        let run = RseqTraceTool.run(["demo", "--no-output", "--threads", "1", "--events", "1000", "--expected-events", path])
        #expect(run.exitStatus == 0, "\(run)")
        let file = try HelperProcess.run("/bin/cat", [path], environment: HelperProcess.childEnvironment(), timeout: .seconds(30))
        let lines = file.stdout.split(separator: "\n")
        #expect(lines.count == 1001)
        #expect(lines.first == #"{"event":"demo:tick","fields":{"seq":0,"check":15568325403000214897,"thread":0},"text":"seq=0 check=15568325403000214897 thread=0"}"#)
        #expect(lines.last == #"{"event":"demo:types","fields":{"u8":231,"u16":2997,"u32":0,"u64":999,"i8":25,"i16":-2997,"i32":0,"i64":-999,"flag":0,"f32":249.75,"f64":499.5,"text":"","short_text":"naïvet","_bytes_length":6,"bytes":[0,1,2,127,128,255],"_short_bytes_length":4,"short_bytes":[0,1,2,127],"color":["red",0],"level":["debug",-1]},"text":"u8=231 u16=2997 u32=0 u64=999 i8=25 i16=-2997 i32=0 i64=-999 flag=false f32=249.75 f64=499.5 text=\"\" short_text=\"naïvet\" bytes=<00 01 02 7f 80 ff> short_bytes=<00 01 02 7f> color=red(0) level=debug(-1)"}"#)
    }

    @Test("--help exits 0 and lists the demo subcommand", arguments: [["--help"], ["help"], ["demo", "--help"]])
    func help(arguments: [String]) {
        let run = RseqTraceTool.run(arguments, limit: 60)
        #expect(run.exitStatus == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        #expect(run.stdout.contains("demo"))
        #expect(run.stdout.contains("USAGE: rseqtrace"))
        if arguments.first == "demo" {
            for option in ["--threads", "--events", "--mode", "--buffer-size", "--subbuffer-size", "summary: mode="] {
                #expect(run.stdout.contains(option), "\(option)")
            }
        }
    }
}
