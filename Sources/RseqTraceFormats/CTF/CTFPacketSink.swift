#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import SystemPackage

/// One packet as an LTTng index entry describes it (`struct ctf_packet_index`): sizes in bits.
package struct CTFPacketIndexEntry: Sendable, Equatable {
    /// Byte offset of the packet in its stream file.
    package var offset: UInt64
    package var packetBits: UInt64
    package var contentBits: UInt64
    package var begin: UInt64
    package var end: UInt64
    package var discarded: UInt64
    /// The CTF stream class id (0).
    package var streamID: UInt64
    /// The stream's `stream_instance_id` (its ring).
    package var streamInstanceID: UInt64
    /// The packet's `packet_seq_num`.
    package var sequence: UInt64
    /// Events in the packet (not part of the index entry).
    package var events: UInt64

    /// The 72-byte big-endian entry of an LTTng index 1.1 file.
    var bytes: [UInt8] {
        var entry: [UInt8] = []
        entry.reserveCapacity(CTFStream.indexEntrySize)
        for value in [offset, packetBits, contentBits, begin, end, discarded, streamID, streamInstanceID, sequence] {
            entry.appendBigEndian(value)
        }
        return entry
    }
}

/// Where a `CTFTraceWriter` puts what it writes: the metadata text whenever it changes (before
/// any packet that needs the change) and each closed packet of each stream. The trace directory
/// (`CTFDirectorySink`) and a relay daemon (`RelayTraceSink`) receive the same calls.
package protocol CTFPacketSink: AnyObject {
    /// The whole metadata text, changed since the last call.
    func writeMetadata(_ text: String) throws(TraceError)
    /// One packet of stream `ring` (`bytes` holds its header and events), then its index entry.
    func writePacket(ring: Int, _ bytes: ArraySlice<UInt8>, entry: CTFPacketIndexEntry) throws(TraceError)
    /// No more packets or metadata will come.
    func close() throws(TraceError)
}

/// Writes a trace directory: `metadata` (rewritten through a temporary file renamed over it),
/// one `channel0_<ring>` file per stream and its index `index/channel0_<ring>.idx` (created
/// complete with its header before the stream file receives a packet; an entry appended after its
/// packet).
///
/// A stream file's blocks are reserved ahead of its packets (`BlockReserve`: the file's size stays
/// that of its packets, so a reader never sees the reserve): a write into reserved blocks skips the
/// file system's block reservation for each page, about a fifth of what writing through the page
/// cache costs here. `close()` (and deinit) gives the unused reserve back; the stream files of a
/// process killed while writing keep at most one step each of reserved blocks past their end, until
/// they are removed or truncated.
/// A file system that cannot reserve (or a full one) is written without.
final class CTFDirectorySink: CTFPacketSink {
    let directory: String
    private var streams: [Stream] = []
    /// Whether stream files are still given reserves (false after the file system refused one).
    private var preallocates = true

    private struct Stream {
        let fd: FileDescriptor
        let path: String
        let index: FileDescriptor
        let indexPath: String
        /// Bytes of packets written to the stream file.
        var written: UInt64 = 0
        var reserve = BlockReserve()
    }

    /// Writes `metadata`, then creates the `index` directory and the stream and index files of
    /// rings `0...ringCount` in `directory`: the directory is a trace from the moment it holds a
    /// stream.
    init(directory: String, ringCount: Int, metadata: String) throws(TraceError) {
        self.directory = directory
        try writeMetadata(metadata)
        // SAFETY: mkdir takes the path by value.
        if unsafe mkdir(directory + "/" + CTFTraceWriter.indexDirectoryName, 0o755) != 0 {
            let errno = Errno(rawValue: Glibc.errno)   // read before the message is built
            throw TraceError(.systemCallFailed, "cannot create \(directory)/\(CTFTraceWriter.indexDirectoryName)", errno: errno)
        }
        for ring in 0...ringCount {
            let path = directory + "/channel0_\(ring)"
            let fd = try OutputFile.create(path)
            do throws(TraceError) {
                let index = try CTFTraceWriter.createIndex(directory: directory, stream: "channel0_\(ring)")
                streams.append(Stream(fd: fd, path: path, index: index.fd, indexPath: index.path))
            } catch {
                try? fd.close()
                throw error
            }
        }
    }

    deinit {
        releaseReserves()
        for s in streams { try? s.fd.close(); try? s.index.close() }
    }

    /// Gives back the blocks each stream file reserved past its end.
    private func releaseReserves() {
        for index in streams.indices { streams[index].reserve.release(streams[index].fd.rawValue) }
    }

    /// Reserves blocks for the stream file of `ring` up to at least `end`.
    private func reserve(_ ring: Int, through end: UInt64) {
        guard preallocates else { return }
        // Unsupported here, or no room: plain writes from now on.
        if !streams[ring].reserve.extend(streams[ring].fd.rawValue, through: end) { preallocates = false }
    }

    func writeMetadata(_ text: String) throws(TraceError) {
        let temporary = directory + "/" + CTFTraceWriter.metadataTemporaryName
        let path = directory + "/metadata"
        let bytes = Array(text.utf8)
        do {
            let fd = try FileDescriptor.open(FilePath(temporary), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: [.ownerReadWrite, .groupRead, .otherRead])
            defer { try? fd.close() }
            _ = try unsafe bytes.withUnsafeBytes { try unsafe fd.writeAll($0) }  // SAFETY: the array's own bytes
        } catch {
            throw TraceError(.systemCallFailed, "cannot write \(temporary): \(error)")
        }
        // SAFETY: rename takes both paths by value.
        guard unsafe rename(temporary, path) == 0 else {
            let errno = Errno(rawValue: Glibc.errno)   // read before the message is built
            throw TraceError(.systemCallFailed, "cannot rename \(temporary) to \(path)", errno: errno)
        }
    }

    func writePacket(ring: Int, _ bytes: ArraySlice<UInt8>, entry: CTFPacketIndexEntry) throws(TraceError) {
        reserve(ring, through: streams[ring].written &+ UInt64(bytes.count))
        let stream = streams[ring]
        do {
            // SAFETY: the slice's own bytes.
            _ = try unsafe bytes.withUnsafeBytes { try unsafe stream.fd.writeAll($0) }
        } catch {
            throw TraceError(.systemCallFailed, "cannot write \(stream.path): \(error)")
        }
        streams[ring].written &+= UInt64(bytes.count)
        do {
            // SAFETY: the array's own bytes. The file is opened with O_APPEND: the entry lands at its end.
            _ = try unsafe entry.bytes.withUnsafeBytes { try unsafe stream.index.writeAll($0) }
        } catch {
            throw TraceError(.systemCallFailed, "cannot write \(stream.indexPath): \(error)")
        }
    }

    func close() throws(TraceError) {
        releaseReserves()
    }
}
