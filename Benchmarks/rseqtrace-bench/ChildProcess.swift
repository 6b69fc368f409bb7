#if canImport(Glibc)
import Glibc
#endif

/// What a child process printed and how it ended.
struct ChildOutput {
    /// The child's process id (0 when it could not be started).
    var pid: Int32 = 0
    var status: Int32
    var standardOutput: String
    var standardError: String

    var succeeded: Bool { status == 0 }

    /// The last line starting with `prefix`, or nil.
    func lastLine(startingWith prefix: String) -> String? {
        standardOutput.split(separator: "\n").last(where: { $0.hasPrefix(prefix) }).map(String.init)
    }
}

/// Runs programs (found through PATH) without Foundation: posix_spawnp with both output streams
/// read through pipes, stdin from /dev/null.
enum ChildProcess {
    /// Runs `arguments` to completion. `environment` entries are added to (or replace) this
    /// process's environment. A program that cannot be started ends with status 127.
    static func run(_ arguments: [String], environment: [String: String] = [:]) -> ChildOutput {
        var outputPipe: [Int32] = [-1, -1]
        var errorPipe: [Int32] = [-1, -1]
        // SAFETY: pipe writes two descriptors into each two-element array.
        guard unsafe pipe(&outputPipe) == 0 else {
            return ChildOutput(status: 127, standardOutput: "", standardError: "pipe failed: errno \(errno)")
        }
        // SAFETY: as above.
        guard unsafe pipe(&errorPipe) == 0 else {
            close(outputPipe[0])
            close(outputPipe[1])
            return ChildOutput(status: 127, standardOutput: "", standardError: "pipe failed: errno \(errno)")
        }
        // No pipe end may leak into the child or its descendants (a daemon holding a write end would
        // keep the reads below from ever ending); dup2 gives the child clean copies on 1 and 2.
        for fd in outputPipe + errorPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // SAFETY: a zeroed C structure, initialised by posix_spawn_file_actions_init below.
        var actions = unsafe posix_spawn_file_actions_t()
        // SAFETY: `actions` is a local, initialised here and destroyed below.
        unsafe posix_spawn_file_actions_init(&actions)
        // SAFETY: the descriptors are open; the path is a string literal.
        unsafe posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // SAFETY: as above.
        unsafe posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
        // SAFETY: as above.
        unsafe posix_spawn_file_actions_adddup2(&actions, errorPipe[1], 2)

        let argv = CStringArray(arguments)
        let envp = CStringArray(mergedEnvironment(environment))
        var pid: pid_t = 0
        // SAFETY: argv and envp are NULL-terminated arrays of C strings that outlive the call.
        let spawnError = unsafe posix_spawnp(&pid, arguments[0], &actions, nil, argv.pointers, envp.pointers)
        // SAFETY: destroying what was initialised above.
        unsafe posix_spawn_file_actions_destroy(&actions)
        close(outputPipe[1])
        close(errorPipe[1])
        argv.free()
        envp.free()
        guard spawnError == 0 else {
            close(outputPipe[0])
            close(errorPipe[0])
            return ChildOutput(status: 127, standardOutput: "",
                               standardError: "cannot run \(arguments[0]): errno \(spawnError)")
        }
        let (output, error) = readBoth(outputPipe[0], errorPipe[0])
        close(outputPipe[0])
        close(errorPipe[0])
        var status: Int32 = 0
        // SAFETY: `status` is a local.
        while unsafe waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exitStatus: Int32 = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return ChildOutput(pid: pid, status: exitStatus, standardOutput: output, standardError: error)
    }

    /// Reads two pipes to their ends, alternating with poll so neither can fill up and block the child.
    private static func readBoth(_ first: Int32, _ second: Int32) -> (String, String) {
        var collected: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: first, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: second, events: Int16(POLLIN), revents: 0)]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            // SAFETY: `fds` is an array of two pollfd structures.
            let ready = unsafe poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in 0..<2 where fds[index].fd >= 0 && fds[index].revents != 0 {
                // SAFETY: reading at most `chunk.count` bytes into the array's own storage.
                let count = unsafe chunk.withUnsafeMutableBytes { unsafe read(fds[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    collected[index].append(contentsOf: chunk[0..<count])
                } else if count == 0 || errno != EINTR {
                    fds[index].fd = -1
                }
            }
        }
        return (String(decoding: collected[0], as: UTF8.self), String(decoding: collected[1], as: UTF8.self))
    }

    /// This process's environment with `overrides` applied, as `NAME=value` strings.
    private static func mergedEnvironment(_ overrides: [String: String]) -> [String] {
        var result: [String] = []
        // SAFETY: `environ` is the process's NULL-terminated environment array, read without changing it.
        var cursor = unsafe environ
        // SAFETY: walking the array up to its NULL terminator.
        while let entry = unsafe cursor.pointee {
            // SAFETY: every entry is a NUL-terminated C string.
            let text = unsafe String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if overrides[name] == nil { result.append(text) }
            // SAFETY: still inside the array (this entry was not the terminator).
            unsafe cursor = cursor.advanced(by: 1)
        }
        for (name, value) in overrides.sorted(by: { $0.key < $1.key }) { result.append("\(name)=\(value)") }
        return result
    }
}

/// A NULL-terminated array of C strings (argv, envp) owned until `free()`.
@safe
private struct CStringArray {
    let pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        // SAFETY: strdup copies each string; free() releases the copies.
        unsafe pointers = strings.map { unsafe strdup($0) } + [nil]
    }

    func free() {
        // SAFETY: each non-nil entry came from strdup and is freed once.
        for unsafe pointer in unsafe pointers { unsafe Glibc.free(pointer) }
    }
}
