#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import SystemPackage

/// Reads a CTF 1.8 trace directory written by `CTFTraceWriter`, or by LTTng-UST 2.13 (see
/// `CTFMetadataParser` for what of LTTng's dialect is read): validates its `metadata`, then
/// decodes the events of its stream files, merged in timestamp order or one stream at a time.
///
/// `directory` may also be an LTTng session's output directory: the one trace below it
/// (`ust/uid/<uid>/64-bit`, `ust/pid/<name>-<pid>-<time>`) is read; when there are several, the
/// error lists them.
///
/// Every file is read into memory when the reader is created (within bounds: 16 MiB of metadata,
/// 4 GiB per stream file, 16 GiB in all); decoding is lazy. Malformed input throws
/// `TraceError(.corrupted)` whose message names the file, the byte offset and the problem.
///
/// Nothing in the directory is trusted: a symbolic link, FIFO, device or socket where a file is
/// expected is refused without being read (files are opened with `O_NOFOLLOW | O_NONBLOCK` and the
/// opened file's type and size are checked), and so are two stream files holding the same stream.
/// A stream whose `packet_seq_num` skips or repeats a number is an error, not a warning: the
/// message says how many packets are missing, or which packet is duplicated (babeltrace2 reports
/// such gaps as discarded packets and goes on; this reader refuses an incomplete trace).
///
/// Packets missing at the end of a stream are only visible with LTTng index files
/// (`index/<stream>.idx`, which `CTFTraceWriter` and LTTng write). A writer appends a packet's
/// index entry after the packet, so the index of a stream file is checked as a list of its first
/// packets, entry by entry (offset, sizes, timestamps, discarded events, stream instance and
/// sequence number):
/// - a stream file holding packets after those its index lists is accepted, trailing packets
///   included: its writer stopped (was killed) between writing a packet and its index entry, and
///   the index is unfinished (so is an index whose last entry is partial: the writer was killed while
///   appending it);
/// - a stream file holding fewer packets than its index lists is refused: its last packets were
///   dropped (the file was truncated, or not all of it was copied), and the error names the stream
///   file, the packets its index lists and the packets it holds.
///
/// A stream file without an index is read as it is; an index without its stream file is refused.
public final class CTFTraceReader {
    /// The trace directory (the one holding `metadata`).
    public let directory: String
    /// The parsed metadata.
    public let metadata: CTFTraceMetadata
    /// Stream file names (`channel0_<n>`), in numeric order.
    public let streamNames: [String]
    private let streamBytes: [[UInt8]]

    /// Largest metadata file accepted (the text of thousands of event declarations fits easily).
    package static let metadataLimit = ReadLimits.standard.metadataBytes

    /// The bounds on what the reader loads into memory: each is checked against the file's size
    /// before it is read, and again while it is read.
    package struct ReadLimits: Sendable {
        /// Largest `metadata` file.
        package var metadataBytes: Int
        /// Largest stream file.
        package var streamFileBytes: Int
        /// Largest sum of the stream files.
        package var totalStreamBytes: Int
        /// Largest LTTng index file (`index/<stream>.idx`).
        package var indexFileBytes: Int

        package init(metadataBytes: Int, streamFileBytes: Int, totalStreamBytes: Int, indexFileBytes: Int) {
            self.metadataBytes = metadataBytes
            self.streamFileBytes = streamFileBytes
            self.totalStreamBytes = totalStreamBytes
            self.indexFileBytes = indexFileBytes
        }

        /// 16 MiB of metadata, 4 GiB per stream file, 16 GiB in all, 64 MiB per index file.
        package static let standard = ReadLimits(metadataBytes: 16 << 20, streamFileBytes: 4 << 30,
                                                 totalStreamBytes: 16 << 30, indexFileBytes: 64 << 20)
    }

    /// Reads the trace in `requested`, or the only trace of an LTTng session directory.
    ///
    /// Reads `metadata` and every stream file into memory (bounded: 16 MiB of metadata, 4 GiB per
    /// stream file, 16 GiB in all) and checks the trace's shape; events are decoded lazily, by
    /// `stream(_:)` and `records()`.
    ///
    /// - Throws: `TraceError` `.notFound` when the directory or its `metadata` is missing,
    ///   `.invalidConfiguration` when a session directory holds several traces, `.corrupted` when a
    ///   file is not a regular file (a symbolic link, FIFO or device), is larger than its bound, when
    ///   the metadata is malformed, two stream files hold the same stream (stream id and CPU), or an
    ///   LTTng index file (`index/<stream>.idx`) disagrees with its stream's packets (describes one
    ///   differently, or lists packets the stream file lacks: its last packets were dropped);
    ///   `.systemCallFailed` when a file cannot be opened or read.
    public convenience init(directory requested: String) throws(TraceError) {
        try self.init(directory: requested, limits: .standard)
    }

