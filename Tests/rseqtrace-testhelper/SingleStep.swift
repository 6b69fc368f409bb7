#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceTestPayloads

/// `singlestep-target`: writes records from one thread between two SIGSTOPs, so that a tracer
/// can single-step exactly the write loop.
enum SingleStepTargetCommand {
    static let usage = "singlestep-target --name NAME --events N [--id BASE] [--warmup N]"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["name", "events", "id", "warmup"])
        let name = try options.string("name")
        let events = try options.int("events", in: 1...100_000)
        let base = UInt32(try options.int("id", default: 0, in: 0...(1 << 23)))
        let warmup = try options.int("warmup", default: 1, in: 0...1000)
        let status = RseqRuntime.status
        guard let buffer = attachAsProducer(name: name) else { return 3 }
        let producer = buffer.makeProducer()
        var writer = PayloadWriter()
        var stored = 0
        // Warm-up records (thread BASE + 1), written before stepping starts: lazy symbol binding,
        // runtime metadata and opening this CPU's first sub-buffer happen here, not under the
        // tracer, so the stepped stretch costs the same for every record.
        var warmupStored = 0
        for sequence in 0..<UInt64(warmup) where writer.emit(producer, thread: base + 1, sequence: sequence) {
            warmupStored += 1
        }
        // Tracer: run until here, then single-step until the next SIGSTOP.
        raise(SIGSTOP)
        for sequence in 0..<UInt64(events) where writer.emit(producer, thread: base, sequence: sequence) {
            stored += 1
        }
        raise(SIGSTOP)
        print("singlestep-target: mode=\(status.mode) emitted=\(events) path=\(producer.path) stored=\(stored) warmup=\(warmupStored)")
        return 0
    }
}

/// `mode`: the producer mode this process would use.
enum ModeCommand {
    static func run() -> Int32 {
        let status = RseqRuntime.status
        print("mode=\(status.mode)")
        print("status: \(status) feature_size=\(status.featureSize)")
        return 0
    }
}
