#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport

/// `die-mid-record`: a producer that dies between reserve and commit. It commits `--events`
/// records (event 7, payload = sequence number), reserves one more, writes half of its payload and
/// kills itself with SIGKILL, leaving that record marked as being written forever. Without
/// `--name` it attaches through RSEQTRACE_BUFFER (as under `rseqtrace record`).
/// - `--cpu N`: pins itself to CPU N first (its records land in that CPU's ring).
/// - `--lead`: another thread of the process writes one record (event 7, payload 2^32) on the same
///   CPU right before the reservation, which therefore begins with a thread record (a busy lead).
/// - `--stop`: stops itself with SIGSTOP instead, the reservation open; once continued it commits
///   the record (payload = `--events`), prints `die-mid-record: resumed committed=<n>` and exits 0.
/// - `--exit-thread`: the reservation is made by a second thread, which then exits without
///   committing it (the process lives on: it prints `die-mid-record: thread-exited tid=<t>` and
///   waits until `--linger` seconds have passed, then exits 0).
enum DieMidRecordCommand {
    static let usage = "die-mid-record [--name NAME] --events N [--cpu N] [--lead] [--stop | --exit-thread [--linger S]]"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: ["lead", "stop", "exit-thread"],
                                  valueNames: ["name", "events", "cpu", "linger"])
        let events = try options.int("events", in: 0...1_000_000)
        let linger = try options.int("linger", default: 5, in: 0...600)
        var cpu: Int32 = -1
        if options.values["cpu"] != nil {
            cpu = Int32(try options.int("cpu", in: 0...4095))
            guard pinCurrentThread(to: cpu) else { return 3 }
        }
        guard let buffer = attachAsProducer(name: options.values["name"]) else { return 3 }
        let producer = buffer.makeProducer()
        for sequence in 0..<UInt64(events) {
            guard producer.write(eventID: 7, value: sequence) else {
                printError("error: record \(sequence) was dropped")
                return 1
            }
        }
        if options.has("lead") {
            // Another thread writes the record before the head, so the next one needs a thread record.
            let pinned = cpu
            WorkerThreads.run(count: 1) { _ in
                if pinned >= 0 { _ = rtts_set_thread_affinity(rtts_gettid(), pinned) }
                _ = buffer.makeProducer().write(eventID: 7, value: UInt64(1) << 32)
            }
        }
        if options.has("exit-thread") {
            let pinned = cpu
            WorkerThreads.run(count: 1) { _ in
                if pinned >= 0 { _ = rtts_set_thread_affinity(rtts_gettid(), pinned) }
                let threadProducer = buffer.makeProducer()
                guard let reservation = threadProducer.reserve(eventID: 7, payloadSize: 16) else { return }
                reservation.store(UInt64(events), at: 0)
                writeLine("die-mid-record: thread-exited tid=\(rtts_gettid())\n")
                // The thread ends here with its reservation open: never committed, never abandoned.
                exitThread(keeping: reservation)
            }
            sleep(UInt32(linger))
            return 0
        }
        guard let reservation = producer.reserve(eventID: 7, payloadSize: 16) else {
            printError("error: the last reservation was dropped")
            return 1
        }
        reservation.store(UInt64(events), at: 0)
        writeLine("die-mid-record: committed=\(events) reserved=1\n")
        if options.has("stop") {
            raise(SIGSTOP)
            reservation.commit()
            writeLine("die-mid-record: resumed committed=\(events + 1)\n")
            return 0
        }
        raise(SIGKILL)
        _ = consume reservation   // never reached
        return 1
    }

    /// Ends the calling thread while `reservation` is borrowed, so that it is never destroyed
    /// (destroying it would abandon the record as padding).
    static func exitThread(keeping reservation: borrowing Reservation) -> Never {
        pthread_exit(nil)
    }

    /// Writes a line with write(2): stdio buffers would die with the process.
    static func writeLine(_ text: String) {
        var line = text
        // SAFETY: writing the string's own UTF-8 buffer, valid for the closure.
        line.withUTF8 { bytes in _ = unsafe write(1, bytes.baseAddress, bytes.count) }
    }
}