    /// Reads the trace in `requested` within `limits`.
    package init(directory requested: String, limits: ReadLimits) throws(TraceError) {
        guard var entries = SystemInfo.directoryEntries(requested) else {
            throw TraceError(.notFound, "cannot open trace directory \(requested): it does not exist or is not a directory")
        }
        var directory = requested
        if !entries.contains("metadata") {
            let found = CTFTraceReader.traceDirectories(below: requested)
            guard found.count == 1, let only = found.first, let inner = SystemInfo.directoryEntries(only) else {
                if found.isEmpty {
                    throw TraceError(.notFound, "\(requested)/metadata: no such file: \(requested) is not a CTF trace directory (nor an LTTng session directory with traces in ust/uid/*/*-bit or ust/pid/*)")
                }
                throw TraceError(.invalidConfiguration, "\(requested) holds \(found.count) traces; read one of them: \(found.joined(separator: ", "))")
            }
            directory = only
            entries = inner
        }
        self.directory = directory
        let metadataPath = directory + "/metadata"
        var text = try CTFTraceReader.readFile(metadataPath, limit: limits.metadataBytes, what: "metadata")
        if text.count >= 4 && text[0] == 0x57 && text[1] == 0x1D && text[2] == 0xD1 && text[3] == 0x75 {
            text = try CTFMetadataParser.unpacketize(text, path: metadataPath)
        }
        metadata = try CTFMetadataParser.parse(text, path: metadataPath)
        // Stream files: everything but the metadata, hidden files and directories (LTTng's index/).
        let names = entries.filter { name in
            name != "metadata" && !name.hasPrefix(".") && SystemInfo.directoryEntries(directory + "/" + name) == nil
        }.sorted(by: CTFTraceReader.streamOrder)
        streamNames = names
        var contents: [[UInt8]] = []
        var total = 0
        for name in names {
            let path = directory + "/" + name
            let left = limits.totalStreamBytes - total
            let bytes = try CTFTraceReader.readFile(path, limit: min(limits.streamFileBytes, left),
                                                    what: limits.streamFileBytes <= left ? "stream file" : "rest of the stream files (\(limits.totalStreamBytes) bytes in all)")
            total += bytes.count
            contents.append(bytes)
        }
        streamBytes = contents
        try CTFTraceReader.checkDistinctStreams(names: names, contents: contents, directory: directory)
        if entries.contains("index"), let indexNames = SystemInfo.directoryEntries(directory + "/index") {
            try CTFTraceReader.checkIndexes(indexNames.filter { !$0.hasPrefix(".") }.sorted(), streams: names,
                                            contents: contents, directory: directory, limit: limits.indexFileBytes)
        }
    }

    /// A decoder of stream `index` (of `streamNames`) alone, in file order.
    public func stream(_ index: Int) -> CTFStreamDecoder {
        CTFStreamDecoder(name: streamNames[index], path: directory + "/" + streamNames[index],
                         bytes: streamBytes[index], metadata: metadata)
    }

    /// Every record of every stream, in timestamp order (ties: stream order).
    public func records() -> Iterator {
        Iterator(decoders: streamNames.indices.map { stream($0) })
    }

    /// All records, in timestamp order, in one array (memory grows with the trace; iterate
    /// `records()` to stream instead).
    ///
    /// - Throws: `TraceError(.corrupted)` as `Iterator.next()`.
    public func readAll() throws(TraceError) -> [CTFRecord] {
        var iterator = records()
        var out: [CTFRecord] = []
        while let record = try iterator.next() { out.append(record) }
        return out
    }

    /// Merges the streams: keeps the next record of each and yields the earliest.
    public struct Iterator {
        private var decoders: [CTFStreamDecoder]
        private var heads: [CTFRecord?]
        private var exhausted: [Bool]

        init(decoders: [CTFStreamDecoder]) {
            self.decoders = decoders
            heads = Array(repeating: nil, count: decoders.count)
            exhausted = Array(repeating: false, count: decoders.count)
        }

        /// The next record in timestamp order (ties: stream order), nil when every stream is exhausted.
        ///
        /// Decodes at most one record per stream ahead.
        ///
        /// - Throws: `TraceError(.corrupted)` naming the stream file, the byte offset and the
        ///   problem when a packet or event is malformed, or a packet is missing or repeated
        ///   (`packet_seq_num` gap or repeat).
        public mutating func next() throws(TraceError) -> CTFRecord? {
            var best: Int?
            for i in decoders.indices {
                if heads[i] == nil && !exhausted[i] {
                    heads[i] = try decoders[i].next()
                    if heads[i] == nil { exhausted[i] = true }
                }
                guard let head = heads[i] else { continue }
                if let b = best, let current = heads[b], current.timestamp <= head.timestamp { continue }
                best = i
            }
            guard let best else { return nil }
            defer { heads[best] = nil }
            return heads[best]
        }
    }

