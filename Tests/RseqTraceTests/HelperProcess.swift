#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport

/// Runs `rseqtrace-testhelper` (or any program) as a child process with `posix_spawn`, capturing
/// its standard output and error, with a wall-time limit after which it is killed.
enum HelperProcess {
    /// How a child ended and what it printed.
    struct Outcome: Sendable, CustomStringConvertible {
        var pid: pid_t
        /// Exit code when it exited normally.
        var exitCode: Int32?
        /// Signal that killed it.
        var signal: Int32?
        var stdout: String
        var stderr: String
        var timedOut: Bool
        var duration: Duration

        var exitedCleanly: Bool { exitCode == 0 && !timedOut }

        /// The `key=value` fields of the first stdout line starting with `prefix` (e.g. "stress:").
        func fields(of prefix: String) -> [String: String]? {
            HelperProcess.parseFields(stdout, prefix: prefix)
        }

        var description: String {
            let end = timedOut ? "timed out (killed)" : exitCode.map { "exit \($0)" } ?? "signal \(signal ?? -1)"
            return "pid \(pid), \(end) after \(duration)\n--- stdout ---\n\(stdout)--- stderr ---\n\(stderr)"
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

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

    static func isExecutable(_ path: String) -> Bool {
        // SAFETY: access reads the NUL-terminated copy of `path` Swift passes for the call.
        unsafe access(path, X_OK) == 0
    }

    // MARK: Environment

    /// This process's environment with `removing` taken out and `setting` added (replacing).
    static func environment(removing: Set<String> = [], setting: [String: String] = [:]) -> [String] {
        var entries: [String] = []
        // SAFETY: `environ` is this process's NULL-terminated array of NUL-terminated strings;
        // it is only read here, and each entry is copied into a Swift string at once.
        var cursor: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = unsafe environ
        // SAFETY: as above; the loop stops at the terminating NULL.
        while let entry = unsafe cursor?.pointee {
            // SAFETY: `entry` is a NUL-terminated string of the environment.
            let text = unsafe String(cString: entry)
            let key = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if !removing.contains(key) && setting[key] == nil { entries.append(text) }
            // SAFETY: the terminating NULL has not been reached, so the next slot exists.
            unsafe cursor = unsafe cursor?.advanced(by: 1)
        }
        for (key, value) in setting.sorted(by: { $0.key < $1.key }) { entries.append("\(key)=\(value)") }
        return entries
    }

    /// Variables that choose the producer mode: removed from a child's environment unless set
    /// explicitly, so the parent's own setting never leaks into a test's expectations.
    static let modeVariables: Set<String> = ["RSEQTRACE_FORCE_FALLBACK", "GLIBC_TUNABLES"]

    /// The environment for a child: ours, without the mode variables, plus `setting`.
    static func childEnvironment(_ setting: [String: String] = [:]) -> [String] {
        environment(removing: modeVariables, setting: setting)
    }

    // MARK: C string arrays

    /// A NULL-terminated array of C strings for exec, owned: `release()` frees it (once).
    @safe
    struct CStringArray {
        let pointers: [UnsafeMutablePointer<CChar>?]

        init(_ strings: [String]) {
            // SAFETY: strdup copies the temporary NUL-terminated string; freed in `release`.
            unsafe pointers = strings.map { unsafe strdup($0) } + [nil]
        }

        func release() {
            // SAFETY: every non-nil pointer came from strdup above and is freed once.
            for unsafe pointer in unsafe pointers { unsafe free(pointer) }
        }
    }

    /// A pipe whose ends are closed on exec.
    static func makePipe() throws(SpawnError) -> (read: Int32, write: Int32) {
        let packed = rtts_pipe_cloexec()
        guard packed >= 0 else { throw SpawnError(description: "pipe2 failed: errno \(-packed)") }
        return (Int32(truncatingIfNeeded: packed), Int32(truncatingIfNeeded: packed >> 32))
    }

    // MARK: Running

    /// A started child with its output pipes.
    final class Running {
        let pid: pid_t
        let started: ContinuousClock.Instant
        private var outFD: Int32
        private var errFD: Int32
        private var out: [UInt8] = []
        private var err: [UInt8] = []
        private var status: Int32?

        fileprivate init(pid: pid_t, outFD: Int32, errFD: Int32) {
            self.pid = pid
            self.outFD = outFD
            self.errFD = errFD
            started = .now
        }

        deinit {
            if status == nil {
                kill(pid, SIGKILL)
                _ = reap(blocking: true)
            }
            closePipes()
        }

        private func closePipes() {
            if outFD >= 0 { close(outFD); outFD = -1 }
            if errFD >= 0 { close(errFD); errFD = -1 }
        }

        /// Reads whatever output is available, waiting at most `milliseconds` for some.
        func pump(milliseconds: Int32 = 0) {
            var fds = [pollfd(fd: outFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: errFD, events: Int16(POLLIN), revents: 0)]
            guard outFD >= 0 || errFD >= 0 else { return }
            // SAFETY: `fds` is a live local array of 2 pollfd; negative fds are ignored by poll.
            let ready = unsafe fds.withUnsafeMutableBufferPointer { unsafe poll($0.baseAddress, 2, milliseconds) }
            guard ready > 0 else { return }
            if fds[0].revents != 0 { readAvailable(&outFD, into: &out) }
            if fds[1].revents != 0 { readAvailable(&errFD, into: &err) }
        }

        private func readAvailable(_ fd: inout Int32, into sink: inout [UInt8]) {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while fd >= 0 {
                // SAFETY: read writes at most chunk.count bytes into the live local buffer.
                let count = unsafe chunk.withUnsafeMutableBytes { unsafe read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    sink.append(contentsOf: chunk[..<count])
                } else if count == 0 {
                    close(fd)
                    fd = -1
                } else {
                    let e = errno
                    if e == EINTR { continue }
                    if e != EAGAIN && e != EWOULDBLOCK {
                        close(fd)
                        fd = -1
                    }
                    return
                }
            }
        }

        /// Collects the exit status; true once the child has been reaped.
        @discardableResult
        func reap(blocking: Bool) -> Bool {
            if status != nil { return true }
            var raw: Int32 = 0
            while true {
                // SAFETY: `raw` is a live local Int32.
                let got = unsafe waitpid(pid, &raw, blocking ? 0 : WNOHANG)
                if got == pid {
                    status = raw
                    return true
                }
                if got < 0 && errno == EINTR { continue }
                return false
            }
        }

        /// Whether the child has exited (reaping it if so).
        var hasExited: Bool { reap(blocking: false) }

        /// Waits for the child to exit and its pipes to close, killing it after `timeout`.
        func wait(timeout: Duration) -> Outcome {
            let deadline = started.advanced(by: timeout)
            var timedOut = false
            var killedAt: ContinuousClock.Instant?
            while outFD >= 0 || errFD >= 0 {
                let now = ContinuousClock.now
                if !timedOut && now >= deadline && !reap(blocking: false) {
                    timedOut = true
                    kill(pid, SIGKILL)
                    killedAt = now
                }
                // A grandchild could keep the pipes open: give up on them 5 s after the kill.
                if let killedAt, now - killedAt > .seconds(5) { break }
                pump(milliseconds: 50)
            }
            closePipes()
            if !reap(blocking: timedOut) {
                // Pipes closed but still running (it closed its stdout?): bound the wait too.
                while !reap(blocking: false) {
                    if ContinuousClock.now >= deadline && !timedOut {
                        timedOut = true
                        kill(pid, SIGKILL)
                    }
                    usleep(1000)
                }
            }
            let raw = status ?? 0
            let signal = raw & 0x7f
            return Outcome(
                pid: pid,
                exitCode: signal == 0 ? (raw >> 8) & 0xff : nil,
                signal: signal != 0 && signal != 0x7f ? signal : nil,
                stdout: String(decoding: out, as: UTF8.self),
                stderr: String(decoding: err, as: UTF8.self),
                timedOut: timedOut,
                duration: ContinuousClock.now - started)
        }
    }

    /// Starts `path` with `arguments` (argv[1...]) and `environment`.
    static func start(_ path: String, _ arguments: [String], environment: [String]) throws(SpawnError) -> Running {
        let outPair = try makePipe()
        let errPair: (read: Int32, write: Int32)
        do {
            errPair = try makePipe()
        } catch {
            close(outPair.read); close(outPair.write)
            throw error
        }
        let outPipe = [outPair.read, outPair.write]
        let errPipe = [errPair.read, errPair.write]
        _ = fcntl(outPipe[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(errPipe[0], F_SETFL, O_NONBLOCK)

        // SAFETY: plain C structs, zero-initialised; the init calls below set them up.
        var actions = unsafe posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        // SAFETY: initialising local spawn objects, destroyed below.
        unsafe posix_spawn_file_actions_init(&actions)
        // SAFETY: as above.
        unsafe posix_spawnattr_init(&attributes)
        // SAFETY: the actions object was initialised above; the fds are open.
        unsafe posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        // SAFETY: as above.
        unsafe posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var noSignals = sigset_t()
        var defaults = sigset_t()
        // SAFETY: local sigset_t values.
        unsafe sigemptyset(&noSignals)
        // SAFETY: as above.
        unsafe sigemptyset(&defaults)
        // SAFETY: as above.
        unsafe sigaddset(&defaults, SIGPIPE)
        // SAFETY: the attributes object was initialised above; the sets are locals.
        unsafe posix_spawnattr_setsigmask(&attributes, &noSignals)
        // SAFETY: as above.
        unsafe posix_spawnattr_setsigdefault(&attributes, &defaults)
        // SAFETY: as above.
        unsafe posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = CStringArray([path] + arguments)
        let envp = CStringArray(environment)
        var pid: pid_t = 0
        // SAFETY: argv and envp are NULL-terminated arrays of strdup'ed strings alive until
        // released below; the spawn objects are initialised locals.
        let rc = unsafe argv.pointers.withUnsafeBufferPointer { args in
            // SAFETY: as above.
            unsafe envp.pointers.withUnsafeBufferPointer { env in
                // SAFETY: as above.
                unsafe posix_spawn(&pid, path, &actions, &attributes, args.baseAddress!, env.baseAddress!)
            }
        }
        argv.release()
        envp.release()
        // SAFETY: destroying the spawn objects initialised above.
        unsafe posix_spawn_file_actions_destroy(&actions)
        // SAFETY: as above.
        unsafe posix_spawnattr_destroy(&attributes)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw SpawnError(description: "posix_spawn \(path) failed: errno \(rc)")
        }
        return Running(pid: pid, outFD: outPipe[0], errFD: errPipe[0])
    }

    /// Runs `path` to completion (or `timeout`).
    static func run(_ path: String, _ arguments: [String], environment: [String],
                    timeout: Duration) throws(SpawnError) -> Outcome {
        try start(path, arguments, environment: environment).wait(timeout: timeout)
    }

    /// Runs the test helper to completion (or `timeout`).
    static func runHelper(_ arguments: [String], setting: [String: String] = [:],
                          timeout: Duration) throws(SpawnError) -> Outcome {
        guard isExecutable(helperPath) else {
            throw SpawnError(description: "\(helperPath) is missing: build with `swift build --build-tests` first")
        }
        return try run(helperPath, arguments, environment: childEnvironment(setting), timeout: timeout)
    }
}