/// `keep-writing`: attaches to a buffer by name, pins itself to `--cpu` and writes `--events`
/// records of event 8 (payload = `--tag` << 32 | sequence), pausing `--pause-us` microseconds after
/// every 64. With `--stop-file PATH` it stops early, after the 64 records during which that file
/// appeared. Prints `keep-writing: emitted=<n> stored=<s> pid=<p> tid=<t>`.
enum KeepWritingCommand {
    static let usage = "keep-writing --name NAME --cpu N --events N [--tag T] [--pause-us U] [--stop-file PATH]"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["name", "cpu", "events", "tag", "pause-us", "stop-file"])
        let stopFile = options.values["stop-file"]
        let name = try options.string("name")
        let cpu = try options.int("cpu", in: 0...4095)
        let events = try options.int("events", in: 0...10_000_000)
        let tag = UInt64(try options.int("tag", default: 0, in: 0...65535))
        let pause = try options.int("pause-us", default: 0, in: 0...1_000_000)
        guard pinCurrentThread(to: Int32(cpu)) else { return 3 }
        guard let buffer = attachAsProducer(name: name) else { return 3 }
        let producer = buffer.makeProducer()
        var stored = 0
        var emitted = 0
        for sequence in 0..<UInt64(events) {
            if producer.write(eventID: 8, value: tag << 32 | sequence) { stored += 1 }
            emitted += 1
            if sequence % 64 == 63 {
                if pause > 0 { usleep(UInt32(pause)) }
                // SAFETY: access reads the NUL-terminated copy of the path Swift passes for the call.
                if let stopFile, unsafe access(stopFile, F_OK) == 0 { break }
            }
        }
        print("keep-writing: emitted=\(emitted) stored=\(stored) pid=\(getpid()) tid=\(rtts_gettid())")
        return 0
    }
}

/// `spawn-write`: attaches to a buffer by name, pins itself to `--cpu` and writes `--events` records
/// of event 8 with tag 1 (as `keep-writing`), then runs `keep-writing` (tag 2, same CPU, `--events`)
/// in another program image: with `--how spawn` a child process started with `posix_spawn`, waited
/// for, after which it writes `--events` more with tag 1 and prints
/// `spawn-write: pid=<p> child=<c> child_status=<s> stored=<n>`; with `--how exec` it replaces
/// itself with `execv` (same pid; `keep-writing` prints its line).
enum SpawnWriteCommand {
    static let usage = "spawn-write --name NAME --cpu N --events N --how spawn|exec"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["name", "cpu", "events", "how"])
        let name = try options.string("name")
        let cpu = try options.int("cpu", in: 0...4095)
        let events = try options.int("events", in: 1...1_000_000)
        let how = try options.string("how")
        guard how == "spawn" || how == "exec" else { throw UsageError("--how must be spawn or exec") }
        guard pinCurrentThread(to: Int32(cpu)) else { return 3 }
        guard let buffer = attachAsProducer(name: name) else { return 3 }
        let producer = buffer.makeProducer()
        var stored = 0
        for sequence in 0..<UInt64(events) where producer.write(eventID: 8, value: UInt64(1) << 32 | sequence) {
            stored += 1
        }
        guard let executable = ownExecutable() else {
            printError("error: cannot find this program's executable")
            return 3
        }
        let child = [executable, "keep-writing", "--name", name, "--cpu", "\(cpu)", "--events", "\(events)", "--tag", "2"]
        if how == "exec" {
            let argv = CStringArray(child)
            // SAFETY: argv is a NULL-terminated array of C strings, alive until the call (which only
            // returns on failure).
            unsafe argv.pointers.withUnsafeBufferPointer { unsafe _ = execv(executable, $0.baseAddress!) }
            printError("error: execv \(executable) failed (errno \(errno))")
            return 3
        }
        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(child, stdout: .inherit, timeout: .seconds(60))
        } catch {
            printError("error: \(error)")
            return 3
        }
        for sequence in 0..<UInt64(events) where producer.write(eventID: 8, value: UInt64(1) << 32 | UInt64(events) + sequence) {
            stored += 1
        }
        print("spawn-write: pid=\(getpid()) child=\(outcome.pid) child_status=\(outcome.status) stored=\(stored)")
        return outcome.exitCode == 0 ? 0 : 1
    }

    /// This program's executable, from /proc/self/exe.
    static func ownExecutable() -> String? {
        var bytes = [UInt8](repeating: 0, count: 4096)
        // SAFETY: readlink writes at most count bytes into the array's own storage.
        let length = unsafe bytes.withUnsafeMutableBytes { raw in unsafe readlink("/proc/self/exe", raw.baseAddress!, raw.count) }
        guard length > 0, length < bytes.count else { return nil }
        return String(decoding: bytes[..<length], as: UTF8.self)
    }
}

/// Pins the calling thread to `cpu`; prints the error and returns false when it cannot.
func pinCurrentThread(to cpu: Int32) -> Bool {
    guard rtts_set_thread_affinity(rtts_gettid(), cpu) == 0 else {
        printError("error: cannot pin to CPU \(cpu)")
        return false
    }
    return true
}

/// Attaches to an existing buffer as an extra producer process: by name, or through
/// RSEQTRACE_BUFFER when `name` is nil. Prints the error and returns nil when it cannot.
func attachAsProducer(name: String?) -> SharedTraceBuffer? {
    do {
        let buffer: SharedTraceBuffer
        if let name {
            buffer = try SharedTraceBuffer.open(name: name)
            buffer.noteAttachedProducer()
        } else if let attached = try SharedTraceBuffer.openFromEnvironment() {
            buffer = attached
        } else {
            printError("error: no --name and no \(SharedTraceBuffer.environmentVariable)")
            return nil
        }
        return buffer
    } catch {
        printError("error: \(error)")
        return nil
    }
}