    // MARK: - Files

    /// The trace directories of an LTTng session directory `root`: `ust/uid/<uid>/<bits>-bit` and
    /// `ust/pid/<process>` holding a `metadata` file, sorted. Nothing else is searched.
    static func traceDirectories(below root: String) -> [String] {
        var found: [String] = []
        for (scheme, levels) in [("uid", 2), ("pid", 1)] {
            var level = [root + "/ust/" + scheme]
            for _ in 0..<levels {
                level = level.flatMap { dir in
                    (SystemInfo.directoryEntries(dir) ?? []).filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
                }
            }
            found += level.filter { SystemInfo.directoryEntries($0)?.contains("metadata") == true }
        }
        return found
    }

    /// `channel0_2` before `channel0_10`.
    static func streamOrder(_ a: String, _ b: String) -> Bool {
        func key(_ s: String) -> (String, Int) {
            let digits = s.reversed().prefix(while: { $0.isASCII && $0.isNumber })
            let number = digits.count <= 18 ? Int(String(digits.reversed())) ?? -1 : -1
            return (String(s.dropLast(digits.count)), number)
        }
        let (ka, kb) = (key(a), key(b))
        return ka != kb ? ka < kb : a < b
    }

    /// The whole of regular file `path` as bytes, at most `limit` of them. Opens without following
    /// a symbolic link and without blocking (a FIFO), and checks the opened file's type and size
    /// before reading, so that what was checked is what is read.
    static func readFile(_ path: String, limit: Int, what: String) throws(TraceError) -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .noFollow, .nonBlocking])
        } catch {
            let errno = error as? Errno
            if errno == .tooManySymbolicLinkLevels {
                throw TraceError(.corrupted, "\(path): is a symbolic link; a trace directory holds regular files only and the reader follows no link in it: replace the link with a copy of the file it names, or remove it")
            }
            throw TraceError(errno == .noSuchFileOrDirectory ? .notFound : .systemCallFailed, "cannot open \(path)", errno: errno)
        }
        defer { try? fd.close() }
        let info = try SystemInfo.status(of: fd, path: path)
        guard info.type == .regular else {
            throw TraceError(.corrupted, "\(path): is \(SystemInfo.describe(info.type)), not a regular file; a trace directory holds regular files only: remove it or replace it with the \(what) it stands for")
        }
        guard info.size <= Int64(limit) else {
            throw TraceError(.corrupted, "\(path): the \(what) is \(info.size) bytes, more than the \(limit) bytes accepted: this is not a trace this reader can load (split it, or check that the file is the \(what))")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count: Int
            do {
                // SAFETY: the read writes at most chunk.count bytes into the array's own storage.
                count = try unsafe chunk.withUnsafeMutableBytes { try unsafe fd.read(into: $0) }
            } catch {
                throw TraceError(.systemCallFailed, "cannot read \(path)", errno: error as? Errno)
            }
            if count == 0 { break }
            guard count <= limit - bytes.count else {
                throw TraceError(.corrupted, "\(path): byte offset \(limit): the \(what) grew past the \(limit) bytes accepted while it was read")
            }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }


    // MARK: - Trace shape

    /// A little-endian packet header or context field of the packet at `start`, nil past the end.
    static func headerField(_ bytes: [UInt8], _ start: Int, _ name: String) -> UInt64? {
        guard let (offset, size) = CTFLayout.positions[name], start >= 0,
              start <= bytes.count - offset - size else { return nil }
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(bytes[start + offset + i]) << (8 * UInt64(i)) }
        return value
    }

    /// Throws when two stream files hold the same stream (the stream_id and cpu_id of their first
    /// packets): one is a copy, and its events would be read twice.
    static func checkDistinctStreams(names: [String], contents: [[UInt8]], directory: String) throws(TraceError) {
        var seen: [[UInt64]: String] = [:]
        for (name, bytes) in zip(names, contents) {
            guard let id = headerField(bytes, 0, "stream_id"), let cpu = headerField(bytes, 0, "cpu_id") else { continue }
            if let first = seen[[id, cpu]] {
                throw TraceError(.corrupted, "\(directory)/\(name): byte offset 0: holds stream \(id) of CPU \(cpu), like \(first): one of them is a duplicated stream file; remove the copy")
            }
            seen[[id, cpu]] = name
        }
    }

    /// The magic number of an LTTng index file (`index/<stream>.idx`, big-endian).
    static let indexMagic: UInt64 = 0xC1F1_DCC1

    /// Checks the LTTng index files `indexNames` (in `directory/index`) against the packets of the
    /// stream files: at most one index per stream file, one entry per packet, with the packet's
    /// offset, sizes, timestamps and discarded-events count (and, from index 1.1, its stream
    /// instance id and sequence number). An index is what shows that a stream's last packets are
    /// missing; packets after the last it lists are accepted (an unfinished index).
    static func checkIndexes(_ indexNames: [String], streams: [String], contents: [[UInt8]],
                             directory: String, limit: Int) throws(TraceError) {
        let streamSet = Set(streams)
        for indexName in indexNames where indexName.hasSuffix(".idx") {
            let stream = String(indexName.dropLast(4))
            if !streamSet.contains(stream) {
                throw TraceError(.corrupted, "\(directory)/index/\(indexName): indexes stream file \(stream), which the trace does not hold: a stream file was removed; restore it, or remove its index")
            }
        }
        for (stream, bytes) in zip(streams, contents) {
            let path = directory + "/index/" + stream + ".idx"
            guard indexNames.contains(stream + ".idx") else { continue }
            let index = try readFile(path, limit: limit, what: "index file")
            try checkIndex(index, path: path, stream: bytes, streamPath: directory + "/" + stream)
        }
    }

    /// Checks one LTTng index file against its stream file's packets: its entries must describe
    /// the stream file's first packets, every one of them present; packets after the last complete
    /// entry (and a partial last entry) are those of an unfinished index, and accepted.
    static func checkIndex(_ index: [UInt8], path: String, stream: [UInt8], streamPath: String) throws(TraceError) {
        func big(_ at: Int, _ size: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<size { value = value << 8 | UInt64(index[at + i]) }
            return value
        }
        func fail(_ offset: Int, _ what: String) -> TraceError {
            TraceError(.corrupted, "\(path): byte offset \(offset): \(what)")
        }
        let headerSize = 16
        guard index.count >= headerSize else {
            throw fail(0, "truncated index header: \(index.count) bytes, an LTTng index header takes \(headerSize)")
        }
        guard big(0, 4) == indexMagic else {
            throw fail(0, "bad index magic 0x\(String(big(0, 4), radix: 16)), expected 0x\(String(indexMagic, radix: 16))")
        }
        let major = big(4, 4), minor = big(8, 4), entrySize = big(12, 4)
        guard major == 1 else {
            throw fail(4, "index version \(major).\(minor) is not supported (1.x is)")
        }
        let fields = entrySize >= 72 ? 9 : 7
        guard entrySize >= 56, entrySize <= 4096 else {
            throw fail(12, "packet_index_len \(entrySize) is outside 56...4096 bytes")
        }
        let size = Int(entrySize)
        // A partial last entry is one the writer was appending when it stopped (e.g. killed): like
        // packets after the last entry, it belongs to an unfinished index and is not checked.
        let entries = (index.count - headerSize) / size
        let names = ["packet_size", "content_size", "timestamp_begin", "timestamp_end", "events_discarded", "stream_id",
                     "stream_instance_id", "packet_seq_num"]
        var packet = 0
        var offset = 0
        while offset < stream.count {
            guard let packetBits = headerField(stream, offset, "packet_size"), packetBits % 8 == 0,
                  packetBits / 8 >= UInt64(CTFLayout.headerSize), packetBits / 8 <= UInt64(stream.count - offset) else {
                break // The stream decoder reports the malformed packet.
            }
            // Packets after the last entry: the writer stopped between a packet and its entry.
            guard packet < entries else { break }
            let at = headerSize + packet * size
            guard big(at, 8) == UInt64(offset) else {
                throw fail(at, "entry \(packet) places its packet at byte offset \(big(at, 8)) of \(streamPath), which holds it at \(offset): a packet before it was removed or added")
            }
            // stream_id is not compared: the decoder checks it against the metadata, and the rest
            // of an entry identifies its packet.
            for (i, name) in names.prefix(fields - 1).enumerated() where name != "stream_id" {
                let expected = big(at + 8 * (i + 1), 8)
                let actual = headerField(stream, offset, name) ?? 0
                guard expected == actual else {
                    throw fail(at + 8 * (i + 1), "entry \(packet): \(name) \(expected) differs from \(actual) in the packet at byte offset \(offset) of \(streamPath): the index does not match the stream file")
                }
            }
            packet += 1
            offset += Int(packetBits / 8)
        }
        if offset >= stream.count && packet < entries {
            throw TraceError(.corrupted, "\(streamPath): byte offset \(stream.count): the file ends after \(packet) packets, \(path) lists \(entries): \(entries - packet) packet(s) at the end of the stream are missing (dropped or cut off after they were written); the trace is incomplete")
        }
    }
}
