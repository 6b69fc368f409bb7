#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

/// `die-mid-record`: a producer that dies between reserve and commit. It commits `--events`
/// records (event 7, payload = sequence number), reserves one more, writes half of its payload and
/// kills itself with SIGKILL, leaving that record marked as being written forever. Without
/// `--name` it attaches through RSEQTRACE_BUFFER (as under `rseqtrace record`).
enum DieMidRecordCommand {
    static let usage = "die-mid-record [--name NAME] --events N"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["name", "events"])
        let events = try options.int("events", in: 0...1_000_000)
        guard let buffer = attachAsProducer(name: options.values["name"]) else { return 3 }
        let producer = buffer.makeProducer()
        for sequence in 0..<UInt64(events) {
            guard producer.write(eventID: 7, value: sequence) else {
                printError("error: record \(sequence) was dropped")
                return 1
            }
        }
        guard let reservation = producer.reserve(eventID: 7, payloadSize: 16) else {
            printError("error: the last reservation was dropped")
            return 1
        }
        reservation.store(UInt64(events), at: 0)
        // Written with write(2): stdio buffers would die with the process.
        var line = "die-mid-record: committed=\(events) reserved=1\n"
        // SAFETY: writing the string's own UTF-8 buffer, valid for the closure.
        line.withUTF8 { bytes in _ = unsafe write(1, bytes.baseAddress, bytes.count) }
        raise(SIGKILL)
        _ = consume reservation   // never reached
        return 1
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
