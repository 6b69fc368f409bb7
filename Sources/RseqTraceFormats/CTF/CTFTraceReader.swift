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
/// Every file is read into memory when the reader is created; decoding is lazy. Malformed input
/// throws `TraceError(.corrupted)` whose message names the file, the byte offset and the problem.
public final class CTFTraceReader {
    /// The trace directory (the one holding `metadata`).
    public let directory: String
    /// The parsed metadata.
    public let metadata: CTFTraceMetadata
    /// Stream file names (`channel0_<n>`), in numeric order.
    public let streamNames: [String]
    private let streamBytes: [[UInt8]]

    /// Largest metadata file accepted (the text of thousands of event declarations fits easily).
    public static let metadataLimit = 16 << 20

    /// Reads the trace in `requested`, or the only trace of an LTTng session directory.
    public init(directory requested: String) throws(TraceError) {
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
        var text = try CTFTraceReader.readFile(metadataPath, limit: CTFTraceReader.metadataLimit)
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
        for name in names { contents.append(try CTFTraceReader.readFile(directory + "/" + name, limit: Int.max)) }
        streamBytes = contents
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

    /// All records, in timestamp order.
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

    /// The whole file as bytes.
    static func readFile(_ path: String, limit: Int) throws(TraceError) -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            let errno = error as? Errno
            throw TraceError(errno == .noSuchFileOrDirectory ? .notFound : .systemCallFailed, "cannot open \(path)", errno: errno)
        }
        defer { try? fd.close() }
        var bytes: [UInt8] = []
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
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > limit {
                throw TraceError(.corrupted, "\(path): byte offset \(limit): the file is larger than the \(limit) bytes accepted")
            }
        }
        return bytes
    }
}
