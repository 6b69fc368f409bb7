import CRseqTrace
import RseqTraceTestPayloads
import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats
import Synchronization
import RseqTraceSupport

// MARK: - Fixtures

/// Files and directories of the reader tests: unique names under /tmp (pid + counter), removed after use.
private enum ReaderFiles {
    static let counter = Atomic<Int>(0)

    static func temporaryDirectory(_ tag: String) -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return "/tmp/rseqtrace-ctfreader-\(getpid())-\(tag)-\(n)"
    }

    /// Removes a trace directory: its files, and those of its `index` subdirectory.
    static func removeTree(_ path: String) {
        for name in SystemInfo.directoryEntries(path + "/index") ?? [] {
            // SAFETY: the path string is passed as a temporary NUL-terminated C string.
            unsafe unlink(path + "/index/" + name)
        }
        // SAFETY: as above.
        unsafe rmdir(path + "/index")
        for name in SystemInfo.directoryEntries(path) ?? [] {
            // SAFETY: the path string is passed as a temporary NUL-terminated C string.
            unsafe unlink(path + "/" + name)
        }
        // SAFETY: as above.
        unsafe rmdir(path)
    }

    static func read(_ path: String) -> [UInt8] {
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // SAFETY: read writes at most chunk.count bytes into the array's storage.
            let n = unsafe Glibc.read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    static func write(_ path: String, _ bytes: [UInt8]) {
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        let fd = unsafe open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            // SAFETY: the slice's base address is valid for `count - done` bytes during the call.
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
    }
}


/// What the tests expect a stream to contain, in order.
private enum Expected: Equatable {
    case event(id: UInt32, name: String, timestamp: UInt64, fields: [CTFFieldValue])
    case loss(UInt64)
}

/// Writes a trace through `CTFTraceWriter` and remembers what each stream must read back as.
private struct TraceBuilder {
    static let monotonicReference: UInt64 = 5_000_000
    static let realtimeReference: UInt64 = 1_763_781_921_123_456_789
    static var offset: Int64 { Int64(realtimeReference) - Int64(monotonicReference) }

    static let schemas: [UInt16: EventSchema] = [
        0: EventSchema(name: "test:all", fields: [
            EventField("u8", .uint8), EventField("u16", .uint16), EventField("u32", .uint32), EventField("u64", .uint64),
            EventField("i8", .int8), EventField("i16", .int16), EventField("i32", .int32), EventField("i64", .int64),
            EventField("f32", .float32), EventField("f64", .float64), EventField("flag", .bool),
        ]),
        5: EventSchema(name: "test:empty", fields: []),
        30: EventSchema(name: "test:edge", fields: [EventField("value", .int64)]),
        31: EventSchema(name: "test:first_extended", fields: [EventField("x", .uint16)]),
        4000: EventSchema(name: "test:big_id", fields: [EventField("n", .uint32), EventField("d", .float64)]),
    ]

    let directory: String
    let writer: CTFTraceWriter
    let description: CTFTraceDescription
    var expected: [[Expected]]
    var lost: [UInt64]
    var clock: [UInt64]

    init(directory: String, rings: Int, packetCapacity: Int = 4096, schemas: [UInt16: EventSchema] = TraceBuilder.schemas) throws {
        self.directory = directory
        description = CTFTraceDescription(
            uuid: (0..<16).map { UInt8(truncatingIfNeeded: $0 * 17 + 3) },
            clock: CycleClock(frequency: 1_000_000_000, cycleReference: TraceBuilder.monotonicReference,
                              monotonicReference: TraceBuilder.monotonicReference,
                              realtimeReference: TraceBuilder.realtimeReference),
            bootID: (0..<16).map { UInt8(255 - $0) }, hostname: "host \"quoted\"", traceName: "reader-test",
            procname: "tester", pid: 4242, cpuRingCount: rings, schemas: schemas)
        writer = try CTFTraceWriter(directory: directory, description: description, packetCapacity: packetCapacity)
        expected = Array(repeating: [], count: rings + 1)
        lost = Array(repeating: 0, count: rings + 1)
        clock = Array(repeating: TraceBuilder.monotonicReference, count: rings + 1)
    }

