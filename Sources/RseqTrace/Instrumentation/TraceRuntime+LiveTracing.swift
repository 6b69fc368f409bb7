#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import Synchronization
import SystemPackage

/// The always-on overwrite buffer of a process (`RSEQTRACE_FLIGHT_RECORDER`).
struct FlightRecorder {
    let buffer: SharedTraceBuffer
    /// Open on the /dev/shm object: passed to `rseqtrace snapshot` and `attach`.
    let file: FileDescriptor
}

/// A buffer created for attach sessions: an anonymous memory file, sealed against resizing.
struct SessionBuffer {
    let buffer: SharedTraceBuffer
    let file: FileDescriptor
    let ringSize: Int
    let subbufferSize: Int
    let mode: BufferMode
}

/// The live-tracing session open now: one consumer at a time drains this process's buffer.
struct ControlSession {
    enum Kind: String { case attach, snapshot }
    let kind: Kind
    let consumerPID: Int32
    /// The control connection that opened it (closing that connection ends it).
    let connection: Int
    /// The rules to restore when it ends (an attach that gave its own rules).
    let savedRules: EventRules?
}

extension TraceRuntime {
    /// `RSEQTRACE_FLIGHT_RECORDER=<size>` (`4M`, `256K`, a power of two per CPU): keep an
    /// always-on overwrite-mode buffer of that ring size per CPU, recording the events the rules
    /// enable, so that `rseqtrace snapshot PID` can write the most recent history at any time, and
    /// after a crash. See docs/LiveTracing.md.
    public static let flightRecorderVariable = "RSEQTRACE_FLIGHT_RECORDER"
    /// `RSEQTRACE_CONTROL=off` keeps the process out of `rseqtrace list` and `attach` (no control
    /// socket, no control thread).
    public static let controlVariable = "RSEQTRACE_CONTROL"
    /// The prefix of every flight recorder's name under /dev/shm:
    /// `rseqtrace-flight.<pid>.<start time>`.
    package static let flightRecorderPrefix = "rseqtrace-flight."

    /// Starts the flight recorder: from now on, enabled events go to an overwrite-mode buffer of
    /// `ringSize` bytes per CPU that keeps the most recent history, for `rseqtrace snapshot`
    /// (while the program runs, and after it died). The buffer lives under /dev/shm as
    /// `rseqtrace-flight.<pid>.<start time>` and is removed when the program exits normally.
    /// Calling it again once a flight recorder runs does nothing.
    /// - Parameters:
    ///   - ringSize: bytes per CPU, a power of two (8 KiB ... 1 GiB).
    ///   - subbufferSize: a power of two; default: 64 KiB clamped to 1/256 ... 1/4 of `ringSize`.
    /// - Throws: `.invalidConfiguration` for sizes that cannot work, `.systemCallFailed` when the
    ///   buffer cannot be created (e.g. /dev/shm is too small).
    public static func startFlightRecorder(ringSize: Int, subbufferSize: Int? = nil) throws(TraceError) {
        try shared.withLock { (state: inout State) throws(TraceError) in
            guard state.flightRecorder == nil else { return }
            try createFlightRecorder(ringSize: ringSize, subbufferSize: subbufferSize, &state)
            rearm(&state)
        }
    }

    /// Whether a flight recorder runs in this process.
    public static var hasFlightRecorder: Bool { shared.withLock { $0.flightRecorder != nil } }

    /// Reads `RSEQTRACE_FLIGHT_RECORDER` and `RSEQTRACE_CONTROL` at first use: starts the flight
    /// recorder and the control socket they ask for.
    static func readLiveTracingEnvironment(into state: inout State) {
        if let value = environment(flightRecorderVariable), !value.isEmpty {
            if let size = ByteCount.parse(value) {
                do throws(TraceError) {
                    try createFlightRecorder(ringSize: size, subbufferSize: nil, &state)
                } catch {
                    note("\(flightRecorderVariable)=\(value): no flight recorder: \(error)", into: &state)
                }
            } else {
                note(escapingControls("""
                    \(flightRecorderVariable)='\(value)' is not a size: write the ring size per CPU as a power of two, \
                    e.g. 4M or 256K
                    """), into: &state)
            }
        }
        let control = environment(controlVariable) ?? ""
        if control == "off" || control == "0" { return }
        if !control.isEmpty && control != "on" && control != "1" {
            note("\(controlVariable)='\(escapingControls(control))' is ignored: use off to keep this process out of rseqtrace list and attach", into: &state)
        }
        do throws(TraceError) {
            state.controlName = try ControlServer.start()
        } catch {
            note("rseqtrace list and attach cannot see this process: \(error)", into: &state)
        }
    }

