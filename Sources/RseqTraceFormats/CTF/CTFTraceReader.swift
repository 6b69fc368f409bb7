#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import SystemPackage

/// Reads a CTF 1.8 trace directory written by `CTFTraceWriter`: validates its `metadata`, then
/// decodes the events of its stream files, merged in timestamp order or one stream at a time.
///
/// Every file is read into memory when the reader is created; decoding is lazy. Malformed input
/// throws `TraceError(.corrupted)` whose message names the file, the byte offset and the problem.
public final class CTFTraceReader {
    public let directory: String
    public let metadata: CTFTraceMetadata
    /// Stream file names (`channel0_<n>`), in numeric order.
    public let streamNames: [String]
    private let streamBytes: [[UInt8]]

    /// Largest metadata file accepted (the text of thousands of event declarations fits easily).
    public static let metadataLimit = 16 << 20

    public init(directory: String) throws(TraceError) {
        self.directory = directory
        guard let entries = SystemInfo.directoryEntries(directory) else {
            throw TraceError(.notFound, "cannot open trace directory \(directory): it does not exist or is not a directory")
        }
        guard entries.contains("metadata") else {
            throw TraceError(.notFound, "\(directory)/metadata: no such file: \(directory) is not a CTF trace directory")
        }
        let metadataPath = directory + "/metadata"
        let text = try CTFTraceReader.readFile(metadataPath, limit: CTFTraceReader.metadataLimit)
        metadata = try CTFMetadataParser.parse(text, path: metadataPath)
        let names = entries.filter { $0 != "metadata" && !$0.hasPrefix(".") }.sorted(by: CTFTraceReader.streamOrder)
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
