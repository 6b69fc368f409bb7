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
            guard rtts_set_thread_affinity(rtts_gettid(), cpu) == 0 else {
                printError("error: cannot pin to CPU \(cpu)")
                return 3
            }
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
/// every 64. Prints `keep-writing: emitted=<n> stored=<s> pid=<p> tid=<t>`.
enum KeepWritingCommand {
    static let usage = "keep-writing --name NAME --cpu N --events N [--tag T] [--pause-us U]"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["name", "cpu", "events", "tag", "pause-us"])
        let name = try options.string("name")
        let cpu = try options.int("cpu", in: 0...4095)
        let events = try options.int("events", in: 0...10_000_000)
        let tag = UInt64(try options.int("tag", default: 0, in: 0...65535))
        let pause = try options.int("pause-us", default: 0, in: 0...1_000_000)
        guard rtts_set_thread_affinity(rtts_gettid(), Int32(cpu)) == 0 else {
            printError("error: cannot pin to CPU \(cpu)")
            return 3
        }
        guard let buffer = attachAsProducer(name: name) else { return 3 }
        let producer = buffer.makeProducer()
        var stored = 0
        for sequence in 0..<UInt64(events) {
            if producer.write(eventID: 8, value: tag << 32 | sequence) { stored += 1 }
            if sequence % 64 == 63 && pause > 0 { usleep(UInt32(pause)) }
        }
        print("keep-writing: emitted=\(events) stored=\(stored) pid=\(getpid()) tid=\(rtts_gettid())")
        return 0
    }
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
