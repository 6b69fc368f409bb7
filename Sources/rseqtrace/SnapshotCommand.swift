#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats
import RseqTraceSupport

/// `rseqtrace snapshot PID`: writes a flight recorder's recent history, from a running program or
/// one that died.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Write the recent history kept by a program's flight recorder, while it runs or after it died.",
        discussion: """
            The program keeps a flight recorder when it runs with RSEQTRACE_FLIGHT_RECORDER=<size> \
            (e.g. 4M, the ring size per CPU) or calls TraceRuntime.startFlightRecorder: an \
            overwrite-mode buffer holding its most recent events. A snapshot of a running program \
            reads it without stopping it (every CPU's ring is read consistently with producers still \
            writing there, by committing each read on that CPU), and can be taken again and again: \
            each one holds the events recorded since the previous one that are still in the buffer, \
            and reports exactly how many were overwritten before it could read them.

            When the program has died (SIGKILL, a crash), its flight recorder stays under /dev/shm \
            ('rseqtrace list' shows it as exited): snapshot recovers it into a trace (a record its \
            crash left half-written is counted as abandoned) and then removes it.

            The last line is machine-readable:
              summary: pid=<n> recorded=<n> overwritten=<n> lost=<n> state=<running|exited>
            where lost = overwritten + dropped + too large + abandoned.
            """)

    @Argument(help: "The process whose flight recorder to write (see 'rseqtrace list').")
    var pid: Int32

    @Option(name: [.customShort("o"), .long], help: """
        Directory for the trace (created; must not exist or be empty). Default: a new \
        rseqtrace-snapshot-PID-YYYYMMDD-HHMMSS directory (UTC) in the current directory.
        """)
    var output: String?

    func validate() throws {
        guard pid > 0 else { throw ValidationError("'\(pid)' is not a process id") }
    }

    func run() throws {
        do {
            try snapshot()
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }

    private func snapshot() throws(TraceError) {
        let output = self.output ?? LiveTargets.defaultOutput(prefix: "rseqtrace-snapshot-\(pid)")
        if let endpoint = ControlClient.endpoint(of: pid) {
            let client = try ControlClient(connectingTo: endpoint)
            let status = try client.status()
            let command = LiveTargets.safeName(status["program"] ?? status["command"] ?? "process")
            let (buffer, _) = try client.openSession(ControlMessage("snapshot"))
            try write(buffer: buffer, to: output, command: command, running: true)
            try? client.detach()
            return
        }
        let objects = ControlClient.flightRecorders().filter { $0.pid == pid }
        guard let object = objects.max(by: { $0.startTime < $1.startTime }) else {
            if SystemInfo.runningProcessStartTime(pid) == nil {
                throw TraceError(.notFound, "no process \(pid) is running, and no flight recorder of a process \(pid) is left in /dev/shm ('rseqtrace list' shows what is)")
            }
            throw LiveTargets.notTraceable(pid)
        }
        let path = SharedTraceBuffer.path(forName: object.name)
        guard object.processHasExited else {
            throw TraceError(.notFound, """
                process \(pid) runs with a flight recorder (\(path)) but without a control socket (\(TraceRuntime.controlVariable)=off?): \
                a snapshot needs the control socket while it runs
                """)
        }
        let buffer = try SharedTraceBuffer.open(name: object.name, expectedOwner: object.ownerUID)
        try write(buffer: buffer, to: output, command: "pid\(pid)", running: false)
        buffer.removeName()
        print("recovered: \(path) removed")
    }

    private func write(buffer: SharedTraceBuffer, to output: String, command: String, running: Bool) throws(TraceError) {
        let createdDirectory = try CTFTraceWriter.prepareDirectory(output)
        var complete = false
        defer { if !complete { CTFTraceWriter.removeTrace(in: output, removingDirectory: createdDirectory) } }
        let recorder = try TraceRecorder(buffer: buffer, output: output, traceName: "rseqtrace-snapshot",
                                         procname: command, pid: pid)
        if running {
            // What the buffer holds now, and what producers commit while it is read: three rounds,
            // each reading everything committed, so a busy program cannot keep the snapshot going.
            for _ in 0..<3 { try recorder.round() }
        } else {
            // No producer can run any more: a record left reserved is abandoned.
            try recorder.round(quiescent: true)
        }
        let summary = try recorder.finish()
        let totals = recorder.drainer.totals
        for (_, error) in recorder.quarantinedRings.sorted(by: { $0.key < $1.key }) { printError("error: \(error.message)") }
        if let summary {
            print("trace: \(output) (CTF 1.8): \(summary.events) events in \(summary.packets) packets")
        }
        print("summary: pid=\(pid) recorded=\(totals.recorded) overwritten=\(totals.overwritten) lost=\(totals.lost) state=\(running ? "running" : "exited")")
        complete = true
        if !recorder.quarantinedRings.isEmpty { throw TraceError(.corrupted, "the flight recorder of process \(pid) is damaged; the trace holds what could be read") }
    }
}