    static func createFlightRecorder(ringSize: Int, subbufferSize: Int?, _ state: inout State) throws(TraceError) {
        let pid = getpid()
        let start = SystemInfo.processStartTime(pid) ?? 0
        var name = "\(flightRecorderPrefix)\(pid).\(start)"
        var configuration = TraceConfiguration(
            name: name, ringSize: ringSize,
            subbufferSize: subbufferSize ?? TraceConfiguration.defaultSubbufferSize(forRingSize: ringSize),
            mode: .overwrite, removeWhenClosed: false)
        let buffer: SharedTraceBuffer
        do throws(TraceError) {
            buffer = try SharedTraceBuffer.create(configuration)
        } catch where error.code == .alreadyExists {
            // Another pid namespace sharing this /dev/shm, or a file someone placed there.
            name += "." + SystemInfo.randomBytes(4).map { String($0, radix: 16) }.joined()
            configuration.name = name
            buffer = try SharedTraceBuffer.create(configuration)
        }
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(SharedTraceBuffer.path(forName: name)), .readWrite,
                                           options: [.noFollow, .closeOnExec])
        } catch {
            buffer.removeName()
            throw TraceError(.systemCallFailed, "cannot reopen the flight recorder \(SharedTraceBuffer.path(forName: name)): \(error)")
        }
        guard state.attached.count < maximumAttachments else {
            buffer.removeName()
            try? file.close()
            throw TraceError(.invalidConfiguration, "this process already attached \(maximumAttachments) trace buffers")
        }
        state.flightRecorder = FlightRecorder(buffer: buffer, file: file)
        ExitCleanup.remove(buffer)
        if state.session == nil { installProducer(for: buffer, &state) }
    }

    // MARK: - Requests of the control thread

    /// The answer to `status`: who this process is and what it traces.
    package static func controlStatus() -> ControlMessage {
        let pid = getpid()
        return shared.withLock { state in
            var reply = ControlMessage("ok")
            reply["pid"] = "\(pid)"
            reply["start_time"] = "\(SystemInfo.processStartTime(pid) ?? 0)"
            reply["command"] = SystemInfo.processName(pid) ?? "?"
            reply["command_line"] = SystemInfo.commandLine(pid) ?? ""
            // The program's file name (argv[0] without its directory), as `rseqtrace record` names a trace.
            if let argv0 = SystemInfo.readSmallFile("/proc/\(pid)/cmdline")?.split(separator: "\0").first,
               let program = argv0.split(separator: "/").last {
                reply["program"] = String(program)
            }
            reply["producer_mode"] = RseqRuntime.mode.rawValue
            reply["state"] = state.session.map { $0.kind == .attach ? "attached" : "snapshot" }
                ?? (state.flightRecorder != nil ? "flight-recorder" : "idle")
            if let session = state.session { reply["consumer"] = "\(session.consumerPID)" }
            reply["tracepoints"] = "\(state.entries.count)"
            reply["events"] = "\(state.schemas.count)"
            reply["enabled"] = "\(state.schemas.filter { state.rules.isEnabled($0.name) }.count)"
            var bytes = 0
            var resident = 0
            var files: [(SharedTraceBuffer, FileDescriptor)] = state.sessionBuffers.map { ($0.buffer, $0.file) }
            if let flight = state.flightRecorder {
                files.append((flight.buffer, flight.file))
                reply["flight_recorder"] = flight.buffer.name
                reply["flight_ring_size"] = "\(flight.buffer.layout.ringSize)"
            }
            for (buffer, file) in files {
                bytes += buffer.layout.totalSize
                resident += SystemInfo.allocatedBytes(of: file) ?? 0
            }
            reply["buffer_bytes"] = "\(bytes)"
            reply["resident_bytes"] = "\(resident)"
            return reply
        }
    }

    /// The answer to `events`: up to `limit` registered events from `offset`, each as
    /// `event_<i>=<enabled 0/1> <name> <field>:<type>,...`.
    package static func controlEvents(offset: Int, limit: Int) -> ControlMessage {
        shared.withLock { state in
            var reply = ControlMessage("ok")
            reply["total"] = "\(state.schemas.count)"
            let range = min(offset, state.schemas.count)..<min(offset + limit, state.schemas.count)
            reply["count"] = "\(range.count)"
            for (i, schema) in state.schemas[range].enumerated() {
                let fields = schema.fields.map { "\($0.name):\($0.type.spelling)" }.joined(separator: ",")
                reply["event_\(i)"] = "\(state.rules.isEnabled(schema.name) ? 1 : 0) \(schema.name) \(fields)"
            }
            return reply
        }
    }

    /// Opens an `attach` or `snapshot` session for the consumer `consumer` on control connection
    /// `connection`: returns the reply and the descriptor of the buffer to pass with it.
    package static func openControlSession(_ request: ControlMessage, consumer: Int32, connection: Int) throws(TraceError) -> (ControlMessage, Int32) {
        try shared.withLock { (state: inout State) throws(TraceError) -> (ControlMessage, Int32) in
            if let session = state.session {
                throw TraceError(.alreadyExists, """
                    process \(getpid()) is already traced by process \(session.consumerPID) (rseqtrace \(session.kind.rawValue)); \
                    wait for it to finish or stop it first
                    """)
            }
            var reply = ControlMessage("ok")
            let descriptor: Int32
            var savedRules: EventRules?
            if request.verb == "snapshot" {
                guard let flight = state.flightRecorder else {
                    throw TraceError(.notFound, """
                        process \(getpid()) keeps no flight recorder: start it with \(flightRecorderVariable)=<size> in its \
                        environment (or TraceRuntime.startFlightRecorder), or record it with rseqtrace attach
                        """)
                }
                descriptor = flight.file.rawValue
                reply["buffer"] = flight.buffer.name
            } else {
                let mode = request["mode"] ?? ""
                if let flight = state.flightRecorder {
                    guard mode.isEmpty || mode == "overwrite" else {
                        throw TraceError(.invalidConfiguration, """
                            process \(getpid()) keeps a flight recorder (overwrite mode), which attach records from: \
                            leave out --mode discard
                            """)
                    }
                    descriptor = flight.file.rawValue
                    reply["buffer"] = flight.buffer.name
                } else {
                    let ringSize = try request.integer("buffer_size", in: 1...(1 << 30))
                    let subbufferSize = try request.integer("subbuffer_size", in: 1...(1 << 30))
                    let bufferMode: BufferMode = mode == "overwrite" ? .overwrite : .discard
                    guard mode.isEmpty || mode == "discard" || mode == "overwrite" else {
                        throw TraceError(.invalidConfiguration, "unknown buffer mode '\(mode)': use discard or overwrite")
                    }
                    let session = try sessionBuffer(ringSize: ringSize, subbufferSize: subbufferSize, mode: bufferMode, &state)
                    descriptor = session.file.rawValue
                    reply["buffer"] = session.buffer.name
                    installProducer(for: session.buffer, &state)
                }
                if let rules = request["rules"] {
                    let parsed = try EventRules(parsing: rules)
                    savedRules = state.rules
                    state.rules = parsed
                }
                rearm(&state)
            }
            state.session = ControlSession(kind: request.verb == "snapshot" ? .snapshot : .attach, consumerPID: consumer,
                                           connection: connection, savedRules: savedRules)
            reply["pid"] = "\(getpid())"
            return (reply, descriptor)
        }
    }

    /// Ends the session opened on control connection `connection` (a `detach`, or the consumer
    /// closed the connection or died): the rules in force before it are back, and events go to
    /// the flight recorder again, or nowhere.
    package static func closeControlSession(connection: Int) {
        shared.withLock { state in
            guard let session = state.session, session.connection == connection else { return }
            state.session = nil
            guard session.kind == .attach else { return }
            if let rules = session.savedRules { state.rules = rules }
            if let flight = state.flightRecorder {
                installProducer(for: flight.buffer, &state)
            } else {
                state.buffer = nil
            }
            rearm(&state)
        }
    }

    /// A buffer for an attach session: the previous one when its geometry and mode match,
    /// otherwise a new anonymous memory file.
    private static func sessionBuffer(ringSize: Int, subbufferSize: Int, mode: BufferMode,
                                      _ state: inout State) throws(TraceError) -> SessionBuffer {
        if let existing = state.sessionBuffers.first(where: {
            $0.ringSize == ringSize && $0.subbufferSize == subbufferSize && $0.mode == mode
        }) {
            return existing
        }
        guard state.attached.count < maximumAttachments else {
            throw TraceError(.invalidConfiguration, """
                process \(getpid()) already holds \(maximumAttachments) trace buffers; attach again with the size and mode \
                of an earlier session to reuse its buffer
                """)
        }
        let label = "rseqtrace-attach-\(getpid())"
        let file = try MemoryFile.create(label: label)
        let buffer: SharedTraceBuffer
        do throws(TraceError) {
            buffer = try SharedTraceBuffer.create(
                TraceConfiguration(name: label, ringSize: ringSize, subbufferSize: subbufferSize, mode: mode), in: file)
            try MemoryFile.sealSize(file)
        } catch {
            try? file.close()
            throw error
        }
        let session = SessionBuffer(buffer: buffer, file: file, ringSize: ringSize, subbufferSize: subbufferSize, mode: mode)
        state.sessionBuffers.append(session)
        return session
    }
}