    /// Appends an event `advance` ns after the ring's previous one (cycles == monotonic ns here).
    mutating func append(ring: Int, id: UInt16, advance: UInt64, payload: [UInt8]) throws {
        clock[ring] += advance
        try writer.append(ring: ring, eventID: id, cycles: clock[ring], payload: payload)
        var fields: [CTFFieldValue] = []
        let name: String
        if let schema = description.schemas[id] {
            name = schema.name
            var offset = 0
            for field in schema.fields {
                let size = field.type.fixedByteCount ?? 0   // TraceBuilder's schemas are all fixed-size
                var raw: UInt64 = 0
                for i in 0..<size { raw |= UInt64(payload[offset + i]) << UInt64(8 * i) }
                offset += size
                let value: CTFValue
                switch field.type {
                case .unsigned: value = .unsigned(raw)
                case .bool: value = .bool(raw != 0)
                case .signed(let bits):
                    value = .signed(bits == 64 ? Int64(bitPattern: raw)
                                    : Int64(bitPattern: raw) - (raw >> UInt64(bits - 1) == 1 ? Int64(1) << Int64(bits) : 0))
                case .float32: value = .float32(Float(bitPattern: UInt32(raw)))
                case .float64: value = .float64(Double(bitPattern: raw))
                case .string, .bytes, .enumeration: preconditionFailure("TraceBuilder's schemas are all scalars")
                }
                fields.append(CTFFieldValue(name: field.name, value: value))
            }
        } else {
            name = "rseqtrace:unknown_\(id)"
            fields = [CTFFieldValue(name: "length", value: .unsigned(UInt64(payload.count))),
                      CTFFieldValue(name: "payload", value: .bytes(payload))]
        }
        expected[ring].append(.event(id: UInt32(id), name: name, timestamp: clock[ring], fields: fields))
    }

    mutating func lose(ring: Int, _ count: UInt64) throws {
        lost[ring] += count
        try writer.noteLost(ring: ring, total: lost[ring])
        expected[ring].append(.loss(count))
    }

    /// A payload for event `id` with random field values (plus special floats now and then).
    static func payload(for id: UInt16, _ random: inout SeededRandom) -> [UInt8] {
        guard let schema = schemas[id] else {
            return (0..<Int(random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        }
        var bytes: [UInt8] = []
        for field in schema.fields {
            var raw = random.next()
            switch (field.type, raw % 5) {
            case (.float64, 0): raw = Double.nan.bitPattern
            case (.float64, 1): raw = (-0.0 as Double).bitPattern
            case (.float32, 0): raw = UInt64(Float.infinity.bitPattern)
            case (.float32, 1): raw = UInt64((1.5 as Float).bitPattern)
            case (.signed, 2): raw = UInt64(bitPattern: -1)
            default: break
            }
            for i in 0..<(field.type.fixedByteCount ?? 0) { bytes.append(UInt8(truncatingIfNeeded: raw >> UInt64(8 * i))) }
        }
        return bytes
    }

    /// A varied trace: every schema, unknown ids (3, 77, 70000-ish is not a u16: 65535), compact
    /// and extended headers, 27-bit wraps, gaps >= 2^27 ns, equal timestamps, losses between packets.
    static func varied(directory: String, rings: Int = 3, events: Int = 1500, seed: UInt64 = 7) throws -> TraceBuilder {
        var builder = try TraceBuilder(directory: directory, rings: rings)
        var random = SeededRandom(state: seed)
        let ids: [UInt16] = [0, 0, 0, 5, 30, 31, 4000, 3, 77, 65535]
        for n in 0..<events {
            let ring = Int(random.next() % UInt64(rings + 1))
            let id = ids[Int(random.next() % UInt64(ids.count))]
            let advance: UInt64
            switch random.next() % 10 {
            case 0: advance = 0
            case 1: advance = (1 << 27) - 1 - random.next() % 3          // compact, at the edge
            case 2: advance = (1 << 27) + random.next() % 1_000_000_000  // extended by gap
            default: advance = random.next() % 2_000_000
            }
            try builder.append(ring: ring, id: id, advance: advance, payload: payload(for: id, &random))
            if n % 97 == 13 { try builder.lose(ring: ring, 1 + random.next() % 1000) }
        }
        try builder.lose(ring: 1, 5)   // a loss after the last event of ring 1: a packet without events
        return builder
    }

    mutating func finish() throws { try writer.finish() }
}

/// Projects a record onto what the tests compare exactly.
private func expectation(_ record: CTFRecord) -> Expected {
    switch record {
    case .event(let e): return .event(id: e.id, name: e.name, timestamp: e.timestamp, fields: e.fields)
    case .discarded(let d): return .loss(d.count)
    }
}

/// Field values compared with floats by bit pattern (NaN != NaN otherwise).
private func sameBits(_ a: [Expected], _ b: [Expected]) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) {
        switch (x, y) {
        case (.loss(let p), .loss(let q)): guard p == q else { return false }
        case (.event(let i1, let n1, let t1, let f1), .event(let i2, let n2, let t2, let f2)):
            guard i1 == i2, n1 == n2, t1 == t2, f1.count == f2.count else { return false }
            for (u, v) in zip(f1, f2) {
                guard u.name == v.name else { return false }
                switch (u.value, v.value) {
                case (.float32(let p), .float32(let q)): guard p.bitPattern == q.bitPattern else { return false }
                case (.float64(let p), .float64(let q)): guard p.bitPattern == q.bitPattern else { return false }
                default: guard u.value == v.value else { return false }
                }
            }
        default: return false
        }
    }
    return true
}

// MARK: - Round trips

