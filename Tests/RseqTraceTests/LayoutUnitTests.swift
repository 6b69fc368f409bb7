import Testing
@testable import RseqTrace

/// Pure arithmetic: the record word's bit layout, ring geometry validation and position helpers.
@Suite("Layout: RecordWord bit layout")
struct RecordWordUnitTests {
    typealias Kind = RecordWord.Kind

    @Test("every field survives an encode/decode round trip, at both ends of its range",
          arguments: [Kind.event, .padding, .subbufferBegin, .thread])
    func everyFieldRoundTrips(kind: Kind) {
        let lengths = [0, 8, 16, 24, 1000, 0x7F_FFF8, 0xFF_FFF8, 0xFF_FFFF]
        let ids: [UInt16] = [0, 1, 0x00FF, 0x8000, 0xFFFF]
        let laps: [UInt16] = [0, 1, 0x1234, 0xFFFE, 0xFFFF]
        for length in lengths {
            for id in ids {
                for lap in laps {
                    for busy in [false, true] {
                        let word = RecordWord(length: length, kind: kind, eventID: id, lap: lap, busy: busy)
                        let decoded = RecordWord(rawValue: word.rawValue)
                        #expect(decoded.length == length)
                        #expect(decoded.kind == kind)
                        #expect(decoded.eventID == id)
                        #expect(decoded.lap == lap)
                        #expect(decoded.isBusy == busy)
                        #expect(decoded.hasReservedBitsClear)
                        #expect(decoded == word)
                    }
                }
            }
        }
    }

