import RseqTraceSupport

extension ChildProcess {
    /// Runs `arguments` (the program is looked up in PATH) to completion with stdin from /dev/null
    /// and both outputs captured. A program that cannot be started ends with status 127 and the
    /// reason on stderr, so callers report it like any other failure.
    /// `setting` adds environment variables to this process's own for the child.
    static func runCaptured(_ arguments: [String], setting: [String: String] = [:]) -> Outcome {
        do {
            let environment = setting.isEmpty ? nil : ProcessEnvironment.current(setting: setting)
            return try run(arguments, environment: environment, searchPath: true)
        } catch {
            return Outcome(pid: 0, termination: .exited(127), timedOut: false, stdout: "", stderr: "\(error)",
                           duration: .zero, cpuNanoseconds: 0)
        }
    }
}