@Suite("CTFReader: reading back CTFTraceWriter traces")
struct CTFReaderTests {
    @Test("metadata: uuid, clock, env and every declaration (schemas and unknown ids) come back")
    func metadataRoundTrip() throws {
        let dir = ReaderFiles.temporaryDirectory("meta")
        defer { ReaderFiles.removeTree(dir) }
        var builder = try TraceBuilder.varied(directory: dir, events: 300)
        try builder.finish()
        let reader = try CTFTraceReader(directory: dir)
        let m = reader.metadata
        #expect(m.uuid == builder.description.uuid)
        #expect(m.clock.uuid == builder.description.bootID)
        #expect(m.clock.frequency == 1_000_000_000)
        #expect(m.clock.offsetNanoseconds == TraceBuilder.offset)
        #expect(m.clock.offsetCycles >= 0 && m.clock.offsetCycles < 1_000_000_000)
        #expect(m.environmentValue("hostname") == .string("host \"quoted\""))
        #expect(m.environmentValue("procname") == .string("tester"))
        #expect(m.environmentValue("vpid") == .integer(4242))
        #expect(m.environmentValue("tracer_name") == .string("rseqtrace"))
        for (id, schema) in TraceBuilder.schemas {
            let declaration = try #require(m.events[UInt32(id)])
            #expect(declaration.name == schema.name)
            #expect(declaration.fields.map(\.name) == schema.fields.map(\.name))
            for (d, f) in zip(declaration.fields, schema.fields) {
                switch f.type {
                case .unsigned(let bits): #expect(d.type == .unsigned(bits: bits))
                case .signed(let bits): #expect(d.type == .signed(bits: bits))
                case .float32: #expect(d.type == .float32)
                case .float64: #expect(d.type == .float64)
                case .bool: #expect(d.type == .bool)
                case .string, .bytes, .enumeration: Issue.record("TraceBuilder's schemas are all scalars")
                }
            }
        }
        for id: UInt32 in [3, 77, 65535] {
            let declaration = try #require(m.events[id])
            #expect(declaration.name == "rseqtrace:unknown_\(id)")
            #expect(declaration.fields == [CTFFieldDeclaration(name: "length", type: .unsigned(bits: 32)),
                                           CTFFieldDeclaration(name: "payload", type: .bytes(lengthField: 0))])
        }
        #expect(m.events.count == TraceBuilder.schemas.count + 3)
        #expect(reader.streamNames == ["channel0_0", "channel0_1", "channel0_2", "channel0_3"])
    }

    @Test("every event and loss of every stream reads back exactly, per stream and merged in time order")
    func eventsRoundTrip() throws {
        let dir = ReaderFiles.temporaryDirectory("events")
        defer { ReaderFiles.removeTree(dir) }
        var builder = try TraceBuilder.varied(directory: dir)
        try builder.finish()
        let reader = try CTFTraceReader(directory: dir)
        var perStream: [[CTFRecord]] = []
        for index in reader.streamNames.indices {
            var decoder = reader.stream(index)
            var records: [CTFRecord] = []
            while let record = try decoder.next() { records.append(record) }
            #expect(sameBits(records.map(expectation), builder.expected[index]), "stream \(index)")
            for record in records {
                #expect(record.cpuID == UInt32(index))
                #expect(record.stream == "channel0_\(index)")
                if case .event(let e) = record {
                    #expect(e.realtime == Int64(e.timestamp) + TraceBuilder.offset)
                    #expect(e.streamInstanceID == UInt64(index))
                }
            }
            // Loss ranges: ordered, and between the events around them.
            var last: UInt64 = 0
            for record in records {
                switch record {
                case .event(let e): #expect(e.timestamp >= last); last = e.timestamp
                case .discarded(let d):
                    #expect(d.begin >= last && d.begin <= d.end)
                    #expect(d.realtimeBegin == Int64(d.begin) + TraceBuilder.offset)
                    #expect(d.realtimeEnd == Int64(d.end) + TraceBuilder.offset)
                }
            }
            perStream.append(records)
        }
        // Several packets per stream, some compact and some extended headers were exercised.
        let merged = try reader.readAll()
        #expect(merged.count == perStream.reduce(0) { $0 + $1.count })
        #expect(zip(merged, merged.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp })
        for index in reader.streamNames.indices {
            let name = "channel0_\(index)"
            #expect(sameBits(merged.filter { $0.stream == name }.map(expectation), perStream[index].map(expectation)))
            #expect(merged.filter { $0.stream == name }.map(\.timestamp) == perStream[index].map(\.timestamp))
        }
        let totalLost = merged.reduce(UInt64(0)) { if case .discarded(let d) = $1 { return $0 + d.count } else { return $0 } }
        #expect(totalLost == builder.lost.reduce(0, +))
    }

    @Test("a stream file reserves blocks ahead of its packets while written, without changing its size, and gives the reserve back at finish")
    func streamFileReserve() throws {
        let dir = ReaderFiles.temporaryDirectory("reserve")
        defer { ReaderFiles.removeTree(dir) }
        var builder = try TraceBuilder(directory: dir, rings: 1)
        let events = 1000   // 20 bytes each with their headers: several 4 KiB packets
        for i in 0..<events {
            try builder.append(ring: 0, id: 30, advance: 1, payload: (0..<8).map { UInt8(truncatingIfNeeded: i >> ($0 * 8)) })
        }
        let path = dir + "/channel0_0"
        let writing = try #require(fileStatus(path))
        #expect(writing.st_size > 0, "packets written so far: \(writing.st_size) bytes")
        if fileSystemReserves(directory: dir) {
            #expect(Int(writing.st_blocks) * 512 >= 8 << 20, "reserved \(Int(writing.st_blocks) * 512) bytes")
        }
        try builder.finish()
        let finished = try #require(fileStatus(path))
        #expect(finished.st_size > writing.st_size)
        // Only the blocks the packets use remain (allocated in file-system blocks of at most 64 KiB).
        #expect(Int(finished.st_blocks) * 512 < Int(finished.st_size) + 65536,
                "\(Int(finished.st_blocks) * 512) bytes allocated for \(finished.st_size)")
        let records = try CTFTraceReader(directory: dir).readAll()
        #expect(records.map(expectation) == builder.expected[0])
        #expect(records.count == events)
    }

    private func fileStatus(_ path: String) -> stat? {
        var status = stat()
        // SAFETY: stat writes the caller's value only; the path is a temporary C string.
        return unsafe stat(path, &status) == 0 ? status : nil
    }

    /// Whether the file system of `directory` reserves blocks past a file's end (ext4, xfs, btrfs,
    /// tmpfs do), tried on a file of its own.
    private func fileSystemReserves(directory: String) -> Bool {
        let probe = directory + "/reserve-probe"
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        let fd = unsafe open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer {
            close(fd)
            // SAFETY: as above.
            unsafe unlink(probe)
        }
        return rseqtrace_preallocate_beyond_end(fd, 0, 1 << 20) == 0
    }

    @Test("a loss noted before any event is reported between an empty leading packet (counter 0) and the first events")
    func lossInFirstPacket() throws {
        let dir = ReaderFiles.temporaryDirectory("first")
        defer { ReaderFiles.removeTree(dir) }
        var builder = try TraceBuilder(directory: dir, rings: 1)
        try builder.lose(ring: 0, 42)
        try builder.append(ring: 0, id: 5, advance: 10, payload: [])
        try builder.append(ring: 0, id: 31, advance: 1, payload: [1, 2])  // id 31: always extended
        try builder.finish()
        let records = try CTFTraceReader(directory: dir).readAll()
        #expect(records.map(expectation) == builder.expected[0])
        guard case .discarded(let d) = records.first else { Issue.record("no loss first"); return }
        // babeltrace2 only reports a count between two packets, so the writer opens the stream
        // with an empty packet whose events_discarded is 0; the loss is attached to packet 1.
        #expect(d.count == 42 && d.packetSequence == 1)
    }

    @Test("an empty trace (no events, no losses) reads as empty streams")
    func emptyTrace() throws {
        let dir = ReaderFiles.temporaryDirectory("empty")
        defer { ReaderFiles.removeTree(dir) }
        var builder = try TraceBuilder(directory: dir, rings: 2)
        try builder.finish()
        let reader = try CTFTraceReader(directory: dir)
        #expect(reader.streamNames.count == 3)
        #expect(try reader.readAll().isEmpty)
    }

    @Test("a missing directory or metadata file is .notFound")
    func missing() throws {
        let dir = ReaderFiles.temporaryDirectory("missing")
        #expect(throws: TraceError.self) { _ = try CTFTraceReader(directory: dir) }
        do { _ = try CTFTraceReader(directory: dir) } catch { #expect(error.code == .notFound) }
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        unsafe mkdir(dir, 0o755)
        defer { ReaderFiles.removeTree(dir) }
        do { _ = try CTFTraceReader(directory: dir); Issue.record("read a trace without metadata") } catch {
            #expect(error.code == .notFound)
            #expect(error.message.contains("metadata"))
        }
    }

    @Test("export --format chrome writes a Bool field as JSON true/false, checked by Python's json module",
          .enabled(if: HelperProcess.isExecutable("/usr/bin/python3")))
    func chromeBooleans() throws {
        let dir = ReaderFiles.temporaryDirectory("chrome-bool")
        let json = dir + ".json"
        defer { ReaderFiles.removeTree(dir); ReaderFiles.removeTree(json) }
        var builder = try TraceBuilder.varied(directory: dir, events: 300)
        // Random flag bytes are rarely 0: add false ones (test:all's payload is 43 bytes, flag last).
        for ring in 0..<3 { try builder.append(ring: ring, id: 0, advance: 10, payload: [UInt8](repeating: 0, count: 43)) }
        try builder.finish()
        var trues = 0, falses = 0
        for case .event(_, "test:all", _, let fields) in builder.expected.joined() {
            guard case .bool(let flag) = fields.first(where: { $0.name == "flag" })?.value else {
                Issue.record("test:all has no Bool flag: \(fields)")
                return
            }
            if flag { trues += 1 } else { falses += 1 }
        }
        #expect(trues > 0 && falses > 0, "the trace holds both values")
        _ = try ChromeTraceExporter().export(try CTFTraceReader(directory: dir), to: json)
        // Counts the flags by their JSON type: a number 0/1 counts as "other", not as a boolean.
        let script = """
            import json, sys
            ev = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("name") == "test:all"]
            flags = [e["args"]["flag"] for e in ev]
            t = sum(1 for f in flags if f is True)
            f = sum(1 for f in flags if f is False)
            print(f"flags: true={t} false={f} other={len(flags) - t - f}")
            """
        let check = try HelperProcess.run("/usr/bin/python3", ["-c", script, json], environment: HelperProcess.childEnvironment(),
                                          timeout: .seconds(60))
        #expect(check.exitCode == 0, "\(check)")
        #expect(check.stdout == "flags: true=\(trues) false=\(falses) other=0\n", "\(check)")
    }
}

