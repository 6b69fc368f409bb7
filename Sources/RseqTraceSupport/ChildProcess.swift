#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceSupport
import RseqTrace
import SystemPackage

/// Where one standard stream of a child process is connected.
package enum ChildStream: Sendable, Equatable {
    /// This process's own descriptor (the terminal, a pipe, …).
    case inherit
    /// `/dev/null`.
    case null
    /// A pipe this process reads; the bytes end up in `ChildProcess.Outcome` (stdout and stderr only).
    case capture
    /// A file, created or truncated with mode 0600 (stdout and stderr only).
    case file(String)
}

/// How a child process ended.
package enum Termination: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Decodes a `waitpid` status word.
    package init(waitStatus: Int32) {
        let signal = waitStatus & 0x7F
        self = signal == 0 ? .exited((waitStatus >> 8) & 0xFF) : .signaled(signal)
    }

    /// The shell's convention: the exit code, or 128 + the signal number.
    package var status: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    package var description: String {
        switch self {
        case .exited(let code): "exit \(code)"
        case .signaled(let signal): "signal \(signal)"
        }
    }
}

/// The environment of this process, as `NAME=value` strings for a child.
package enum ProcessEnvironment {
    /// This process's environment with the variables in `removing` taken out and `setting` added
    /// (replacing any existing value), in a stable order.
    package static func current(removing: Set<String> = [], setting: [String: String] = [:]) -> [String] {
        var entries: [String] = []
        // SAFETY: `environ` is this process's NULL-terminated array of NUL-terminated strings; it is
        // only read here, and each entry is copied into a Swift string at once.
        var cursor: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = unsafe environ
        // SAFETY: as above; the loop stops at the terminating NULL.
        while let entry = unsafe cursor?.pointee {
            // SAFETY: `entry` is a NUL-terminated string of the environment.
            let text = unsafe String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if !removing.contains(name) && setting[name] == nil { entries.append(text) }
            // SAFETY: the terminating NULL has not been reached, so the next slot exists.
            unsafe cursor = unsafe cursor?.advanced(by: 1)
        }
        for (name, value) in setting.sorted(by: { $0.key < $1.key }) { entries.append("\(name)=\(value)") }
        return entries
    }
}

/// A NULL-terminated array of C strings (argv, envp), owned until `release()` (called once).
@safe
package struct CStringArray {
    package let pointers: [UnsafeMutablePointer<CChar>?]

    package init(_ strings: [String]) {
        // SAFETY: strdup copies each temporary NUL-terminated string; `release` frees the copies.
        unsafe pointers = strings.map { unsafe strdup($0) } + [nil]
    }

    package func release() {
        // SAFETY: every non-nil pointer came from strdup above and is freed once.
        for unsafe pointer in unsafe pointers { unsafe free(pointer) }
    }
}

/// A pipe whose two ends are close-on-exec from the moment they exist.
package func makeCloseOnExecPipe() throws(TraceError) -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe fds.withUnsafeMutableBufferPointer { unsafe rseqtrace_support_pipe_cloexec($0.baseAddress!) }
    guard rc == 0 else {
        throw TraceError(.systemCallFailed, "cannot create a pipe for a child's output: close descriptors or raise the limit (ulimit -n)",
                         errno: Errno(rawValue: -rc))
    }
    return (fds[0], fds[1])
}