    @Test("each field occupies exactly the documented bits")
    func bitPositions() {
        #expect(RecordWord(length: 0xFF_FFFF, kind: .subbufferBegin, eventID: 0xFFFF, lap: 0xFFFF, busy: true).rawValue
                == 0xFFFF_FFFF_13FF_FFFF)
        #expect(RecordWord(length: 0xFF_FFFF, kind: .event, eventID: 0, lap: 0, busy: false).rawValue == 0x0000_0000_01FF_FFFF)
        #expect(RecordWord(length: 0, kind: .event, eventID: 0, lap: 0, busy: false).rawValue == 0x0000_0000_0100_0000)
        #expect(RecordWord(length: 0, kind: .padding, eventID: 0, lap: 0, busy: false).rawValue == 0x0000_0000_0200_0000)
        #expect(RecordWord(length: 0, kind: .subbufferBegin, eventID: 0, lap: 0, busy: false).rawValue == 0x0000_0000_0300_0000)
        #expect(RecordWord(length: 0, kind: .thread, eventID: 0, lap: 0, busy: false).rawValue == 0x0000_0000_0400_0000)
        // The lead word of a thread record reserved with an event of length 40, and its final word.
        #expect(RecordWord.lead(length: 40, lap: 3).rawValue == 0x0003_0000_1400_0040)
        #expect(RecordWord.threadRecord(lap: 3).rawValue == 0x0003_0000_0400_0018)
        #expect(RecordWord(length: 0, kind: .event, eventID: 0, lap: 0, busy: true).rawValue == 0x0000_0000_1100_0000)
        #expect(RecordWord(length: 0, kind: .event, eventID: 0xABCD, lap: 0, busy: false).rawValue == 0x0000_ABCD_0100_0000)
        #expect(RecordWord(length: 0, kind: .event, eventID: 0, lap: 0x1234, busy: false).rawValue == 0x1234_0000_0100_0000)
        #expect(RecordWord(length: 40, kind: .event, eventID: 7, lap: 3, busy: true).rawValue == 0x0003_0007_1100_0028)
    }

    @Test("a length wider than 24 bits is truncated and never leaks into kind, busy or reserved bits")
    func oversizedLengthIsMasked() {
        let word = RecordWord(length: 0x0300_0010, kind: .padding, eventID: 9, lap: 2, busy: false)
        #expect(word.length == 0x10)
        #expect(word.kind == .padding)
        #expect(word.isBusy == false)
        #expect(word.hasReservedBitsClear)
        #expect(word.eventID == 9)
        #expect(word.lap == 2)
        let all = RecordWord(length: -1, kind: .event, eventID: 0, lap: 0, busy: false)
        #expect(all.length == 0xFF_FFFF)
        #expect(all.kind == .event)
        #expect(all.hasReservedBitsClear)
    }

    @Test("size is the length rounded up to 8: the bytes a record occupies in the ring")
    func sizeRoundsLengthUp() {
        let cases: [(length: Int, size: Int)] = [
            (0, 0), (1, 8), (7, 8), (8, 8), (9, 16), (15, 16), (16, 16), (17, 24), (20, 24), (23, 24), (24, 24),
            (25, 32), (1000, 1000), (1001, 1008), (0xFF_FFF8, 0xFF_FFF8), (0xFF_FFF9, 0x100_0000), (0xFF_FFFF, 0x100_0000),
        ]
        for c in cases {
            for kind in [Kind.event, .padding, .subbufferBegin, .thread] {
                let word = RecordWord(length: c.length, kind: kind, eventID: 0xFFFF, lap: 0xFFFF, busy: true)
                #expect(word.length == c.length, "\(kind) length \(c.length)")
                #expect(word.size == c.size, "\(kind) length \(c.length)")
                // Rounding never touches the stored word.
                #expect(word.committed.size == c.size)
            }
        }
        // An event word stores 16 + the exact payload size; its size is the ring footprint.
        for payload in 0...2000 {
            let word = RecordWord(length: TraceLayout.recordHeaderSize + payload, kind: .event, eventID: 1, lap: 0, busy: false)
            #expect(word.length - TraceLayout.recordHeaderSize == payload)
            #expect(word.size == TraceLayout.recordSize(payloadSize: payload), "payload \(payload)")
            #expect(word.size % 8 == 0 && word.size - word.length < 8)
        }
    }

    @Test("committed clears only the busy bit")
    func committedClearsOnlyBusy() {
        let busy = RecordWord(length: 0xFF_FFFF, kind: .event, eventID: 0xFFFF, lap: 0xFFFF, busy: true)
        let committed = busy.committed
        #expect(committed.rawValue == busy.rawValue & ~(UInt64(1) << 28))
        #expect(committed.isBusy == false)
        #expect(committed.length == 0xFF_FFFF)
        #expect(committed.kind == .event)
        #expect(committed.eventID == 0xFFFF)
        #expect(committed.lap == 0xFFFF)
        #expect(committed.committed == committed)
        let idle = RecordWord(length: 24, kind: .subbufferBegin, eventID: 0, lap: 5, busy: false)
        #expect(idle.committed == idle)
        // Reserved bits are left as they are (commit never repairs a damaged word).
        let odd = RecordWord(rawValue: busy.rawValue | UInt64(1) << 30)
        #expect(odd.committed.rawValue == odd.rawValue & ~(UInt64(1) << 28))
        #expect(odd.committed.hasReservedBitsClear == false)
    }

    @Test("any of reserved bits 29...31 is detected, without disturbing the other fields", arguments: [29, 30, 31])
    func reservedBitsAreDetected(bit: Int) {
        let base = RecordWord(length: 48, kind: .event, eventID: 3, lap: 4, busy: false)
        let damaged = RecordWord(rawValue: base.rawValue | UInt64(1) << UInt64(bit))
        #expect(damaged.hasReservedBitsClear == false)
        #expect(damaged.length == 48)
        #expect(damaged.kind == .event)
        #expect(damaged.eventID == 3)
        #expect(damaged.lap == 4)
        #expect(damaged.isBusy == false)
    }

    @Test("the owner-known bit is valid on a busy lead only; anywhere else it is damage, and a walk says so")
    func ownerKnownBitOnlyOnBusyLeads() throws {
        let lead = RecordWord.lead(length: 24, lap: 0)
        #expect(lead.hasValidReservedBits && !lead.isOwnerKnown)
        let known = lead.withOwnerKnown
        #expect(known.isOwnerKnown && known.hasValidReservedBits && !known.hasReservedBitsClear)
        #expect(known.length == lead.length && known.kind == .thread && known.isBusy && known.lap == 0)
        // Its recovery padding covers the thread record and the event, committed, same lap.
        #expect(known.abandonedPadding == RecordWord(length: 48, kind: .padding, eventID: 0, lap: 0, busy: false))
        let busyEvent = RecordWord(length: 24, kind: .event, eventID: 1, lap: 0, busy: true)
        #expect(busyEvent.withOwnerKnown.hasValidReservedBits == false)
        #expect(RecordWord.threadRecord(lap: 0).withOwnerKnown.hasValidReservedBits == false)
        #expect(RecordWord(rawValue: known.rawValue | UInt64(1) << 29).hasValidReservedBits == false)
        #expect(RecordWord(rawValue: known.rawValue | UInt64(1) << 31).hasValidReservedBits == false)

        // begin 0..<24, thread record 24..<48 (pid 1, tid 5), then the word under test at 48
        // (48 bytes: a lead covering an event of 24, or an event of 48), then nothing.
        let layout = try #require(TraceLayout(cpuRingCount: 1, ringSize: 1 << 16, subbufferSize: 4096))
        func walk(_ word: RecordWord) -> RecordWalk.Result {
            let memory: [UInt64: UInt64] = [
                0: RecordWord(length: 24, kind: .subbufferBegin, eventID: 0, lap: 0, busy: false).rawValue, 16: 0,
                24: RecordWord.threadRecord(lap: 0).rawValue, 40: 1 << 32 | 5,
                48: word.rawValue, 64: 1 << 32 | 6,
            ]
            return RecordWalk.run(layout: layout, from: 0, to: 96, abandonBusy: true, word: { memory[$0] ?? 0 },
                                  visit: { _, _, _ in })
        }
        let skipped = walk(known)
        #expect(skipped.problem == nil && skipped.end == 96)
        let damagedEvent = walk(RecordWord(length: 48, kind: .event, eventID: 1, lap: 0, busy: true).withOwnerKnown)
        #expect(damagedEvent.problem?.position == 48 && damagedEvent.end == 48)
        let damagedThread = walk(RecordWord(rawValue: RecordWord(length: 24, kind: .thread, eventID: 0, lap: 0,
                                                                 busy: false).withOwnerKnown.rawValue))
        #expect(damagedThread.problem?.position == 48)
    }

    @Test("kind decodes 1, 2, 3, 4 only; 0 (never-written memory) and 5...15 are invalid")
    func kindDecoding() {
        for value in UInt64(0)...15 {
            let word = RecordWord(rawValue: value << 24 | 16)
            switch value {
            case 1: #expect(word.kind == .event)
            case 2: #expect(word.kind == .padding)
            case 3: #expect(word.kind == .subbufferBegin)
            case 4: #expect(word.kind == .thread)
            default: #expect(word.kind == nil, "kind nibble \(value)")
            }
        }
        #expect(RecordWord(rawValue: 0).kind == nil)
        #expect(Kind.event.rawValue == 1)
        #expect(Kind.padding.rawValue == 2)
        #expect(Kind.subbufferBegin.rawValue == 3)
        #expect(Kind.thread.rawValue == 4)
    }
}

