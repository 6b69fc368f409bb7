#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RseqTrace
import RseqTraceSupport
import SystemPackage

/// `rseqtrace list`: the processes that can be attached to or snapshot, and exited ones whose
/// flight recorder can be recovered.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Show the running programs that use RseqTrace, and flight recorders left by exited ones.",
        discussion: """
            A program that uses RseqTrace tracepoints is listed from the first time one of them is \
            reached (unless it runs with RSEQTRACE_CONTROL=off or under rseqtrace record); only \
            your own processes are shown (every user's, for root). STATE is idle (nothing \
            recorded, tracepoints disabled), attached (rseqtrace attach records it), snapshot (a \
            snapshot is being taken), flight-recorder (RSEQTRACE_FLIGHT_RECORDER keeps its recent \
            history), or exited (it died leaving a flight recorder: recover it with rseqtrace \
            snapshot PID). EVENTS is the number of events it registered, ENABLED how many of them \
            the rules enable, BUFFER and RESIDENT the memory of its trace buffers (allocated, and \
            actually held).

            The last line is machine-readable:
              list: processes=<n> exited=<n>
            """)

    @Option(name: .customLong("events"), help: ArgumentHelp("List the events of this process instead.", valueName: "PID"))
    var eventsOf: Int32?

    @Flag(help: "Remove the flight recorders of processes that have exited (what nobody can recover any more once removed).")
    var clean = false

    func validate() throws {
        if let eventsOf, eventsOf <= 0 { throw ValidationError("'\(eventsOf)' is not a process id") }
        if eventsOf != nil && clean { throw ValidationError("--events and --clean do different things: use one") }
    }

    func run() throws {
        do {
            if let eventsOf {
                try listEvents(of: eventsOf)
            } else if clean {
                cleanExited()
            } else {
                listProcesses()
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }

    private func listProcesses() {
        var rows: [[String]] = [["PID", "STATE", "EVENTS", "ENABLED", "BUFFER", "RESIDENT", "MODE", "COMMAND"]]
        let me = getpid()
        var live = Set<Int32>()
        for endpoint in ControlClient.discover() where endpoint.pid != me {
            // Another user's process refuses the connection: it is not listed.
            guard let client = try? ControlClient(connectingTo: endpoint, timeoutMilliseconds: 1000),
                  let status = try? client.status() else { continue }
            live.insert(endpoint.pid)
            rows.append([
                "\(endpoint.pid)", status["state"] ?? "?", status["events"] ?? "?", status["enabled"] ?? "?",
                Self.size(status["buffer_bytes"]), Self.size(status["resident_bytes"]), status["producer_mode"] ?? "?",
                Self.commandText(status["command_line"] ?? status["command"] ?? "?"),
            ])
        }
        var exited = 0
        for object in ControlClient.flightRecorders() where !live.contains(object.pid) {
            let path = SharedTraceBuffer.path(forName: object.name)
            let (allocated, resident) = Self.fileSizes(path)
            if object.processHasExited {
                exited += 1
                rows.append(["\(object.pid)", "exited", "-", "-", Self.size(allocated.map(String.init)), Self.size(resident.map(String.init)),
                             "-", "(recover with: rseqtrace snapshot \(object.pid); flight recorder \(path))"])
            } else {
                live.insert(object.pid)
                rows.append(["\(object.pid)", "flight-recorder", "-", "-", Self.size(allocated.map(String.init)),
                             Self.size(resident.map(String.init)), "-",
                             Self.commandText(SystemInfo.commandLine(object.pid) ?? "?") + " (no control socket)"])
            }
        }
        print(Self.table(rows))
        print("list: processes=\(live.count) exited=\(exited)")
    }

    private func listEvents(of pid: Int32) throws(TraceError) {
        guard let endpoint = ControlClient.endpoint(of: pid) else { throw LiveTargets.notTraceable(pid) }
        let client = try ControlClient(connectingTo: endpoint)
        let events = try client.events()
        var rows: [[String]] = [["ENABLED", "EVENT", "FIELDS"]]
        for event in events {
            rows.append([event.enabled ? "yes" : "no", event.name,
                         event.fields.split(separator: ",").joined(separator: ", ")])
        }
        print(Self.table(rows))
        print("events: pid=\(pid) registered=\(events.count) enabled=\(events.filter(\.enabled).count)")
    }

    private func cleanExited() {
        var removed = 0
        for object in ControlClient.flightRecorders() where object.processHasExited {
            let path = SharedTraceBuffer.path(forName: object.name)
            // SAFETY: unlink takes the path by value.
            if unsafe unlink(path) == 0 {
                removed += 1
                print("removed \(path) (process \(object.pid) has exited)")
            } else {
                printError("rseqtrace: cannot remove \(path): \(Errno(rawValue: errno))")
            }
        }
        print("clean: removed=\(removed)")
    }

    /// Allocated size and resident bytes of the file at `path` (nil when it cannot be read).
    static func fileSizes(_ path: String) -> (Int?, Int?) {
        var info = stat()
        // SAFETY: `info` is a local stat the call fills; the path is passed by value.
        guard unsafe lstat(path, &info) == 0 else { return (nil, nil) }
        return (Int(info.st_size), Int(info.st_blocks) * 512)
    }

    /// `16M`, `1.5K`, `0`, or `-`.
    static func size(_ text: String?) -> String {
        guard let text, let bytes = Double(text) else { return "-" }
        for (suffix, unit) in [("G", 1073741824.0), ("M", 1048576.0), ("K", 1024.0)] where bytes >= unit {
            let value = bytes / unit
            return (value >= 10 || value == value.rounded() ? "\(Int(value.rounded()))" : format(value)) + suffix
        }
        return "\(Int(bytes))"
    }

    /// A command line as one safe, bounded column.
    static func commandText(_ text: String) -> String {
        let clean = String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) })
        return clean.count > 80 ? String(clean.prefix(77)) + "..." : clean
    }

    /// Rows as left-aligned columns separated by two spaces (the last column unpadded).
    static func table(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