/// The /dev/shm names this process removes when it exits normally (`atexit`): its flight
/// recorder. Its own lock, never held while anything else is, so that an exit handler running
/// while another thread is inside the runtime does not wait for it.
/// A child made by `fork` inherits the handler but not the objects: only the process that created
/// an object removes it.
enum ExitCleanup {
    private static let buffers = Mutex<[(buffer: SharedTraceBuffer, creator: Int32)]>([])
    private static let registered = Atomic<Bool>(false)

    static func remove(_ buffer: SharedTraceBuffer) {
        let creator = getpid()
        buffers.withLock { $0.append((buffer, creator)) }
        if registered.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            atexit { ExitCleanup.run() }
        }
    }

    private static func run() {
        let me = getpid()
        for entry in buffers.withLock({ $0 }) where entry.creator == me { entry.buffer.removeName() }
    }
}

extension TraceRuntime {
    /// Names the calling thread: records `rseqtrace:thread_name` {`name`} (when enabled), which
    /// the exports and `stats` use to name the thread's track and row, and sets its `comm`
    /// (`pthread_setname_np`, which `top`, `ps -L` and gdb show too). A consumer also names each
    /// thread of a trace by what its `/proc/<pid>/task/<tid>/comm` holds when it first drains an
    /// event of it (while the thread still runs), so threads named by other means get their name
    /// too. The kernel keeps at most 15 bytes: a longer name is cut at the last whole UTF-8
    /// character that fits (the event keeps it whole, up to 255 bytes).
    /// - Throws: `.systemCallFailed` when the kernel refuses the name.
    public static func nameCurrentThread(_ name: String) throws(TraceError) {
        var bytes = Array(name.utf8.prefix(15))
        // Cut at a character boundary: drop the bytes of a character the limit split.
        while !bytes.isEmpty && String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
        let text = String(decoding: bytes, as: UTF8.self)
        threadNameTracepoint.emit(name)
        // SAFETY: the call copies the NUL-terminated name for its duration.
        let result = unsafe rseqtrace_name_current_thread(text)
        guard result == 0 else {
            throw TraceError(.systemCallFailed, "cannot name this thread '\(text)'", errno: Errno(rawValue: -result))
        }
    }

    /// The built-in tracepoint ``nameCurrentThread(_:)`` records: `rseqtrace:thread_name` {`name`}.
    public static let threadNameTracepoint = Tracepoint1<String>("rseqtrace:thread_name", fields: "name")
}