@Suite("Layout: TraceLayout geometry")
struct TraceLayoutUnitTests {
    @Test("valid geometries are accepted and every derived size follows from them")
    func acceptsValidGeometries() throws {
        let cases: [(cpus: Int, ring: Int, sub: Int)] = [
            (1, 8192, 256), (1, 8192, 4096), (2, 8192, 1024), (4096, 8192, 4096),
            (3, 1 << 20, 1 << 16), (1, 1 << 30, 1 << 24), (1, 1 << 25, 1 << 24), (64, 1 << 16, 256),
            (1, 1 << 18, 1 << 10), (2, 1 << 30, 1 << 22),
        ]
        for c in cases {
            let layout = try #require(TraceLayout(cpuRingCount: c.cpus, ringSize: c.ring, subbufferSize: c.sub),
                                      "cpus \(c.cpus) ring \(c.ring) sub \(c.sub)")
            #expect(layout.cpuRingCount == c.cpus)
            #expect(layout.ringSize == c.ring)
            #expect(layout.subbufferSize == c.sub)
            #expect(layout.ringCount == c.cpus + 1)
            #expect(layout.slowLaneRing == c.cpus)
            #expect(layout.ringStride == 8192 + c.ring)
            #expect(layout.linesOffset == TraceLayout.registryOffset + TraceLayout.registrySize)
            #expect(layout.linesOffset == 65_536)
            let lines = ((c.cpus + 1) * 256 + 4095) / 4096 * 4096
            #expect(layout.linesSize == lines)
            // The counter area (§8): 512 names of 128 bytes, then 32 groups of one 128-byte line per
            // block (CPU blocks and the atomic block), rounded up to whole pages.
            #expect(layout.countersOffset == 65_536 + lines)
            #expect(layout.counterValuesOffset == layout.countersOffset + 65_536)
            let counters = (65_536 + 32 * (c.cpus + 1) * 128 + 4095) / 4096 * 4096
            #expect(layout.countersSize == counters)
            #expect(layout.ringsOffset == 65_536 + lines + counters)
            #expect(layout.ringsOffset % 4096 == 0)
            #expect(layout.totalSize == 65_536 + lines + counters + (c.cpus + 1) * (8192 + c.ring))
            // Slot s of block b: group s / 16, line b, word s % 16; the last word ends inside the area.
            #expect(layout.counterOffset(slot: 17, block: 1) == layout.counterValuesOffset + (c.cpus + 1) * 128 + 128 + 8)
            #expect(layout.counterOffset(slot: 511, block: c.cpus) + 8 <= layout.ringsOffset)
            #expect(layout.counterNameOffset(slot: 511) + 128 == layout.counterValuesOffset)
            #expect(layout.subbuffersPerRing == c.ring / c.sub)
            #expect(layout.subbuffersPerRing >= 2 && layout.subbuffersPerRing <= TraceLayout.maximumSubbuffersPerRing)
            #expect(1 << layout.ringShift == c.ring)
            // Begin record (24), thread record (24) and record header (16).
            #expect(layout.maximumPayloadSize == c.sub - 64)
        }
    }

    @Test("geometries that are not powers of two, out of range, or with fewer than 2 or more than 256 sub-buffers are rejected")
    func rejectsInvalidGeometries() {
        let cases: [(cpus: Int, ring: Int, sub: Int, why: String)] = [
            (1, 12288, 1024, "ring not a power of two"),
            (1, 8192 + 8, 256, "ring not a power of two"),
            (1, 65536, 384, "sub-buffer not a power of two"),
            (1, 65536, 1000, "sub-buffer not a power of two"),
            (1, 8192, 8192, "sub-buffer == ring (one sub-buffer)"),
            (1, 8192, 16384, "sub-buffer > ring"),
            (1, 1 << 20, 1 << 20, "sub-buffer == ring"),
            (1, 4096, 256, "ring < 8 KiB"),
            (1, 0, 256, "ring 0"),
            (1, -8192, 256, "negative ring"),
            (1, 1 << 31, 1 << 16, "ring > 1 GiB"),
            (1, 1 << 40, 1 << 16, "ring > 1 GiB"),
            (1, 8192, 128, "sub-buffer < 256"),
            (1, 8192, 0, "sub-buffer 0"),
            (1, 8192, -256, "negative sub-buffer"),
            (1, 1 << 30, 1 << 25, "sub-buffer > 16 MiB"),
            (1, 1 << 17, 256, "512 sub-buffers"),
            (1, 1 << 20, 256, "4096 sub-buffers"),
            (1, 1 << 30, 1 << 16, "16384 sub-buffers"),
            (0, 8192, 1024, "cpu count 0"),
            (-1, 8192, 1024, "negative cpu count"),
            (4097, 8192, 1024, "cpu count > 4096"),
        ]
        for c in cases {
            #expect(TraceLayout(cpuRingCount: c.cpus, ringSize: c.ring, subbufferSize: c.sub) == nil, "\(c.why)")
        }
    }

    @Test("recordSize(payloadSize:) is the 16-byte header plus the payload, rounded up to 8")
    func recordSizeRounding() {
        #expect(TraceLayout.recordSize(payloadSize: 0) == 16)
        #expect(TraceLayout.recordSize(payloadSize: 1) == 24)
        #expect(TraceLayout.recordSize(payloadSize: 7) == 24)
        #expect(TraceLayout.recordSize(payloadSize: 8) == 24)
        #expect(TraceLayout.recordSize(payloadSize: 9) == 32)
        #expect(TraceLayout.recordSize(payloadSize: 24) == 40)
        #expect(TraceLayout.recordSize(payloadSize: 984) == 1000)
        #expect(TraceLayout.recordSize(payloadSize: 985) == 1008)
        for payload in 0...4100 {
            let size = TraceLayout.recordSize(payloadSize: payload)
            #expect(size % 8 == 0 && size >= 16 + payload && size < 16 + payload + 8, "payload \(payload) -> \(size)")
        }
    }

    @Test("lap(of:) is position / ringSize truncated to 16 bits")
    func lapOfPosition() throws {
        let layout = try #require(TraceLayout(cpuRingCount: 2, ringSize: 8192, subbufferSize: 1024))
        #expect(layout.lap(of: 0) == 0)
        #expect(layout.lap(of: 8191) == 0)
        #expect(layout.lap(of: 8192) == 1)
        #expect(layout.lap(of: 8192 * 3 + 5) == 3)
        #expect(layout.lap(of: 8192 * 65535) == 65535)
        #expect(layout.lap(of: 8192 * 65536) == 0)
        #expect(layout.lap(of: 8192 * 65537 + 8191) == 1)
        #expect(layout.lap(of: UInt64.max) == 0xFFFF)
        let big = try #require(TraceLayout(cpuRingCount: 1, ringSize: 1 << 30, subbufferSize: 1 << 24))
        #expect(big.lap(of: (1 << 30) - 1) == 0)
        #expect(big.lap(of: 1 << 30) == 1)
        #expect(big.lap(of: UInt64(1) << 46) == 0)       // 65536 laps
    }

    @Test("maximumPayloadSize is exactly what fits a sub-buffer after its begin record and a thread record",
          arguments: [256, 1024, 1 << 16, 1 << 24])
    func maximumPayloadFillsASubbuffer(subbufferSize: Int) throws {
        let layout = try #require(TraceLayout(cpuRingCount: 1, ringSize: max(8192, 2 * subbufferSize), subbufferSize: subbufferSize))
        let maximum = layout.maximumPayloadSize
        #expect(maximum == subbufferSize - 24 - 24 - 16)
        let opening = TraceLayout.beginRecordSize + TraceLayout.threadRecordSize
        #expect(opening + TraceLayout.recordSize(payloadSize: maximum) == subbufferSize)
        #expect(opening + TraceLayout.recordSize(payloadSize: maximum + 1) > subbufferSize)
    }

    @Test("the magic reads RSEQTRC\\x01 in memory order and the constants match the documented layout")
    func constants() {
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: TraceLayout.magic >> (8 * UInt64($0))) }
        #expect(bytes == Array("RSEQTRC".utf8) + [1])
        #expect(TraceLayout.version == 5)
        #expect(TraceLayout.counterSlotCount == 512 && TraceLayout.counterNameEntrySize == 128)
        #expect(TraceLayout.counterLineSize == 128 && TraceLayout.countersPerLine == 16)
        #expect(HeaderField.counterCount.rawValue == 256)
        #expect(TraceLayout.lineStride == 256)
        #expect(ControlField.lineLimit == 256)
        #expect(ControlField.head.rawValue < ControlField.lineLimit && ControlField.consumed.rawValue < ControlField.lineLimit)
        #expect(ControlField.recycleMarkers.rawValue >= ControlField.lineLimit)
        #expect(TraceLayout.headerSize == 4096)
        #expect(TraceLayout.controlSize == 8192)
        #expect(TraceLayout.beginRecordSize == 24)
        #expect(TraceLayout.threadRecordSize == 24)
        #expect(TraceLayout.recordHeaderSize == 16)
        #expect(TraceLayout.minimumRingSize == 8192)
        #expect(TraceLayout.maximumRingSize == 1 << 30)
        #expect(TraceLayout.minimumSubbufferSize == 256)
        #expect(TraceLayout.maximumSubbufferSize == 1 << 24)
        #expect(TraceLayout.maximumSubbuffersPerRing == 256)
        // Control words live on distinct cache lines as documented (producer line vs consumer line).
        // {head, reservedStamp} is the 16-aligned pair lock-free reservations swap.
        #expect(ControlField.head.rawValue == 0 && ControlField.reservedStamp.rawValue == 8)
        #expect(ControlField.dropped.rawValue == 16 && ControlField.tooLarge.rawValue == 24)
        // lastWriter shares the producer line with head (one cache line, written after each reservation).
        #expect(ControlField.lastWriter.rawValue == 32)
        #expect(ControlField.consumed.rawValue == 128 && ControlField.recycleMarkers.rawValue == 512)
        // 256 slots of recycle markers, commit counters and read accounting fit the control block.
        #expect(ControlField.recycleMarker(slot: 255).rawValue + 8 <= ControlField.commitCounters.rawValue)
        #expect(ControlField.commitCounter(slot: 255).rawValue + 8 <= ControlField.readAccounting.rawValue)
        #expect(ControlField.readAccounting(slot: 255).rawValue + 8 == TraceLayout.controlSize)
    }
}