// MARK: - Corruption

@Suite("CTFReader: malformed traces are rejected with .corrupted, naming file and offset")
struct CTFReaderCorruptionTests {
    /// A small valid trace: its directory and original files.
    /// A fresh directory name under /tmp (not created).
    static func fixtureDirectory(_ tag: String) -> String { ReaderFiles.temporaryDirectory(tag) }

    /// A trace written by `CTFTraceWriter` and its files (`metadata`, `channel0_<n>`). Without
    /// `keepingIndex`, its `index` directory is removed, so that a corrupted packet reaches the
    /// stream decoder rather than the index check.
    static func fixture(_ tag: String, events: Int = 600, keepingIndex: Bool = false) throws -> (String, [String: [UInt8]]) {
        let dir = ReaderFiles.temporaryDirectory(tag)
        var builder = try TraceBuilder.varied(directory: dir, rings: 2, events: events, seed: 99)
        try builder.finish()
        if !keepingIndex {
            for name in SystemInfo.directoryEntries(dir + "/index") ?? [] {
                // SAFETY: the path string is passed as a temporary NUL-terminated C string.
                unsafe unlink(dir + "/index/" + name)
            }
            // SAFETY: as above.
            try #require(unsafe rmdir(dir + "/index") == 0, "\(dir)/index: the writer's index directory")
        }
        var files: [String: [UInt8]] = [:]
        for name in SystemInfo.directoryEntries(dir) ?? [] where name != "index" { files[name] = ReaderFiles.read(dir + "/" + name) }
        return (dir, files)
    }

