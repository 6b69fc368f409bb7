import Glibc
import RseqTrace
import RseqTraceConsumer
import Synchronization
import Testing
import RseqTraceSupport

/// `TraceDrainer.resetCounters()`: zeroes the ring counters atomically with producers (on each
/// ring's CPU), while the drainer's own totals stay exact.
@Suite("Drainer: resetting ring counters", .serialized)
struct CounterResetTests {
    static func makeBuffer(_ tag: String) throws -> SharedTraceBuffer {
        try SharedTraceBuffer.create(TraceConfiguration(name: "rseqtrace-test-reset-\(tag)-\(getpid())",
                                                        ringSize: 8192, subbufferSize: 1024, mode: .discard))
    }

    @Test("after a reset the ring counters read 0 and the drainer's totals still include what was reset")
    func resetIsExact() throws {
        let buffer = try Self.makeBuffer("single")
        let producer = buffer.makeProducer()
        var refused: UInt64 = 0
        for sequence in 0..<2000 where !producer.write(eventID: 3, value: UInt64(sequence)) { refused += 1 }
        #expect(refused > 0, "an undrained 8 KiB ring must refuse most of 2000 records")
        let tooBig = [UInt8](repeating: 1, count: buffer.layout.maximumPayloadSize + 1)
        let stored = producer.write(eventID: 4, bytes: tooBig.span)
        #expect(!stored)
        let drainer = TraceDrainer(buffer: buffer)
        try drainer.resetCounters()
        for index in 0..<buffer.layout.ringCount {
            #expect(buffer.ring(index).load(ControlField.dropped, ordering: .relaxed) == 0)
            #expect(buffer.ring(index).load(ControlField.tooLarge, ordering: .relaxed) == 0)
        }
        #expect(drainer.totals.dropped == refused)
        #expect(drainer.totals.tooLarge == 1)
        try drainer.drainOnce(quiescent: true) { _ in }
        #expect(drainer.totals.recorded + drainer.totals.dropped == 2000)
        // A second reset with nothing new changes nothing.
        try drainer.resetCounters()
        #expect(drainer.totals.dropped == refused && drainer.totals.tooLarge == 1)
    }

    @Test("resets racing with producers that keep dropping lose no count",
          .timeLimit(.minutes(1)))
    func resetRacesWithProducers() throws {
        let buffer = try Self.makeBuffer("race")
        let producer = buffer.makeProducer()
        let drainer = TraceDrainer(buffer: buffer)
        let finished = Atomic<Int>(0)
        let threads = 3
        let events = 20_000
        let workers = WorkerThreads(count: threads) { thread in
            for sequence in 0..<events {
                _ = producer.write(eventID: 5, value: UInt64(thread << 32 | sequence))
            }
            finished.wrappingAdd(1, ordering: .releasing)
        }
        var resets = 0
        while finished.load(ordering: .acquiring) < threads {
            if resets % 4 == 0 { try drainer.drainOnce { _ in } }
            try drainer.resetCounters()
            resets += 1
        }
        workers.join()
        try drainer.drainOnce(quiescent: true) { _ in }
        try drainer.resetCounters()
        #expect(resets > 0)
        #expect(drainer.totals.dropped > 0)
        #expect(drainer.totals.recorded + drainer.totals.lost == UInt64(threads * events))
    }
}
