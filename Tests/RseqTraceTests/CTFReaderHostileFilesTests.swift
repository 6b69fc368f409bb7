import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

/// Hostile trace directories: special files, oversized files, duplicated streams, missing or
/// repeated packets, LTTng index files that disagree with the packets. Each is refused with
/// `.corrupted` and a message naming the file; none hangs or reads without bound.
@Suite("CTFReader: hostile trace files are refused, within bounds")
struct CTFReaderHostileFilesTests {
    /// A valid trace (rseqtrace writer, 4 KiB packets) and its files.
    static func fixture(_ tag: String) throws -> (String, [String: [UInt8]]) {
        try CTFReaderCorruptionTests.fixture("hostile-" + tag, events: 3000)
    }

    /// Removes the trace directory and its `index/` subdirectory.
    static func remove(_ dir: String) {
        for sub in [dir + "/index", dir] {
            for name in SystemInfo.directoryEntries(sub) ?? [] {
                // SAFETY: the path string is passed as a temporary NUL-terminated C string.
                unsafe unlink(sub + "/" + name)
            }
            // SAFETY: as above.
            unsafe rmdir(sub)
        }
    }

    static func write(_ path: String, _ bytes: [UInt8]) throws {
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        let fd = unsafe open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            // SAFETY: the array's storage is valid for `count - done` bytes from `done` during the call.
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            try #require(n > 0, "cannot write \(path)")
            done += n
        }
    }

    /// The (offset, size) of each packet of a stream file.
    static func packets(_ stream: [UInt8]) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        var offset = 0
        while offset + 64 <= stream.count {
            let size = Int(CTFReaderCorruptionTests.le(stream, offset + 56) / 8)
            guard size > 0 else { break }
            out.append((offset, size))
            offset += size
        }
        return out
    }

    /// The error of reading every record of `dir`, nil if it reads.
    static func failure(_ dir: String, limits: CTFTraceReader.ReadLimits = .standard) -> TraceError? {
        do {
            _ = try CTFTraceReader(directory: dir, limits: limits).readAll()
            return nil
        } catch { return error }
    }

    static func expectRefused(_ dir: String, limits: CTFTraceReader.ReadLimits = .standard, _ fragments: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) {
        let error = failure(dir, limits: limits)
        #expect(error?.code == .corrupted, "\(String(describing: error))", sourceLocation: sourceLocation)
        let message = error?.message ?? ""
        for fragment in fragments {
            #expect(message.contains(fragment), "\(message)", sourceLocation: sourceLocation)
        }
    }

    // MARK: - Special files

    /// `rseqtrace stats` in a child with a time limit: a reader that blocks on a FIFO is killed
    /// (and the test fails) instead of hanging the test run.
    @Test("a FIFO as a stream file or as metadata: refused at once, not read", arguments: ["channel0_1", "metadata"])
    func fifo(name: String) throws {
        let (dir, _) = try Self.fixture("fifo")
        defer { Self.remove(dir) }
        // SAFETY: path strings are passed as temporary NUL-terminated C strings.
        #expect(unsafe unlink(dir + "/" + name) == 0)
        // SAFETY: as above.
        #expect(unsafe mkfifo(dir + "/" + name, 0o600) == 0)
        let run = try HelperProcess.runRseqtrace(["stats", dir], timeout: .seconds(60))
        #expect(!run.timedOut, "\(run)")
        #expect(run.status == 1, "\(run)")
        #expect(run.stderr.contains("\(dir)/\(name): is a FIFO (named pipe), not a regular file"), "\(run)")
    }

    @Test("a symbolic link to /dev/zero as a stream file: refused, not followed")
    func symlinkToDevZero() throws {
        let (dir, _) = try Self.fixture("symlink")
        defer { Self.remove(dir) }
        // SAFETY: path strings are passed as temporary NUL-terminated C strings.
        #expect(unsafe unlink(dir + "/channel0_1") == 0)
        // SAFETY: as above.
        #expect(unsafe symlink("/dev/zero", dir + "/channel0_1") == 0)
        // Small bounds: were the link followed, /dev/zero would be read only up to 1 MiB.
        let limits = CTFTraceReader.ReadLimits(metadataBytes: 1 << 20, streamFileBytes: 1 << 20,
                                               totalStreamBytes: 4 << 20, indexFileBytes: 1 << 20)
        Self.expectRefused(dir, limits: limits, ["\(dir)/channel0_1: is a symbolic link"])
    }

    /// The writer reads an existing output directory's `metadata` to know whether it may replace
    /// it (`SystemInfo.readSmallFile`): a FIFO there is refused at once, not waited on.
    @Test("a FIFO named metadata in the output directory: demo refuses the directory at once")
    func fifoInOutputDirectory() throws {
        let home = CTFReaderCorruptionTests.fixtureDirectory("hostile-output")
        let output = home + "/rseqtrace-demo"
        defer {
            Self.remove(output)
            // SAFETY: rmdir takes the path by value.
            unsafe rmdir(home)
        }
        // SAFETY: mkdir and mkfifo take the paths by value.
        #expect(unsafe mkdir(home, 0o700) == 0)
        // SAFETY: as above.
        #expect(unsafe mkdir(output, 0o700) == 0)
        // SAFETY: as above.
        #expect(unsafe mkfifo(output + "/metadata", 0o600) == 0)
        let run = try HelperProcess.run("/bin/sh", ["-c", "cd '\(home)' && exec '\(HelperProcess.rseqtracePath)' demo --threads 1 --events 10"],
                                        environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(!run.timedOut, "\(run)")
        #expect(run.status == 1, "\(run)")
        #expect(run.stderr.contains("error: output directory rseqtrace-demo is not empty"), "\(run)")
    }

    // MARK: - Bounds

    @Test("a sparse stream file one byte over the bound: refused from its size, before reading")
    func oversizedStream() throws {
        let (dir, files) = try Self.fixture("oversized")
        defer { Self.remove(dir) }
        let limit = 1 << 20
        let limits = CTFTraceReader.ReadLimits(metadataBytes: 1 << 20, streamFileBytes: limit,
                                               totalStreamBytes: 64 << 20, indexFileBytes: 1 << 20)
        #expect(Self.failure(dir, limits: limits) == nil)
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        #expect(unsafe truncate(dir + "/channel0_1", off_t(limit + 1)) == 0)
        Self.expectRefused(dir, limits: limits, ["\(dir)/channel0_1: the stream file is \(limit + 1) bytes, more than the \(limit) bytes accepted"])
        try Self.write(dir + "/channel0_1", try #require(files["channel0_1"]))

        // The sum of the stream files is bounded too.
        let total = files.filter { $0.key != "metadata" }.values.map(\.count).reduce(0, +)
        let tight = CTFTraceReader.ReadLimits(metadataBytes: 1 << 20, streamFileBytes: limit,
                                              totalStreamBytes: total - 1, indexFileBytes: 1 << 20)
        Self.expectRefused(dir, limits: tight, ["more than the", "\(total - 1) bytes in all"])

        // And the metadata.
        let metadata = try #require(files["metadata"])
        let small = CTFTraceReader.ReadLimits(metadataBytes: metadata.count - 1, streamFileBytes: limit,
                                              totalStreamBytes: 64 << 20, indexFileBytes: 1 << 20)
        Self.expectRefused(dir, limits: small, ["\(dir)/metadata: the metadata is \(metadata.count) bytes"])
    }

    // MARK: - Streams and packets

    @Test("a duplicated stream file (same stream and CPU) is refused")
    func duplicatedStream() throws {
        let (dir, files) = try Self.fixture("duplicate")
        defer { Self.remove(dir) }
        try Self.write(dir + "/channel0_7", try #require(files["channel0_1"]))
        Self.expectRefused(dir, ["\(dir)/channel0_7: byte offset 0", "like channel0_1", "duplicated stream file"])
    }

    @Test("a packet removed from the middle of a stream: missing packets reported")
    func packetRemoved() throws {
        let (dir, files) = try Self.fixture("removed")
        defer { Self.remove(dir) }
        let stream = try #require(files["channel0_0"])
        let packets = Self.packets(stream)
        try #require(packets.count >= 3)
        let (offset, size) = packets[1]
        try Self.write(dir + "/channel0_0", Array(stream[..<offset] + stream[(offset + size)...]))
        Self.expectRefused(dir, ["\(dir)/channel0_0: byte offset \(offset + 64)", "packet_seq_num 2 does not follow 0: 1 missing packet(s)"])
    }

    @Test("a packet repeated in a stream: duplicated packet reported")
    func packetRepeated() throws {
        let (dir, files) = try Self.fixture("repeated")
        defer { Self.remove(dir) }
        let stream = try #require(files["channel0_0"])
        let packets = Self.packets(stream)
        try #require(packets.count >= 3)
        let (offset, size) = packets[1]
        let packet = stream[offset..<(offset + size)]
        try Self.write(dir + "/channel0_0", Array(stream[..<(offset + size)] + packet + stream[(offset + size)...]))
        Self.expectRefused(dir, ["\(dir)/channel0_0: byte offset \(offset + size + 64)", "packet_seq_num 1 does not follow 1: a duplicated packet"])
    }

    // MARK: - LTTng index files

    /// An LTTng 1.1 index of `stream` (big-endian header and entries, 72 bytes each).
    static func index(of stream: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        func big(_ value: UInt64, _ size: Int) {
            for i in (0..<size).reversed() { out.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * i))) }
        }
        big(0xC1F1_DCC1, 4); big(1, 4); big(1, 4); big(72, 4)
        for (offset, _) in packets(stream) {
            big(UInt64(offset), 8)
            for at in [56, 48, 32, 40, 72] { big(CTFReaderCorruptionTests.le(stream, offset + at), 8) }
            big(CTFReaderCorruptionTests.le(stream, offset + 20) & 0xFFFF_FFFF, 8)   // stream_id (32-bit)
            big(CTFReaderCorruptionTests.le(stream, offset + 24), 8)                 // stream_instance_id
            big(CTFReaderCorruptionTests.le(stream, offset + 64), 8)                 // packet_seq_num
        }
        return out
    }

    @Test("LTTng index files: a matching index is accepted; a malformed or disagreeing one is refused")
    func indexFiles() throws {
        let (dir, files) = try Self.fixture("index")
        defer { Self.remove(dir) }
        // SAFETY: mkdir takes the path by value.
        #expect(unsafe mkdir(dir + "/index", 0o700) == 0)
        let streams = files.keys.filter { $0 != "metadata" }.sorted()
        for name in streams { try Self.write(dir + "/index/\(name).idx", Self.index(of: try #require(files[name]))) }
        let expected = try CTFTraceReader(directory: dir).readAll().count
        #expect(expected > 0)

        let stream = try #require(files["channel0_0"])
        let good = Self.index(of: stream)
        let indexPath = dir + "/index/channel0_0.idx"
        let packets = Self.packets(stream)
        try #require(packets.count >= 3)

        // (A stream file cut at its last packet: `writerIndexFiles`.)

        var cases: [([UInt8], String)] = []
        var bad = good; bad[0] ^= 0xFF
        cases.append((bad, "byte offset 0: bad index magic"))
        cases.append((Array(good.prefix(10)), "byte offset 0: truncated index header"))
        bad = good; bad[5] = 9
        cases.append((bad, "byte offset 4: index version"))
        bad = good; bad[15] = 8
        cases.append((bad, "byte offset 12: packet_index_len 8"))
        bad = good; bad[16 + 72 + 8 + 8 + 7] ^= 0x08          // entry 1: content_size
        cases.append((bad, "byte offset \(16 + 72 + 16): entry 1: content_size"))
        bad = good; bad[16 + 72 + 7] ^= 0x01                  // entry 1: offset
        cases.append((bad, "entry 1 places its packet at byte offset"))
        cases.append((good + good[16..<(16 + 72)], "packet(s) at the end of the stream are missing"))
        for (bytes, fragment) in cases {
            try Self.write(indexPath, bytes)
            Self.expectRefused(dir, [fragment])
        }
        // A partial last entry (a writer killed while appending it) is an unfinished index.
        try Self.write(indexPath, Array(good.dropLast(5)))
        #expect(try CTFTraceReader(directory: dir).readAll().count == expected)
        try Self.write(indexPath, good)
        #expect(try CTFTraceReader(directory: dir).readAll().count == expected)

        // An index whose stream file is gone.
        try Self.write(dir + "/index/channel0_9.idx", good)
        Self.expectRefused(dir, ["\(dir)/index/channel0_9.idx: indexes stream file channel0_9, which the trace does not hold"])
    }

    @Test("CTFTraceWriter writes an LTTng index per stream; a stream cut before its last packet is refused, trailing packets an unfinished index lacks are accepted")
    func writerIndexFiles() throws {
        let (dir, files) = try CTFReaderCorruptionTests.fixture("hostile-writer-index", events: 3000, keepingIndex: true)
        defer { Self.remove(dir) }
        let streams = files.keys.filter { $0 != "metadata" }.sorted()
        #expect(streams == ["channel0_0", "channel0_1", "channel0_2"])
        #expect(SystemInfo.directoryEntries(dir + "/index")?.sorted() == streams.map { $0 + ".idx" })
        for name in streams {
            // The index lists every packet, as the test's own encoding of LTTng's format does.
            let stream = try #require(files[name])
            #expect(Self.read(dir + "/index/\(name).idx") == Self.index(of: stream), "\(name)")
        }
        let expected = try CTFTraceReader(directory: dir).readAll().count
        #expect(expected > 0)

        let stream = try #require(files["channel0_0"])
        let good = Self.index(of: stream)
        let indexPath = dir + "/index/channel0_0.idx"
        let packets = Self.packets(stream)
        try #require(packets.count >= 3)

        // The stream file cut at its last packet's offset: the last packet was dropped.
        let (lastOffset, _) = try #require(packets.last)
        try Self.write(dir + "/channel0_0", Array(stream[..<lastOffset]))
        Self.expectRefused(dir, ["\(dir)/channel0_0: byte offset \(lastOffset): the file ends after \(packets.count - 1) packets, \(indexPath) lists \(packets.count): 1 packet(s) at the end of the stream are missing (dropped or cut off after they were written); the trace is incomplete"])
        try Self.write(dir + "/channel0_0", stream)

        // Indexes with fewer entries than packets (a writer killed between a packet and its
        // entry, or before any entry): accepted, every packet read.
        for dropped in [1, 2, packets.count] {
            try Self.write(indexPath, Array(good.dropLast(72 * dropped)))
            #expect(try CTFTraceReader(directory: dir).readAll().count == expected, "\(dropped) entries dropped")
        }
        // Fewer entries and a dropped packet: the packets the index lists are still required.
        try Self.write(indexPath, Array(good.dropLast(72)))
        let (secondLast, _) = packets[packets.count - 2]
        try Self.write(dir + "/channel0_0", Array(stream[..<secondLast]))
        Self.expectRefused(dir, ["\(dir)/channel0_0: byte offset \(secondLast): the file ends after \(packets.count - 2) packets, \(indexPath) lists \(packets.count - 1)"])
    }

    @Test("replacing a previous trace removes its index directory; one holding another file is refused; removeTrace removes it")
    func replacingRemovesTheIndex() throws {
        let (dir, _) = try CTFReaderCorruptionTests.fixture("hostile-replace-index", keepingIndex: true)
        defer { Self.remove(dir) }
        try #require(SystemInfo.directoryEntries(dir + "/index")?.isEmpty == false)

        // A file the writer does not create, in index/: not a trace of ours, left alone.
        try Self.write(dir + "/index/notes.txt", [0x41])
        #expect(throws: TraceError.self) { try CTFTraceWriter.prepareDirectory(dir, replacingPreviousTrace: true) }
        #expect(SystemInfo.directoryEntries(dir + "/index")?.contains("notes.txt") == true)
        #expect(SystemInfo.directoryEntries(dir)?.contains("metadata") == true)
        // SAFETY: unlink takes the path by value.
        #expect(unsafe unlink(dir + "/index/notes.txt") == 0)

        #expect(try CTFTraceWriter.prepareDirectory(dir, replacingPreviousTrace: true) == false)
        #expect(SystemInfo.directoryEntries(dir) == [])

        // A trace written again, then removed as a failed recording's is.
        let (again, _) = try CTFReaderCorruptionTests.fixture("hostile-remove-index", keepingIndex: true)
        defer { Self.remove(again) }
        CTFTraceWriter.removeTrace(in: again, removingDirectory: true)
        // SAFETY: access takes the path by value.
        #expect(unsafe access(again, F_OK) != 0, "\(again) removed with its index directory")
    }

    static func read(_ path: String) -> [UInt8]? {
        // SAFETY: the path string is passed as a temporary NUL-terminated C string.
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // SAFETY: read writes at most chunk.count bytes into the array's storage.
            let n = unsafe Glibc.read(fd, &chunk, chunk.count)
            guard n > 0 else { return n == 0 ? out : nil }
            out.append(contentsOf: chunk[..<n])
        }
    }
}
