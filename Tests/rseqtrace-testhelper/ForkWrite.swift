#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport

/// `fork-write`: attaches to a buffer, pins itself to one CPU and writes `--events` records, forks,
/// lets the child (same CPU, so the same ring, right after the parent's records) write as many,
/// waits for it, then writes as many again. Each record's 16-byte payload is
/// `[pid << 32 | tid][phase << 32 | sequence]` as the writing thread sees itself (phase 0 before
/// the fork, 1 in the child, 2 after it): a reader checks that every record is attributed to the
/// thread that wrote it, in particular the child's to the child.
enum ForkWriteCommand {
    static let usage = "fork-write --name NAME --cpu N --events N"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["name", "cpu", "events"])
        let name = try options.string("name")
        let cpu = try options.int("cpu", in: 0...4095)
        let events = try options.int("events", in: 1...100_000)
        guard pinCurrentThread(to: Int32(cpu)) else { return 3 }
        guard let buffer = attachAsProducer(name: name) else { return 3 }
        let producer = buffer.makeProducer()
        let before = write(producer, phase: 0, events: events)
        let child = fork()
        if child == 0 {
            // The child: no output (it would interleave with the parent's), its status says it all.
            _exit(write(producer, phase: 1, events: events) == events ? 0 : 1)
        }
        guard child > 0 else {
            printError("error: fork failed (errno \(errno))")
            return 3
        }
        var status: Int32 = 0
        // SAFETY: `status` is a local the call writes.
        while unsafe waitpid(child, &status, 0) < 0 && errno == EINTR {}
        let after = write(producer, phase: 2, events: events)
        print("fork-write: path=\(producer.path) pid=\(getpid()) tid=\(rtts_gettid()) child=\(child) child_status=\(status) before=\(before) after=\(after)")
        return before == events && after == events && status == 0 ? 0 : 1
    }

    /// Writes `events` records naming the calling thread; returns how many were stored.
    static func write(_ producer: Producer, phase: UInt64, events: Int) -> Int {
        let writer = UInt64(UInt32(getpid())) << 32 | UInt64(UInt32(rtts_gettid()))
        var stored = 0
        for sequence in 0..<UInt64(events) where producer.write(eventID: 1, value: (writer, phase << 32 | sequence)) {
            stored += 1
        }
        return stored
    }
}
