import Testing
@testable import RseqTrace
@testable import RseqTraceConsumer

/// A live round told to read whole sub-buffers leaves the open one alone; a round without it, or a
/// quiescent one, reads everything committed.
@Suite("Drain: whole sub-buffers only")
struct WholeSubbufferDrainTests {
    static func drain(_ fixture: UnitTraceFixture, whole: Bool, quiescent: Bool = false) throws -> Int {
        var count = 0
        // SAFETY: the batch is only counted.
        try unsafe fixture.drainer.drainOnce(quiescent: quiescent, wholeSubbuffers: whole, batches: { _, records in
            count += records.count
        })
        return count
    }

    @Test("records of the open sub-buffer wait for a complete round; those of left sub-buffers do not")
    func openSubbufferWaits() throws {
        let fixture = try UnitTraceFixture("whole-subbuffers", ringSize: 8192, subbufferSize: 1024)
        let id = try fixture.buffer.registerEvent(EventSchema(name: "w:e", fields: [EventField("v", .uint64)]))
        // 10 records of 24 bytes after the 24-byte begin and thread records: all in the first sub-buffer.
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for v in UInt64(0)..<10 { #expect(fixture.producer.write(eventID: id, value: v)) }
        }
        #expect(try Self.drain(fixture, whole: true) == 0)
        #expect(try Self.drain(fixture, whole: false) == 10)
        // 100 more: the first sub-buffers are left behind, the last one is open.
        try UnitTrace.onCPU(0) { () throws(TraceError) in
            for v in UInt64(10)..<110 { #expect(fixture.producer.write(eventID: id, value: v)) }
        }
        // 40 records fill a sub-buffer: #10...#39 end sub-buffer 0, #40...#79 fill sub-buffer 1, and
        // #80...#109 are in the open sub-buffer 2. The read starts after #9, inside sub-buffer 0.
        let whole = try Self.drain(fixture, whole: true)
        #expect(whole == 70, "\(whole)")
        #expect(try Self.drain(fixture, whole: true) == 0)
        #expect(try Self.drain(fixture, whole: true, quiescent: true) == 100 - whole)
    }
}