    static func readEverything(_ dir: String) throws(TraceError) -> Int {
        let reader = try CTFTraceReader(directory: dir)
        var count = 0
        for index in reader.streamNames.indices {
            var decoder = reader.stream(index)
            while try decoder.next() != nil { count += 1 }
        }
        return try reader.readAll().count + count
    }

    /// Replaces `file`, reads, restores; returns the error (nil if it read fine).
    static func attempt(_ dir: String, _ file: String, _ bytes: [UInt8], original: [UInt8], perStream: Bool = true) -> TraceError? {
        ReaderFiles.write(dir + "/" + file, bytes)
        defer { ReaderFiles.write(dir + "/" + file, original) }
        do {
            if perStream { _ = try readEverything(dir) } else { _ = try CTFTraceReader(directory: dir).readAll() }
            return nil
        } catch { return error }
    }

    static func le(_ bytes: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << UInt64(8 * $1) }
    }

    static func put(_ bytes: inout [UInt8], _ at: Int, _ value: UInt64, size: Int = 8) {
        for i in 0..<size { bytes[at + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i)) }
    }

    @Test("specific corruptions: each names the file, the byte offset and the problem")
    func specific() throws {
        let (dir, files) = try CTFReaderCorruptionTests.fixture("specific")
        defer { ReaderFiles.removeTree(dir) }
        let stream = try #require(files["channel0_0"])
        let metadata = try #require(files["metadata"])
        #expect(try CTFReaderCorruptionTests.readEverything(dir) > 0)
        let metadataText = String(decoding: metadata, as: UTF8.self)
        let firstPacketSize = Int(CTFReaderCorruptionTests.le(stream, 56) / 8)
        #expect(firstPacketSize < stream.count, "several packets")

        var cases: [(String, [UInt8], String)] = []
        var s = stream
        s[0] ^= 0xFF
        cases.append(("channel0_0", s, "byte offset 0: bad packet magic"))
        s = stream; s[10] ^= 1
        cases.append(("channel0_0", s, "byte offset 4: packet uuid"))
        s = stream; CTFReaderCorruptionTests.put(&s, 48, CTFReaderCorruptionTests.le(stream, 56) + 8)
        cases.append(("channel0_0", s, "byte offset 48: content_size"))
        s = stream; CTFReaderCorruptionTests.put(&s, 48, UInt64(stream.count + 8) * 8); CTFReaderCorruptionTests.put(&s, 56, UInt64(stream.count + 8) * 8)
        cases.append(("channel0_0", s, "byte offset 56: packet_size"))
        cases.append(("channel0_0", Array(stream.prefix(firstPacketSize + 50)), "byte offset \(firstPacketSize): truncated packet header"))
        cases.append(("channel0_0", Array(stream.dropLast(1)), "exceeds the"))
        // content_size one byte short: the last event runs past it.
        s = stream; CTFReaderCorruptionTests.put(&s, 48, CTFReaderCorruptionTests.le(stream, 48) - 8)
        cases.append(("channel0_0", s, "runs past"))
        s = stream; CTFReaderCorruptionTests.put(&s, 32 + 32, 7)
        cases.append(("channel0_0", s, "packet_seq_num"))
        // Timestamp going back: timestamp_begin of the second packet before the first one's end.
        s = stream; CTFReaderCorruptionTests.put(&s, firstPacketSize + 32, 0)
        cases.append(("channel0_0", s, "byte offset \(firstPacketSize + 32): timestamp_begin"))
        // Unknown event id: the first event's compact id set to 29 (not declared).
        s = stream
        if s[84] & 31 == 31 { CTFReaderCorruptionTests.put(&s, 85, 29, size: 4) } else { s[84] = s[84] & ~31 | 29 }
        cases.append(("channel0_0", s, "byte offset 84: unknown event id 29"))
        // Metadata.
        cases.append(("metadata", Array(metadata.dropFirst(3)), "byte offset 0 (line 1): metadata does not start with '/* CTF 1.8 */'"))
        cases.append(("metadata", Array(metadata.prefix(metadata.count / 2)), "metadata"))
        cases.append(("metadata", Array(metadataText.replacingFirst("byte_order = le", with: "byte_order = be").utf8), "expected 'le'"))
        cases.append(("metadata", Array(metadataText.replacingFirst("freq = 1000000000", with: "freq = 1000").utf8), "clock freq 1000 is not supported"))
        cases.append(("metadata", Array(metadataText.replacingFirst("size = 64; align = 8; signed = true;", with: "size = 12; align = 8; signed = true;").utf8), "unsupported integer size 12"))
        cases.append(("metadata", Array(metadataText.replacingFirst("id = 4000;", with: "id = 5;").utf8), "event id 5 is declared twice"))
        cases.append(("metadata", Array(metadataText.replacingFirst("uint8_t _payload[_length]", with: "uint8_t _payload[_nope]").utf8), "must be sized by an earlier field"))
        // The metadata no longer declares id 0: its events are unknown.
        for (file, bytes, phrase) in cases {
            let error = try #require(CTFReaderCorruptionTests.attempt(dir, file, bytes, original: files[file]!), "\(file): \(phrase)")
            #expect(error.code == .corrupted, "\(error)")
            #expect(error.message.contains(dir + "/" + file), "\(error)")
            #expect(error.message.contains("byte offset"), "\(error)")
            #expect(error.message.contains(phrase), "expected '\(phrase)' in: \(error)")
        }
        // The metadata no longer declares id 0: the streams' events of id 0 are unknown.
        let renumbered = Array(metadataText.replacingFirst("id = 0;\n\tstream_id", with: "id = 1234;\n\tstream_id").utf8)
        let error = try #require(CTFReaderCorruptionTests.attempt(dir, "metadata", renumbered, original: metadata))
        #expect(error.code == .corrupted)
        #expect(error.message.contains(dir + "/channel0_") && error.message.contains("unknown event id 0 (not declared in the metadata)"), "\(error)")
        #expect(try CTFReaderCorruptionTests.readEverything(dir) > 0, "restored")
    }

    // 40 s measured with the whole suite running beside other builds on 2 cores.
    @Test("fuzz: 3000 seeded mutations of metadata and streams either read or throw .corrupted naming the file",
          .timeLimit(.minutes(3)))
    func fuzz() throws {
        let (dir, files) = try CTFReaderCorruptionTests.fixture("fuzz", events: 400)
        defer { ReaderFiles.removeTree(dir) }
        let names = files.keys.sorted().filter { !(files[$0]?.isEmpty ?? true) }
        var random = SeededRandom(state: 0xF00D)
        var outcomes = (read: 0, corrupted: 0)
        let start = SystemClock.monotonic()
        for iteration in 0..<3000 {
            let file = random.next() % 10 < 3 ? "metadata" : names[Int(random.next() % UInt64(names.count))]
            let original = files[file]!
            var bytes = original
            let kind = random.next() % 8
            func position() -> Int { Int(random.next() % UInt64(max(1, bytes.count))) }
            switch kind {
            case 0:  // flip bits in 1 to 4 bytes
                for _ in 0...(random.next() % 4) where !bytes.isEmpty { bytes[position()] ^= UInt8(1 << (random.next() % 8)) }
            case 1:  // truncate anywhere
                bytes = Array(bytes.prefix(position()))
            case 2:  // truncate near a packet or field boundary of the header (stream) or line (metadata)
                let base = file == "metadata" ? (bytes.firstIndex(of: 0x0A) ?? 0) * Int(random.next() % 8)
                                              : Int(random.next() % 3) * Int(CTFReaderCorruptionTests.le(bytes, 56) / 8)
                bytes = Array(bytes.prefix(max(0, base + Int(random.next() % 96) - 8)))
            case 3:  // random byte value
                if !bytes.isEmpty { bytes[position()] = UInt8(truncatingIfNeeded: random.next()) }
            case 4:  // insert random bytes
                let at = position()
                bytes.insert(contentsOf: (0..<(1 + random.next() % 16)).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: min(at, bytes.count))
            case 5:  // delete a range
                let at = position()
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(random.next() % 64)))
            case 6:  // a random or extreme 64-bit value in a packet context field / a digit in the metadata
                if file == "metadata" {
                    let digits = bytes.indices.filter { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 }
                    if let d = digits.isEmpty ? nil : digits[Int(random.next() % UInt64(digits.count))] {
                        bytes[d] = 0x30 + UInt8(random.next() % 10)
                    }
                } else {
                    let field = 32 + 8 * Int(random.next() % 6)
                    let values: [UInt64] = [0, 1, .max, .max / 8, random.next(), CTFReaderCorruptionTests.le(bytes, field) &+ 8,
                                            CTFReaderCorruptionTests.le(bytes, field) &- 8]
                    CTFReaderCorruptionTests.put(&bytes, field, values[Int(random.next() % UInt64(values.count))])
                }
            default:  // duplicate a range
                let at = position()
                let slice = Array(bytes[at..<min(bytes.count, at + 1 + Int(random.next() % 200))])
                bytes.insert(contentsOf: slice, at: position())
            }
            if let error = CTFReaderCorruptionTests.attempt(dir, file, bytes, original: original, perStream: false) {
                outcomes.corrupted += 1
                #expect(error.code == .corrupted, "iteration \(iteration) (\(file), kind \(kind)): \(error)")
                // Mutated metadata that still parses describes another layout, so the stream it
                // misdescribes is the file named then.
                let named = error.message.contains(file) || (file == "metadata" && error.message.contains("/channel"))
                #expect(named, "iteration \(iteration) (\(file), kind \(kind)): \(error)")
                if error.code != .corrupted || !named { return }
            } else {
                outcomes.read += 1
            }
        }
        // Bounded by the mutation count; the suite's time limit only guards against a hang (no
        // timing assertion: this machine is shared).
        let seconds = Double(SystemClock.monotonic() - start) / 1e9
        print("fuzz outcomes: \(outcomes) in \(seconds) s")
        #expect(outcomes.corrupted > 1000, "\(outcomes)")
        #expect(outcomes.read > 0, "\(outcomes)")
    }
}