@Suite("Layout: TraceConfiguration name checks")
struct TraceNameUnitTests {
    static let lengthMessage = "must be 1 to 200 bytes long"
    static let dotMessage = "must not start with a dot"
    static let charactersMessage = "may only contain letters, digits, '.', '_' and '-'"

    @Test("names that are empty or longer than 200 bytes are refused")
    func lengthLimits() {
        #expect(TraceConfiguration.problem(withName: "") == "trace name '' \(Self.lengthMessage)")
        let long = String(repeating: "a", count: 201)
        #expect(TraceConfiguration.problem(withName: long) == "trace name '\(long)' \(Self.lengthMessage)")
        #expect(TraceConfiguration.problem(withName: String(repeating: "a", count: 200)) == nil)
        #expect(TraceConfiguration.problem(withName: String(repeating: "Z", count: 1)) == nil)
    }

    @Test("a leading dot is refused", arguments: [".", "..", ".hidden", ".a-b", "../x", "./a"])
    func leadingDot(name: String) {
        #expect(TraceConfiguration.problem(withName: name) == "trace name '\(name)' \(Self.dotMessage)")
    }

    @Test("characters outside A-Z a-z 0-9 . _ - are refused",
          arguments: ["a/b", "/", "x/../y", "a b", " lead", "trail ", "tab\there", "new\nline", "nul\u{0}x",
                      "café", "日本", "emoji🙂", "a:b", "a*b", "a\\b", "percent%", "plus+"])
    func forbiddenCharacters(name: String) {
        #expect(TraceConfiguration.problem(withName: name) == "trace name '\(name)' \(Self.charactersMessage)")
    }

    @Test("a unicode name over 200 bytes fails the length check first")
    func unicodeLengthCountsBytes() {
        let name = String(repeating: "é", count: 101)    // 101 characters, 202 UTF-8 bytes
        #expect(TraceConfiguration.problem(withName: name) == "trace name '\(name)' \(Self.lengthMessage)")
    }

    @Test("valid names are accepted",
          arguments: ["a", "A", "0", "-", "_", "trace", "trace-1.2_x", "x.", "a..b", "UPPER_lower-09.dat", "9-lives"])
    func validNames(name: String) {
        #expect(TraceConfiguration.problem(withName: name) == nil)
    }
}
