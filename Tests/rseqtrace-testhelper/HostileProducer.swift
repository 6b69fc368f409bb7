#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

/// `hostile-producer`: another process of the same user writing impossible values into a trace
/// object while a consumer drains it (Tests/RseqTraceTests/HostileMemoryTests.swift).
///
/// - `--name NAME`: one write into the object NAME (`--field` of ring `--ring`, or the record word
///   at `--position` with `--field word`), then exit.
/// - without `--name` (under `rseqtrace record`, which passes the object in RSEQTRACE_BUFFER):
///   writes `--events` records on ring `--ring` (the victim) and on ring `--good`, waits until the
///   consumer has read the victim completely, scribbles the victim's `--field`, then writes
///   `--events` more records on ring `--good` and exits. Prints `hostile-producer: written=<n>`.
enum HostileProducerCommand {
    static let usage = """
        hostile-producer [--name NAME] --ring R --field head|consumed|dropped|tooLarge|word --value V \
        [--position P] [--good R --events N]
        """

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [],
                                  valueNames: ["name", "ring", "field", "value", "position", "good", "events"])
        let ring = try options.int("ring", in: 0...4096)
        let fieldName = try options.string("field")
        guard let value = UInt64(try options.string("value")) else { throw UsageError("--value must be a UInt64") }
        let position = UInt64(try options.int("position", default: 0, in: 0...Int.max))
        let field: ControlField?
        switch fieldName {
        case "head": field = .head
        case "consumed": field = .consumed
        case "dropped": field = .dropped
        case "tooLarge": field = .tooLarge
        case "word": field = nil
        default: throw UsageError("unknown --field \(fieldName)")
        }
        let named = try? options.string("name")
        guard let buffer = attachAsProducer(name: named) else { return 3 }
        guard ring < buffer.layout.ringCount else {
            printError("error: ring \(ring) does not exist (\(buffer.layout.ringCount) rings)")
            return 3
        }
        if named != nil {
            scribble(buffer, ring: ring, field: field, position: position, value: value)
            print("hostile-producer: ring=\(ring) field=\(fieldName) value=\(value)")
            return 0
        }
        let good = try options.int("good", in: 0...4096)
        let events = try options.int("events", in: 1...1000)
        let producer = buffer.makeProducer()
        var written = 0
        func write(on cpu: Int, from first: Int) -> Bool {
            do {
                return try CPUPinner.run(onCPU: cpu, realtime: false) { () throws(TraceError) -> Bool in
                    for sequence in first..<(first + events) {
                        guard producer.write(eventID: 1, value: UInt64(sequence)) else { return false }
                        written += 1
                    }
                    return true
                }
            } catch {
                printError("error: cannot write on CPU \(cpu): \(error)")
                return false
            }
        }
        guard write(on: ring, from: 0), write(on: good, from: 1000) else { return 3 }
        // Wait (at most 20 s) until the consumer read everything the victim holds.
        let victim = buffer.ring(ring)
        var waited = 0
        while victim.load(.consumed, ordering: .acquiring) != victim.load(.head, ordering: .acquiring) {
            guard waited < 20_000 else {
                printError("error: the consumer did not read ring \(ring) within 20 s")
                return 3
            }
            SystemClock.sleep(milliseconds: 1)
            waited += 1
        }
        scribble(buffer, ring: ring, field: field, position: position, value: value)
        guard write(on: good, from: 2000) else { return 3 }
        print("hostile-producer: written=\(written)")
        return 0
    }

    static func scribble(_ buffer: SharedTraceBuffer, ring index: Int, field: ControlField?, position: UInt64, value: UInt64) {
        let ring = buffer.ring(index)
        if let field {
            ring.store(field, value, ordering: .releasing)
        } else {
            ring.storeWord(at: position, value, ordering: .releasing)
        }
    }
}