/// A program started with `posix_spawn`: its output (when captured), its exit (noticed at once
/// through a pidfd), and its status. Not thread-safe: one owner drives it.
///
/// The child starts with an empty signal mask and default handlers for SIGINT, SIGQUIT, SIGPIPE and
/// SIGTERM, as if started by a shell, whatever this process ignores or blocks.
package final class ChildProcess {
    package let pid: pid_t
    /// The program as given (argv[0]).
    package let program: String
    package let started: ContinuousClock.Instant
    /// How it ended, once it has ended and been reaped.
    package private(set) var termination: Termination?
    /// User + system CPU time of the child and the descendants it waited for, in nanoseconds
    /// (from wait4); 0 until it has been reaped.
    package private(set) var cpuNanoseconds: UInt64 = 0
    /// A pidfd that polls readable when the child exits; -1 when the kernel has none (< 5.3), in
    /// which case exits are noticed by polling waitpid every 10 ms.
    private var exitFD: Int32
    private var outFD: Int32
    private var errFD: Int32
    private var out: [UInt8] = []
    private var err: [UInt8] = []

    private init(pid: pid_t, program: String, outFD: Int32, errFD: Int32) {
        self.pid = pid
        self.program = program
        self.outFD = outFD
        self.errFD = errFD
        started = .now
        let pidfd = rseqtrace_support_pidfd_open(pid)
        exitFD = pidfd >= 0 ? pidfd : -1
    }

    deinit {
        if termination == nil {
            kill(pid, SIGKILL)
            reap(blocking: true)
        }
        closeOutput()
        if exitFD >= 0 { close(exitFD) }
    }

    /// Starts `arguments[0]` with `arguments` as argv.
    /// - Parameters:
    ///   - environment: `NAME=value` entries (see `ProcessEnvironment.current`); nil passes this
    ///     process's environment unchanged.
    ///   - searchPath: look a program name without `/` up in PATH (posix_spawnp).
    ///   - stdin: `.inherit` or `.null`.
    ///   - inheriting: descriptors of this process the child inherits under the same numbers,
    ///     even when they are close-on-exec here (which they stay in this process).
    package static func spawn(_ arguments: [String], environment: [String]? = nil, searchPath: Bool = false,
                              stdin: ChildStream = .inherit, stdout: ChildStream = .capture,
                              stderr: ChildStream = .capture, inheriting: [Int32] = []) throws(TraceError) -> ChildProcess {
        guard let program = arguments.first else {
            throw TraceError(.invalidConfiguration, "no program to run: the argument list is empty")
        }
        var pipes: [(read: Int32, write: Int32)?] = [nil, nil]
        defer {
            for case let pipe? in pipes where pipe.write >= 0 { close(pipe.write) }
        }
        for (index, stream) in [stdout, stderr].enumerated() where stream == .capture {
            do {
                pipes[index] = try makeCloseOnExecPipe()
            } catch {
                for case let pipe? in pipes { close(pipe.read) }
                throw error
            }
            _ = fcntl(pipes[index]!.read, F_SETFL, O_NONBLOCK)
        }

        // SAFETY: plain C structs, zero-initialised; the init calls below set them up.
        var actions = unsafe posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        // SAFETY: initialising local spawn objects, destroyed by the defer below.
        unsafe posix_spawn_file_actions_init(&actions)
        // SAFETY: as above.
        unsafe posix_spawnattr_init(&attributes)
        defer {
            // SAFETY: destroying the spawn objects initialised above, once.
            unsafe posix_spawn_file_actions_destroy(&actions)
            // SAFETY: as above.
            unsafe posix_spawnattr_destroy(&attributes)
        }
        if stdin == .null {
            // SAFETY: the actions object was initialised above; the path is a string literal.
            unsafe posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        for (index, stream) in [stdout, stderr].enumerated() {
            let target = Int32(index + 1)
            switch stream {
            case .inherit:
                break
            case .null:
                // SAFETY: as above.
                unsafe posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            case .capture:
                // SAFETY: as above; dup2 in the child clears close-on-exec on the target only.
                unsafe posix_spawn_file_actions_adddup2(&actions, pipes[index]!.write, target)
            case .file(let path):
                // SAFETY: as above; the call copies the path.
                unsafe posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            }
        }
        for fd in inheriting {
            // SAFETY: as above; dup2 onto the same number clears close-on-exec in the child only
            // (POSIX.1-2024, glibc 2.29+).
            unsafe posix_spawn_file_actions_adddup2(&actions, fd, fd)
        }
        var noSignals = sigset_t()
        var defaults = sigset_t()
        // SAFETY: local sigset_t values.
        unsafe sigemptyset(&noSignals)
        // SAFETY: as above.
        unsafe sigemptyset(&defaults)
        for signal in [SIGINT, SIGQUIT, SIGPIPE, SIGTERM] {
            // SAFETY: as above.
            unsafe sigaddset(&defaults, signal)
        }
        // SAFETY: the attributes object was initialised above; the sets are locals.
        unsafe posix_spawnattr_setsigmask(&attributes, &noSignals)
        // SAFETY: as above.
        unsafe posix_spawnattr_setsigdefault(&attributes, &defaults)
        // SAFETY: as above.
        unsafe posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = CStringArray(arguments)
        let envp = CStringArray(environment ?? ProcessEnvironment.current())
        defer {
            argv.release()
            envp.release()
        }
        var pid: pid_t = 0
        // SAFETY: argv and envp are NULL-terminated arrays of strdup'ed strings alive until the
        // deferred release; the spawn objects are initialised locals.
        let rc = unsafe argv.pointers.withUnsafeBufferPointer { args in
            // SAFETY: as above.
            unsafe envp.pointers.withUnsafeBufferPointer { env in
                // SAFETY: as above.
                unsafe searchPath
                    ? posix_spawnp(&pid, program, &actions, &attributes, args.baseAddress!, env.baseAddress!)
                    : posix_spawn(&pid, program, &actions, &attributes, args.baseAddress!, env.baseAddress!)
            }
        }
        guard rc == 0 else {
            for case let pipe? in pipes { close(pipe.read) }
            let lookup = searchPath && !program.contains("/") ? " (looked up in PATH)" : ""
            throw TraceError(.systemCallFailed, "cannot run \(program)\(lookup): check that it exists and is executable",
                             errno: Errno(rawValue: rc))
        }
        return ChildProcess(pid: pid, program: program, outFD: pipes[0]?.read ?? -1, errFD: pipes[1]?.read ?? -1)
    }

    /// Runs `arguments` to completion (killing it after `timeout`), capturing what it prints.
    package static func run(_ arguments: [String], environment: [String]? = nil, searchPath: Bool = false,
                            stdin: ChildStream = .null, stdout: ChildStream = .capture, stderr: ChildStream = .capture,
                            timeout: Duration? = nil) throws(TraceError) -> Outcome {
        try spawn(arguments, environment: environment, searchPath: searchPath, stdin: stdin, stdout: stdout,
                  stderr: stderr).wait(timeout: timeout)
    }

    // MARK: Waiting

    /// Whether the child has exited (reaping it if so).
    package var hasExited: Bool { reap(blocking: false) != nil }

    /// Sends `signal` to the child unless it has been reaped already.
    package func signal(_ signal: Int32) {
        if termination == nil { kill(pid, signal) }
    }

    /// Collects the exit status (wait4); returns it once the child has been reaped.
    @discardableResult
    package func reap(blocking: Bool) -> Termination? {
        if let termination { return termination }
        var raw: Int32 = 0
        var usage = rusage()
        while true {
            // SAFETY: `raw` and `usage` are live locals.
            let got = unsafe wait4(pid, &raw, blocking ? 0 : WNOHANG, &usage)
            if got == pid {
                let ended = Termination(waitStatus: raw)
                termination = ended
                cpuNanoseconds = Self.nanoseconds(usage.ru_utime) &+ Self.nanoseconds(usage.ru_stime)
                return ended
            }
            if got < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// Waits at most `milliseconds` (negative: without limit) for the child to exit, reading its
    /// captured output meanwhile; wakes as soon as it exits. Returns how it ended, or nil if it
    /// is still running.
    ///
    /// A descriptor in `alsoWaking` (e.g. a `SignalReceiver`'s) ends the wait as soon as it polls
    /// readable; the caller then reads it.
    @discardableResult
    package func waitForExit(milliseconds: Int, alsoWaking wakeFD: Int32 = -1) -> Termination? {
        let deadline = milliseconds < 0 ? UInt64.max : SystemClock.monotonic() &+ UInt64(milliseconds) &* 1_000_000
        while true {
            if let ended = reap(blocking: false) { return ended }
            let now = SystemClock.monotonic()
            guard now < deadline else { return nil }
            let left = deadline == .max ? -1 : Int((deadline - now + 999_999) / 1_000_000)
            // Without a pidfd, look again every 10 ms.
            let woken = poll(milliseconds: exitFD >= 0 ? left : (left < 0 ? 10 : min(left, 10)), watchExit: true,
                             wakeFD: wakeFD)
            if woken { return reap(blocking: false) }
        }
    }

    /// Reads whatever captured output is available, waiting at most `milliseconds` for some.
    package func pump(milliseconds: Int = 0) {
        poll(milliseconds: milliseconds, watchExit: false)
    }

    /// Polls the captured pipes (and the pidfd when `watchExit`, and `wakeFD`) once and reads
    /// what arrived; returns whether `wakeFD` is readable.
    @discardableResult
    private func poll(milliseconds: Int, watchExit: Bool, wakeFD: Int32 = -1) -> Bool {
        var fds = [pollfd(fd: outFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: errFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: watchExit && termination == nil ? exitFD : -1, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        guard fds.contains(where: { $0.fd >= 0 }) else {
            if milliseconds > 0 { SystemClock.sleep(milliseconds: milliseconds) }
            return false
        }
        let timeout = Int32(clamping: milliseconds)
        // SAFETY: `fds` is a live local array of 4 pollfd; negative descriptors are ignored by poll.
        let ready = unsafe fds.withUnsafeMutableBufferPointer { unsafe Glibc.poll($0.baseAddress, 4, timeout) }
        guard ready > 0 else { return false }
        if fds[0].revents != 0 { Self.readAvailable(&outFD, into: &out) }
        if fds[1].revents != 0 { Self.readAvailable(&errFD, into: &err) }
        return fds[3].revents != 0
    }

    private static func readAvailable(_ fd: inout Int32, into sink: inout [UInt8]) {
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
                let error = errno
                if error == EINTR { continue }
                if error != EAGAIN && error != EWOULDBLOCK {
                    close(fd)
                    fd = -1
                }
                return
            }
        }
    }

    private func closeOutput() {
        if outFD >= 0 { close(outFD); outFD = -1 }
        if errFD >= 0 { close(errFD); errFD = -1 }
    }

    /// Waits for the child to exit and its captured output to end; after `timeout` (from the start)
    /// it is killed with SIGKILL. A descendant still holding the pipes is given up on 5 s after that.
    package func wait(timeout: Duration? = nil) -> Outcome {
        let deadline = timeout.map { started.advanced(by: $0) }
        var timedOut = false
        var killedAt: ContinuousClock.Instant?
        while outFD >= 0 || errFD >= 0 || termination == nil {
            let now = ContinuousClock.now
            if !timedOut, let deadline, now >= deadline, reap(blocking: false) == nil {
                timedOut = true
                kill(pid, SIGKILL)
                killedAt = now
            }
            if let killedAt, now - killedAt > .seconds(5) { break }
            if outFD >= 0 || errFD >= 0 {
                reap(blocking: false)
                pump(milliseconds: 50)
            } else {
                waitForExit(milliseconds: timedOut ? -1 : 50)
            }
        }
        closeOutput()
        reap(blocking: true)
        return Outcome(pid: pid, termination: termination, timedOut: timedOut,
                       stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self),
                       duration: ContinuousClock.now - started, cpuNanoseconds: cpuNanoseconds)
    }

    private static func nanoseconds(_ time: timeval) -> UInt64 {
        UInt64(max(0, time.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, time.tv_usec)) &* 1000
    }

    /// How a child ended and what it printed.
    package struct Outcome: Sendable, CustomStringConvertible {
        package var pid: pid_t
        /// How it ended (nil only if it could not be reaped).
        package var termination: Termination?
        /// Killed because it ran past its time limit.
        package var timedOut: Bool
        package var stdout: String
        package var stderr: String
        package var duration: Duration
        /// User + system CPU time of the child (and the descendants it waited for), in nanoseconds.
        package var cpuNanoseconds: UInt64

        package init(pid: pid_t, termination: Termination?, timedOut: Bool, stdout: String, stderr: String,
                     duration: Duration, cpuNanoseconds: UInt64) {
            self.pid = pid
            self.termination = termination
            self.timedOut = timedOut
            self.stdout = stdout
            self.stderr = stderr
            self.duration = duration
            self.cpuNanoseconds = cpuNanoseconds
        }

        /// The exit code when it exited normally.
        package var exitCode: Int32? {
            if case .exited(let code)? = termination { return code }
            return nil
        }

        /// The signal that ended it.
        package var signal: Int32? {
            if case .signaled(let signal)? = termination { return signal }
            return nil
        }

        /// The shell's convention: the exit code, or 128 + the signal number (-1 if unknown).
        package var status: Int32 { termination?.status ?? -1 }

        package var exitedCleanly: Bool { exitCode == 0 && !timedOut }
        package var stdoutLines: [Substring] { stdout.split(separator: "\n") }
        package var stderrLines: [Substring] { stderr.split(separator: "\n") }

        /// The last stdout line starting with `prefix`, or nil.
        package func lastLine(startingWith prefix: String) -> String? {
            stdoutLines.last(where: { $0.hasPrefix(prefix) }).map(String.init)
        }

        package var description: String {
            let end = timedOut ? "timed out (killed)" : termination?.description ?? "not reaped"
            return "pid \(pid), \(end) after \(duration)\n--- stdout ---\n\(stdout)--- stderr ---\n\(stderr)"
        }
    }
}
