import Testing
#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import CRseqTraceTestSupport
@testable import RseqTrace
import RseqTraceSupport
import SystemPackage

/// Per-CPU counters (docs/BufferProtocol.md §8): registration, exact sums, memory, and increments
/// under migration, preemption and signals in each producer mode.
@Suite("Per-CPU counters")
struct CounterTests {
    static func makeBuffer(cpus: Int? = 2) throws -> (SharedTraceBuffer, FileDescriptor) {
        let file = try MemoryFile.create(label: "rseqtrace-counter-test")
        let buffer = try SharedTraceBuffer.create(
            TraceConfiguration(name: "counter-test", ringSize: 8192, subbufferSize: 1024, cpuRingCount: cpus), in: file)
        return (buffer, file)
    }

    static func registrationError(_ buffer: SharedTraceBuffer, _ name: String) -> TraceError? {
        do {
            _ = try buffer.makeCounter(named: name)
            return nil
        } catch {
            return error
        }
    }

    @Test("a name gets one slot: the same name again, also through another mapping of the buffer, is the same counter")
    func registration() throws {
        let name = UnitTrace.name("counters")
        let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 8192, subbufferSize: 1024, cpuRingCount: 2))
        defer { buffer.removeName() }
        let first = try buffer.makeCounter(named: "requests")
        let second = try buffer.makeCounter(named: "bytes")
        #expect(first.slot == 0)
        #expect(second.slot == 1)
        #expect(try buffer.makeCounter(named: "requests").slot == 0)
        let other = try SharedTraceBuffer.open(name: name)
        let again = try other.makeCounter(named: "bytes")
        #expect(again.slot == 1)
        first.increment()
        again.increment(by: 40)
        second.increment(by: 2)
        #expect(first.value == 1)
        #expect(second.value == 42)
        #expect(again.value == 42)
        #expect(buffer.counterValues().map { "\($0.name)=\($0.value)" } == ["requests=1", "bytes=42"])
        #expect(try buffer.registeredEvents().values.contains(SharedTraceBuffer.counterSampleSchema))
    }

    @Test("names that cannot be registered are refused with what to do")
    func invalidNames() throws {
        let (buffer, file) = try Self.makeBuffer()
        defer { try? file.close() }
        let long = String(repeating: "n", count: 121)
        for bad in ["", long, "a\u{0}b"] {
            let error = try #require(Self.registrationError(buffer, bad))
            #expect(error.code == .invalidConfiguration)
            #expect(error.message == "counter name '\(bad)' is empty, longer than 120 UTF-8 bytes or contains NUL: use a shorter name")
        }
        #expect(Self.registrationError(buffer, String(repeating: "n", count: 120)) == nil)
    }

    @Test("the table holds 512 counters; the 513th name is refused, names already registered still resolve")
    func fullTable() throws {
        let (buffer, file) = try Self.makeBuffer()
        defer { try? file.close() }
        for index in 0..<TraceLayout.counterSlotCount {
            let counter = try buffer.makeCounter(named: "c\(index)")
            #expect(counter.slot == index)
            counter.increment(by: Int64(index))
        }
        let error = try #require(Self.registrationError(buffer, "one-more"))
        #expect(error.code == .invalidConfiguration)
        #expect(error.message == """
            the counter table of 'counter-test' is full (512 counters): cannot register counter 'one-more'; use fewer \
            distinct counter names
            """)
        #expect(try buffer.makeCounter(named: "c511").slot == 511)
        let values = buffer.counterValues()
        #expect(values.count == 512)
        #expect(values.allSatisfy { $0.name == "c\($0.value)" })
    }

    @Test("increments, negative amounts and reset give exact values; slots of different counters stay apart")
    func values() throws {
        // One block per possible CPU: increments on the rseq path never need the atomic block.
        let (buffer, file) = try Self.makeBuffer(cpus: nil)
        defer { try? file.close() }
        let counters = try (0..<40).map { try buffer.makeCounter(named: "n\($0)") }
        for (index, counter) in counters.enumerated() {
            for _ in 0..<index { counter.increment() }
        }
        #expect(counters.map(\.value) == (0..<40).map { Int64($0) })
        counters[7].increment(by: -10)
        #expect(counters[7].value == -3)
        counters[7].reset()
        #expect(counters[7].value == 0)
        counters[7].increment(by: 5)
        #expect(counters[7].value == 5)
        #expect(counters[6].value == 6 && counters[8].value == 8)
        let blocks = buffer.counterBlockValues(slot: counters[39].slot)
        #expect(blocks.count == buffer.layout.cpuRingCount + 1)
        #expect(blocks.reduce(0, &+) == 39)
        if RseqRuntime.mode.usesRseq {
            #expect(blocks.last == 0, "\(blocks): increments on a CPU with a block go to that block")
        } else {
            #expect(blocks.last == 39, "\(blocks): without rseq, increments go to the atomic block")
        }
    }

    @Test("a buffer for 384 CPUs with counters stays under 1 MiB: only the groups of registered counters get memory")
    func memoryWithManyCPUs() throws {
        let (buffer, file) = try Self.makeBuffer(cpus: 384)
        defer { try? file.close() }
        for index in 0..<16 { try buffer.makeCounter(named: "m\(index)").increment() }
        let resident = try #require(SystemInfo.allocatedBytes(of: file))
        #expect(resident < 1 << 20, "\(resident) bytes resident")
        #expect(buffer.counterValues().map(\.value) == Array(repeating: 1, count: 16))
    }

    @Test("counters are exact while a migrator moves the threads between CPUs, with widened sections and timer signals",
          .timeLimit(.minutes(2)),
          arguments: [[:], ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"], [RseqRuntime.forceFallbackVariable: "1"]])
    func exactUnderMigration(setting: [String: String]) throws {
        let threads = 3, increments = 20_000
        let outcome = try HelperProcess.runHelper(
            ["counters", "--threads", "\(threads)", "--increments", "\(increments)", "--inject", "200", "--signals"],
            setting: setting, timeout: .seconds(100))
        #expect(outcome.exitCode == 0, "\(outcome)")
        let fields = try #require(outcome.fields(of: "counters:"), "\(outcome)")
        let expected = "\(3 * threads * increments)"
        #expect(fields["api"] == expected, "\(outcome)")
        #expect(fields["raw"] == expected, "\(outcome)")
        let perCPU = try #require(fields["percpu"].flatMap { Int($0) })
        let atomic = try #require(fields["atomic"].flatMap { Int($0) })
        #expect(perCPU + atomic == 3 * threads * increments)
        #expect(try #require(fields["migrations"].flatMap { Int($0) }) > 0, "\(outcome)")
        if setting[RseqRuntime.forceFallbackVariable] != nil {
            #expect(fields["mode"] == "fallback")
            #expect(perCPU == 0, "without rseq every increment is an atomic add on the shared block: \(outcome)")
        } else {
            #expect(fields["mode"] == (setting.isEmpty && rtts_glibc_rseq_size() > 0 ? "rseq" : "rseq-self"))
            #expect(try #require(fields["aborts"].flatMap { Int($0) }) > 0, "the sections were not interrupted: \(outcome)")
            #expect(perCPU > 0, "\(outcome)")
        }
    }
}