extension String {
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        let s = Array(self.utf8), t = Array(target.utf8)
        guard t.count <= s.count else { return self }
        for i in 0...(s.count - t.count) where Array(s[i..<(i + t.count)]) == t {
            return String(decoding: s[..<i] + Array(replacement.utf8) + s[(i + t.count)...], as: UTF8.self)
        }
        return self
    }
}

// MARK: - CLI: view and stats

/// Parsing helpers for the output of `rseqtrace view` and `stats`.
private enum ViewStatsTool {
    /// The number just before `marker` in `line` ("... 1000 events in ..." → 1000).
    static func number(before marker: String, in line: Substring) -> UInt64? {
        let words = line.split(separator: " ")
        let wanted = marker.split(separator: " ")
        guard words.count > wanted.count else { return nil }
        for i in 0..<(words.count - wanted.count) where Array(words[(i + 1)...(i + wanted.count)]) == wanted {
            return UInt64(words[i])
        }
        return nil
    }
}

@Suite("CLI: rseqtrace view and stats", .serialized, .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"))
struct CTFReaderCLITests {
    @Test("demo --output, then stats equals what demo reported and view prints every event", .timeLimit(.minutes(2)))
    func demoThenViewAndStats() throws {
        let dir = ReaderFiles.temporaryDirectory("cli")
        defer { ReaderFiles.removeTree(dir) }
        let demo = try HelperProcess.runRseqtrace(["demo", "--threads", "2", "--events", "500", "--output", dir])
        #expect(demo.status == 0, "\(demo)")
        let traceLine = try #require(demo.stdoutLines.first { $0.hasPrefix("trace: ") }, "\(demo)")
        let events = try #require(ViewStatsTool.number(before: " events in", in: traceLine), "\(traceLine)")
        let discarded = try #require(ViewStatsTool.number(before: " discarded", in: traceLine), "\(traceLine)")
        let rings = try #require(demo.stdoutLines.lazy.compactMap { ViewStatsTool.number(before: " CPU rings", in: $0) }.first, "\(demo)")
        let summary = try #require(demo.stdoutLines.last, "\(demo)")
        #expect(summary.contains("recorded=\(events) ") && summary.contains("lost=\(discarded) "), "\(summary)")

        let stats = try HelperProcess.runRseqtrace(["stats", dir])
        #expect(stats.status == 0, "\(stats)")
        #expect(stats.stderr.isEmpty, "\(stats)")
        let last = try #require(stats.stdoutLines.last, "\(stats)")
        let prefix = "stats: events=\(events) discarded=\(discarded) streams=\(rings + 1) duration_ns="
        #expect(last.hasPrefix(prefix), "\(last) vs \(prefix)")
        #expect(UInt64(last.dropFirst(prefix.count)) != nil, "\(last)")
        #expect(stats.stdout.contains("demo:tick"), "\(stats)")

        let view = try HelperProcess.runRseqtrace(["view", dir])
        #expect(view.status == 0, "\(view)")
        #expect(view.stderr.isEmpty, "\(view)")
        let eventLines = view.stdoutLines.filter { $0.hasPrefix("[") }
        let tickLines = eventLines.filter { $0.contains(" demo:tick: ") }
        #expect(UInt64(eventLines.count) == events)
        #expect(UInt64(view.stdoutLines.count - eventLines.count) == view.stdoutLines.filter { $0.hasPrefix("discarded ") }.count.asUInt64)
        #expect(tickLines.count >= eventLines.count * 99 / 100, "demo:tick dominates; demo:types is one in 1000")
        for line in tickLines.prefix(50) {
            // [HH:MM:SS.nnnnnnnnn] (+d.ddddddddd) cpu N tid T demo:tick: { seq = s, check = c, thread = t }
            let parts = line.split(separator: " ")
            #expect(parts.count >= 8 && parts[0].count == 20 && parts[0].hasSuffix("]") && parts[1].hasPrefix("(+")
                    && parts[2] == "cpu" && UInt32(parts[3]) != nil && parts[4] == "tid" && Int32(parts[5]).map { $0 > 0 } == true
                    && parts[6] == "demo:tick:" && parts[7] == "{", "\(line)")
            #expect(line.contains("seq = ") && line.contains("check = ") && line.contains("thread = ") && line.hasSuffix(" }"), "\(line)")
        }
        let limited = try HelperProcess.runRseqtrace(["view", dir, "--event", "demo:*", "--limit", "7"])
        #expect(limited.status == 0 && limited.stdoutLines.filter { $0.hasPrefix("[") }.count == 7, "\(limited)")
        let none = try HelperProcess.runRseqtrace(["view", dir, "--event", "other:*", "--event", "*nope"])
        #expect(none.status == 0 && none.stdoutLines.filter { $0.hasPrefix("[") }.isEmpty, "\(none)")
        let cpu0 = try HelperProcess.runRseqtrace(["view", dir, "--cpu", "0"])
        #expect(cpu0.status == 0 && cpu0.stdoutLines.allSatisfy { $0.contains(" cpu 0 ") }, "\(cpu0)")
    }

    @Test("view and stats on a missing directory: exit 1 with one error line naming it")
    func missingDirectory() throws {
        let dir = ReaderFiles.temporaryDirectory("absent")
        for command in ["view", "stats"] {
            let run = try HelperProcess.runRseqtrace([command, dir])
            #expect(run.status == 1, "\(run)")
            #expect(run.stdout.isEmpty, "\(run)")
            #expect(run.stderrLines.count == 1 && run.stderrLines[0].hasPrefix("error: ") && run.stderr.contains(dir), "\(run)")
        }
    }

    @Test("view and stats on a corrupted trace: exit 1 with one error line naming the file and offset")
    func corruptedTrace() throws {
        let dir = ReaderFiles.temporaryDirectory("clicorrupt")
        defer { ReaderFiles.removeTree(dir) }
        var builder = try TraceBuilder.varied(directory: dir, rings: 1, events: 200)
        try builder.finish()
        var stream = ReaderFiles.read(dir + "/channel0_1")
        try #require(stream.count > 84)
        stream[0] ^= 0x55
        ReaderFiles.write(dir + "/channel0_1", stream)
        for command in ["view", "stats"] {
            let run = try HelperProcess.runRseqtrace([command, dir])
            #expect(run.status == 1, "\(run)")
            let errors = run.stderrLines
            #expect(errors.count == 1, "\(run)")
            #expect(errors.first?.hasPrefix("error: \(dir)/channel0_1: byte offset 0: bad packet magic") == true, "\(run)")
        }
    }

    @Test("usage errors exit 64", arguments: [["view", "/tmp", "--limit", "-1"], ["view", "/tmp", "--cpu", "-2"], ["stats", "/tmp", "--cpu", "-1"]])
    func usage(arguments: [String]) throws {
        let run = try HelperProcess.runRseqtrace(arguments)
        #expect(run.status == 64, "\(run)")
        #expect(run.stderr.hasPrefix("Error: "), "\(run)")
    }
}

extension Int {
    fileprivate var asUInt64: UInt64 { UInt64(self) }
}
