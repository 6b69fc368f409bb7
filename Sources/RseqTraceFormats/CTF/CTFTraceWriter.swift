#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import SystemPackage

/// Writes a CTF 1.8 trace directory: a text `metadata` file, one stream file per ring
/// (`channel0_<ring>`, the slow lane last) and, per stream file, an LTTng index file
/// (`index/channel0_<ring>.idx`, index format 1.1) listing its packets; readable by babeltrace2
/// and Trace Compass.
///
/// Feed it records in ring order (as a `TraceDrainer` delivers them), report each ring's
/// cumulative loss with `noteLost(ring:total:)`, then call `finish()`. Packets close when they
/// reach `packetCapacity` bytes or when a ring's loss count changes, so that babeltrace2 reports
/// discarded events near where they happened and its totals equal ours.
///
/// The directory is a readable trace at every moment, so that a recorder killed without warning
/// leaves what it wrote readable: the `metadata` is written when the writer is created, before
/// any stream file, and rewritten (a temporary file renamed over it) before any packet that
/// needs a change to it; `checkpoint()` writes the pending packets (e.g. once a second). Each
/// index file is complete (its header written to a hidden temporary file renamed into place)
/// before its stream file receives a packet, and a packet's index entry is appended after the
/// packet: an index never names a packet its stream file lacks, so `CTFTraceReader` can tell a
/// stream whose last packet was lost (fewer packets than its index lists) from one whose writer
/// was killed between a packet and its entry (trailing packets the index does not list yet).
public final class CTFTraceWriter {
    /// The trace directory; nil when the trace goes to a relay daemon only.
    public let directory: String?
    /// The relay daemon the trace is also (or only) sent to, if any: its `failure` says whether
    /// the connection was lost.
    public let relay: RelayTraceSink?
    /// Where packets and metadata go: the directory's files, the relay, or both.
    private let sinks: [any CTFPacketSink]
    /// What the metadata describes: the trace's identity and the event schemas written so far.
    public private(set) var description: CTFTraceDescription
    /// Bytes at which a packet closes.
    package let packetCapacity: Int
    /// Bytes of blocks a stream file of a trace directory reserves ahead of its packets at a time
    /// (`fallocate` keeping the file's size; given back when the trace is finished).
    package static let streamReserveStep: UInt64 = 8 << 20

    /// What was written.
    public struct Summary: Sendable {
        /// Event records written.
        public var events: UInt64
        /// Events reported lost (the sum over rings of their last `noteLost` totals).
        public var discarded: UInt64
        /// Packets written over all streams.
        public var packets: UInt64
        /// Bytes of the stream files.
        public var streamBytes: UInt64
        /// Bytes of the metadata file.
        public var metadataBytes: UInt64
        /// Stream bytes (packet headers included) per event.
        public var bytesPerEvent: Double { events == 0 ? 0 : Double(streamBytes) / Double(events) }
    }

    /// What a record reads and writes, in one stored property so that appending it is one access.
    private var state: WriterState
    private var unknownIDs = Set<UInt16>()
    /// The metadata text last written to the directory.
    private var writtenMetadata: String?
    /// Whether the description, the unknown ids or the malformed flag may have changed since
    /// `writtenMetadata`.
    private var metadataMayDiffer = true
    /// Whether `writtenMetadata` declares the malformed-payload event.
    private var metadataDeclaresMalformed = false
    /// The clock never changes after `init` (only the process and the schemas do): kept apart from
    /// `description` so that a record does not read the whole description.
    private let clock: CycleClock
    /// `clock`'s conversion to nanoseconds, with its reciprocal computed once.
    private let conversion: CycleConversion

    /// Creates `directory` (which must not exist yet, or be an empty directory).
    public convenience init(directory: String, description: CTFTraceDescription, packetCapacity: Int = 256 << 10) throws(TraceError) {
        try self.init(directory: directory, relay: nil, description: description, packetCapacity: packetCapacity)
    }

    /// Writes the trace to `directory` (created as by `init(directory:description:packetCapacity:)`),
    /// to `relay`, or to both; at least one of them.
    package init(directory: String?, relay: RelayTraceSink?, description: CTFTraceDescription,
                 packetCapacity: Int = 256 << 10) throws(TraceError) {
        precondition(directory != nil || relay != nil, "a trace needs a directory or a relay")
        self.directory = directory
        self.relay = relay
        self.description = description
        self.packetCapacity = max(4096, packetCapacity)
        self.clock = description.clock
        self.conversion = CycleConversion(description.clock)
        self.state = .lent
        var sinks: [any CTFPacketSink] = []
        if let directory {
            try CTFTraceWriter.prepareDirectory(directory)
            // The metadata first: the directory is a trace from the moment it holds a stream.
            let text = CTFMetadata.text(description, unknownIDs: [], malformedSeen: false)
            sinks.append(try CTFDirectorySink(directory: directory, ringCount: description.cpuRingCount, metadata: text))
        }
        if let relay { sinks.append(relay) }
        self.sinks = sinks
        self.state = WriterState(streams: (0...description.cpuRingCount).map { CTFStream(cpu: UInt32($0)) })
        // (The directory's metadata is written again, the relay's for the first time.)
        try syncMetadata()
    }

    /// The subdirectory holding the LTTng index files (`channel0_<ring>.idx`).
    static let indexDirectoryName = "index"

    /// The LTTng index file header: magic, index format 1.1, 72-byte entries (big-endian).
    static let indexHeader: [UInt8] = {
        var bytes: [UInt8] = []
        for value in [CTFTraceWriter.indexMagic, 1, 1, UInt32(CTFStream.indexEntrySize)] { bytes.appendBigEndian(value) }
        return bytes
    }()

    /// The magic number that opens an LTTng index file.
    static let indexMagic: UInt32 = 0xC1F1_DCC1

    /// Creates `index/<stream>.idx` holding the index header alone: written to a hidden temporary
    /// file renamed into place, so the index file is never seen without its header. Returns it
    /// opened for appending entries.
    static func createIndex(directory: String, stream: String) throws(TraceError) -> (fd: FileDescriptor, path: String) {
        let path = directory + "/" + indexDirectoryName + "/" + stream + ".idx"
        let temporary = directory + "/" + indexDirectoryName + "/." + stream + ".idx.tmp"
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(temporary), .writeOnly, options: [.create, .truncate, .append, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw TraceError(.systemCallFailed, "cannot create \(temporary): \(error)")
        }
        do {
            _ = try unsafe indexHeader.withUnsafeBytes { try unsafe fd.writeAll($0) }  // SAFETY: the array's own bytes
        } catch {
            try? fd.close()
            throw TraceError(.systemCallFailed, "cannot write \(temporary): \(error)")
        }
        // SAFETY: rename takes both paths by value.
        guard unsafe rename(temporary, path) == 0 else {
            let errno = Errno(rawValue: Glibc.errno)   // read before the message is built
            try? fd.close()
            throw TraceError(.systemCallFailed, "cannot rename \(temporary) to \(path)", errno: errno)
        }
        return (fd, path)
    }

    /// Creates `path` as the output directory, or accepts it if it exists and is empty: a trace is
    /// never mixed with or written over other files. With `replacingPreviousTrace`, a directory
    /// holding only a trace rseqtrace wrote (its `metadata`, `channel0_<n>` files and `index`
    /// directory of `channel0_<n>.idx` files) is emptied first — anything else in it is refused. Call early to fail before doing any work.
    /// - Returns: whether it created the directory (see `removeTrace(in:removingDirectory:)`).
    @discardableResult
    package static func prepareDirectory(_ path: String, replacingPreviousTrace: Bool = false) throws(TraceError) -> Bool {
        // SAFETY: mkdir takes the path by value.
        if unsafe mkdir(path, 0o755) == 0 { return true }
        do {
            let errno = Errno(rawValue: Glibc.errno)
            guard errno == .fileExists else {
                throw TraceError(.systemCallFailed, "cannot create output directory \(path)", errno: errno)
            }
            // Accept an existing empty directory only: never mix or overwrite traces.
            guard let entries = SystemInfo.directoryEntries(path) else {
                throw TraceError(.alreadyExists, "\(path) exists and is not a directory: choose another output directory")
            }
            guard !entries.isEmpty else { return false }
            let isOurTrace = entries.allSatisfy { CTFTraceWriter.isTraceFile($0) }
                && (!entries.contains(indexDirectoryName)
                    || CTFTraceWriter.indexEntries(in: path)?.allSatisfy(CTFTraceWriter.isIndexFile) == true)
                && (SystemInfo.readSmallFile(path + "/metadata")).map {
                    $0.hasPrefix(CTFMetadata.signature) && $0.contains("tracer_name = \"rseqtrace\";")
                } == true
            guard replacingPreviousTrace && isOurTrace else {
                throw TraceError(.alreadyExists, "output directory \(path) is not empty: choose another output directory or remove it")
            }
            for entry in CTFTraceWriter.indexEntries(in: path) ?? [] {
                let file = path + "/" + indexDirectoryName + "/" + entry
                // SAFETY: unlink takes the path by value; only the index files checked above.
                if unsafe unlink(file) != 0 {
                    let errno = Errno(rawValue: Glibc.errno)   // read before the message is built
                    throw TraceError(.systemCallFailed, "cannot replace the previous trace in \(path): cannot remove \(file)", errno: errno)
                }
            }
            for entry in entries {
                let file = path + "/" + entry
                // SAFETY: unlink and rmdir take the path by value; only the trace files listed above
                // (`index` is the directory emptied above).
                let removed = unsafe entry == indexDirectoryName ? rmdir(file) : unlink(file)
                if removed != 0 {
                    let errno = Errno(rawValue: Glibc.errno)   // read before the message is built
                    throw TraceError(.systemCallFailed, "cannot replace the previous trace in \(path)", errno: errno)
                }
            }
            return false
        }
    }

    /// The name of the temporary file the metadata is written to before it is renamed (hidden:
    /// trace readers skip it).
    static let metadataTemporaryName = ".metadata.tmp"

    /// Whether `name` is one of the files a writer creates in its directory (its `index`
    /// subdirectory included).
    static func isTraceFile(_ name: String) -> Bool {
        name == "metadata" || name == metadataTemporaryName || name == indexDirectoryName || isStreamName(name)
    }

    /// Whether `name` is a stream file's name, `channel0_<n>`.
    static func isStreamName<S: StringProtocol>(_ name: S) -> Bool {
        name.hasPrefix("channel0_") && Int(name.dropFirst(9)) != nil
    }

    /// Whether `name` is one of the files a writer creates in its `index` directory:
    /// `channel0_<n>.idx`, or the hidden temporary file `.channel0_<n>.idx.tmp` it is created as.
    static func isIndexFile(_ name: String) -> Bool {
        if name.hasPrefix("."), name.hasSuffix(".idx.tmp") { return isStreamName(name.dropFirst().dropLast(8)) }
        return name.hasSuffix(".idx") && isStreamName(name.dropLast(4))
    }

    /// The entries of `path/index`, nil when it is not a directory.
    static func indexEntries(in path: String) -> [String]? {
        SystemInfo.directoryEntries(path + "/" + indexDirectoryName)
    }

    /// Removes the trace files a writer creates in `path` (its `metadata`, `channel0_<n>` and
    /// `index/channel0_<n>.idx` files, and the `index` directory once empty), and the directory
    /// itself when `removingDirectory` and nothing else is left in it; e.g. after a recording
    /// failed, in a directory `prepareDirectory` created. Best effort.
    package static func removeTrace(in path: String, removingDirectory: Bool) {
        for entry in indexEntries(in: path) ?? [] where isIndexFile(entry) {
            // SAFETY: unlink takes the path by value.
            _ = unsafe unlink(path + "/" + indexDirectoryName + "/" + entry)
        }
        for entry in SystemInfo.directoryEntries(path) ?? [] where isTraceFile(entry) {
            // SAFETY: unlink and rmdir take the path by value; rmdir fails on a directory that is not empty.
            _ = unsafe entry == indexDirectoryName ? rmdir(path + "/" + entry) : unlink(path + "/" + entry)
        }
        // SAFETY: rmdir takes the path by value; it fails on a directory that is not empty.
        if removingDirectory { _ = unsafe rmdir(path) }
    }

    /// Names the traced process in the metadata (`procname`, `vpid`), e.g. once a recorder has
    /// started it.
    package func updateProcess(procname: String, pid: Int32) {
        description.procname = procname
        description.pid = pid
        metadataMayDiffer = true
    }

    /// Adds schemas registered since the writer was created. Ids already known keep their schema,
    /// and an id already written without a schema (as `rseqtrace:unknown_<id>`) stays so: its
    /// events in the streams are encoded that way.
    /// Names thread `threadID` in the metadata (written at the next checkpoint); at most
    /// `maximumThreadNames` threads are named.
    package func nameThread(_ threadID: Int32, _ name: String) {
        guard description.threadNames[threadID] != name,
              description.threadNames.count < CTFTraceWriter.maximumThreadNames || description.threadNames[threadID] != nil
        else { return }
        description.threadNames[threadID] = name
        metadataMayDiffer = true
    }

    /// Threads named in one trace's metadata at most (the metadata is rewritten when one is added).
    package static let maximumThreadNames = 4096

    package func updateSchemas(_ schemas: [UInt16: EventSchema]) {
        description.schemas.merge(schemas.filter { !unknownIDs.contains($0.key) }) { current, _ in current }
        metadataMayDiffer = true
    }

    /// Where schemas registered after `init` come from, if anywhere (e.g. the buffer's registry):
    /// before the first record of an id without a schema is written (as `rseqtrace:unknown_<id>`,
    /// for good), the writer calls it and adds what it returns, as `updateSchemas` does. Saves a
    /// caller checking `hasDecided` for every record.
    package var schemaSource: (() throws(TraceError) -> [UInt16: EventSchema])?

    /// Whether events of `id` are written with a schema (or were already written without one).
    package func hasDecided(_ id: UInt16) -> Bool {
        state.decisions[Int(id)].kind != .undecided || description.schemas[id] != nil
    }

    /// Appends one event to its ring's stream. `cycles` is the record's cycle-counter timestamp;
    /// `processID` and `threadID` name the thread that wrote it (the event context `vpid`, `vtid`).
    public func append(ring: Int, eventID: UInt16, cycles: UInt64, processID: Int32 = 0, threadID: Int32 = 0,
                       payload: [UInt8]) throws(TraceError) {
        // SAFETY: `Span.bytes` is unsafe for elements with padding; UInt8 has none.
        try unsafe append(ring: ring, eventID: eventID, cycles: cycles,
                          thread: CTFStream.thread(processID: processID, threadID: threadID), payload: payload.span.bytes)
    }

    /// Appends one event to its ring's stream, copying `payload` (e.g. a `DrainedRecord`'s, which
    /// is only valid during the drain callback) without first copying it to an array.
    package func append(ring: Int, eventID: UInt16, cycles: UInt64, thread: UInt64, payload: RawSpan) throws(TraceError) {
        // SAFETY: the span's bytes, read during the call only.
        try unsafe payload.withUnsafeBytes { (bytes) throws(TraceError) in
            // SAFETY: `bytes` is readable for the closure's duration.
            try unsafe append(ring: ring, eventID: eventID, cycles: cycles, thread: thread, bytes: bytes)
        }
    }

    /// Calls `body` with an appender holding the writer's per-record state for its duration (one
    /// drain round), so that appending a record does not go through the writer's stored properties.
    /// Inside `body`, use the appender (not the writer) until it returns.
    package func withAppender<Result, E: Error>(_ body: (inout Appender) throws(E) -> Result) throws(E) -> Result {
        var appender = Appender(writer: self, state: .lent, packetCapacity: packetCapacity, conversion: conversion)
        swap(&state, &appender.state)
        defer { swap(&state, &appender.state) }
        return try body(&appender)
    }

    /// Appends records with the writer's per-record state taken out of it (see `withAppender`),
    /// giving it back for the rare steps that need the writer (a new event id, a full packet).
    package struct Appender: ~Copyable {
        fileprivate let writer: CTFTraceWriter
        fileprivate var state: WriterState
        fileprivate let packetCapacity: Int
        fileprivate let conversion: CycleConversion

        /// Appends a batch of drained records of `ring` (`TraceDrainer.drainOnce(quiescent:batches:)`):
        /// each event of a fixed-size schema whose payload has that size (the common case) in one
        /// tight loop over the batch, anything else (an id seen for the first time, a variable-size or
        /// malformed payload, a full packet) through `append(ring:eventID:cycles:payload:)`.
        /// The records' payloads must be readable during the call (the drainer's promise).
        package mutating func append(ring: Int, records: UnsafeBufferPointer<VisitedRecord>) throws(TraceError) {
            var index = 0
            while index < records.count {
                // SAFETY: the records' payloads are readable during this call (the caller's promise).
                index = unsafe state.appendFixedSize(ring: ring, records: records, from: index, conversion: conversion,
                                                     packetCapacity: packetCapacity)
                if state.streams[ring].eventBytes >= packetCapacity {
                    try returningState { (writer) throws(TraceError) in try writer.flush(ring) }
                }
                guard index < records.count else { break }
                // SAFETY: as above.
                let record = unsafe records[index]
                // SAFETY: as above; the span does not outlive this statement.
                let payload = unsafe RawSpan(_unsafeBytes: UnsafeRawBufferPointer(
                    start: record.payload, count: record.word.length &- TraceLayout.recordHeaderSize))
                try append(ring: ring, eventID: record.word.eventID, cycles: record.timestamp, thread: record.thread,
                           payload: payload)
                index += 1
            }
        }

        /// As `CTFTraceWriter.append(ring:eventID:cycles:payload:)`.
        package mutating func append(ring: Int, eventID: UInt16, cycles: UInt64, thread: UInt64,
                                     payload: RawSpan) throws(TraceError) {
            let timestamp = conversion.monotonicNanoseconds(cycles)
            while true {
                // SAFETY: the span's bytes, read during the call only.
                let pending = unsafe payload.withUnsafeBytes { bytes in
                    // SAFETY: `bytes` is readable for the closure's duration.
                    unsafe state.append(ring: ring, eventID: eventID, timestamp: timestamp, thread: thread, payload: bytes)
                }
                if pending < 0 {
                    try returningState { (writer) throws(TraceError) in try writer.decide(eventID) }
                    continue
                }
                if pending >= packetCapacity {
                    try returningState { (writer) throws(TraceError) in try writer.flush(ring) }
                }
                return
            }
        }

        /// Runs `body` with the state back in the writer.
        package mutating func returningState<Result, E: Error>(_ body: (CTFTraceWriter) throws(E) -> Result) throws(E) -> Result {
            swap(&writer.state, &state)
            defer { swap(&writer.state, &state) }
            return try body(writer)
        }
    }

    /// The common part of both `append`s: `bytes` must be readable during the call.
    @unsafe
    private func append(ring: Int, eventID: UInt16, cycles: UInt64, thread: UInt64,
                        bytes: UnsafeRawBufferPointer) throws(TraceError) {
        let timestamp = conversion.monotonicNanoseconds(cycles)
        while true {
            // SAFETY: `bytes` is readable during this call (the caller's promise).
            let pending = unsafe state.append(ring: ring, eventID: eventID, timestamp: timestamp, thread: thread, payload: bytes)
            if pending < 0 {
                try decide(eventID)
                continue
            }
            if pending >= packetCapacity { try flush(ring) }
            return
        }
    }

    /// Fixes how events of `id` are written: with their schema when there is one now, else as
    /// `rseqtrace:unknown_<id>` for good (`updateSchemas` then ignores a schema for it).
    private func decide(_ id: UInt16) throws(TraceError) {
        if description.schemas[id] == nil, let schemaSource { updateSchemas(try schemaSource()) }
        let encoding: EventEncoding
        if let schema = description.schemas[id] {
            if let size = schema.fixedPayloadSize {
                encoding = EventEncoding(kind: .fixed, hasText: false, value: UInt32(size), count: 0)
            } else {
                let start = state.fieldLayouts.count
                state.fieldLayouts.append(contentsOf: schema.fields.map { PayloadFieldShape($0.type) })
                encoding = EventEncoding(kind: .variable, hasText: schema.hasStringField, value: UInt32(start),
                                         count: UInt32(schema.fields.count))
            }
        } else {
            unknownIDs.insert(id)
            metadataMayDiffer = true
            encoding = EventEncoding(kind: .unknown, hasText: false, value: 0, count: 0)
        }
        state.decisions[Int(id)] = encoding
    }

    /// Records that `total` events were lost so far on `ring` (a cumulative, never decreasing
    /// count). Closes the current packet first if the count changed, so that the loss is reported
    /// after the events that preceded it.
    public func noteLost(ring: Int, total: UInt64) throws(TraceError) {
        guard total != state.streams[ring].lostReported && total != state.streams[ring].lostPending else { return }
        if state.streams[ring].eventBytes > 0 { try flush(ring) }
        state.streams[ring].lostPending = max(state.streams[ring].lostPending, total)
    }

    /// Writes the pending packets of every ring (and the metadata first, if it changed), so that
    /// the directory holds every event appended so far as a readable trace.
    ///
    /// With a live relay session, call it at least once per live timer period: it also opens
    /// every stream that has no packet yet with an empty one, and sends a live beacon for each
    /// stream that had no packet since the previous checkpoint, saying that it holds no event
    /// before that checkpoint (a record drained later with an earlier timestamp is written at
    /// that time, as the writer already keeps each stream's clock from going back).
    public func checkpoint() throws(TraceError) {
        precondition(!state.finished, "checkpoint after finish")
        for ring in state.streams.indices {
            let stream = state.streams[ring]
            if stream.eventBytes > 0 || stream.lostPending != stream.lostReported { try flush(ring) }
        }
        // Not once the relay connection is lost: a beacon moves its stream's clock forward, which
        // would then only shift the local copy's late records for nobody.
        if let relay, relay.isLive, relay.failure == nil { try liveCheckpoint(relay) }
        try syncMetadata()
    }

    /// When the previous checkpoint of a live session ran (trace clock nanoseconds), and the
    /// packet count of each stream then.
    private var previousLiveCheckpoint: (time: UInt64, sequences: [UInt64])?

    /// The live part of `checkpoint()`: a live viewer reads the streams in time order, waiting for
    /// a stream until it has a packet or a beacon for the time it wants.
    private func liveCheckpoint(_ relay: RelayTraceSink) throws(TraceError) {
        let now = conversion.monotonicNanoseconds(CycleClock.now())
        // The relay ignores a beacon for a stream without a packet.
        for ring in state.streams.indices where state.streams[ring].sequence == 0 { try flush(ring) }
        if let previous = previousLiveCheckpoint {
            for ring in state.streams.indices where state.streams[ring].sequence == previous.sequences[ring] {
                // Each stream's beacon a nanosecond earlier than the previous stream's: babeltrace2
                // warns about the order of inactivity messages with the same time.
                let end = max(previous.time &- UInt64(ring), state.streams[ring].end)
                state.streams[ring].end = end
                relay.sendBeacon(ring: ring, timestampEnd: end)
            }
        }
        previousLiveCheckpoint = (now, state.streams.map(\.sequence))
    }

    /// Writes the remaining packets and the final metadata file.
    @discardableResult
    public func finish() throws(TraceError) -> Summary {
        try checkpoint()
        state.finished = true
        metadataMayDiffer = true
        try syncMetadata()
        for sink in sinks { try sink.close() }
        var summary = Summary(events: 0, discarded: 0, packets: 0, streamBytes: 0,
                              metadataBytes: UInt64(writtenMetadata?.utf8.count ?? 0))
        for s in state.streams {
            summary.events += s.eventCount
            summary.discarded += s.lostReported
            summary.packets += s.sequence
            summary.streamBytes += s.bytesWritten
        }
        return summary
    }

    // MARK: - Packets

    static let headerSize = CTFLayout.headerSize

    /// Writes the metadata if what it describes changed since it was last written (the directory
    /// rewrites it through a temporary file renamed over `metadata`, so a reader, or a recorder
    /// killed meanwhile, sees the old or the new text, never a part).
    private func syncMetadata() throws(TraceError) {
        guard metadataMayDiffer else { return }
        let text = CTFMetadata.text(description, unknownIDs: unknownIDs, malformedSeen: state.malformedSeen)
        metadataMayDiffer = false
        guard text != writtenMetadata else { return }
        for sink in sinks { try sink.writeMetadata(text) }
        writtenMetadata = text
        metadataDeclaresMalformed = state.malformedSeen
    }

    private func flush(_ ring: Int) throws(TraceError) {
        // A packet may hold the first events of an id, or a malformed payload: the metadata that
        // describes them reaches the directory before it.
        if state.malformedSeen && !metadataDeclaresMalformed { metadataMayDiffer = true }
        try syncMetadata()
        try state.streams[ring].flush(ring: ring, uuid: description.uuid, monotonicReference: clock.monotonicReference,
                                      to: sinks)
    }
}

/// The writer's per-record state.
struct WriterState {
    var streams: [CTFStream]
    /// How each event id is written, by id, decided on its first record (`CTFTraceWriter.decide`):
    /// a lookup instead of hashing per record. `.undecided` until then.
    var decisions: [EventEncoding]
    /// The fields of the variable-sized schemas decided so far, each schema a range of it.
    var fieldLayouts: [PayloadFieldShape] = []
    var malformedSeen = false
    var finished = false

    init(streams: [CTFStream]) {
        self.streams = streams
        self.decisions = [EventEncoding](repeating: .undecided, count: Int(UInt16.max) + 1)
    }

    /// What a writer holds while an `Appender` has its state: nothing (no allocation).
    private init() {
        self.streams = []
        self.decisions = []
    }

    static var lent: WriterState { WriterState() }

    /// Appends the events of `records` from `start` on to ring `ring`'s stream as long as each is
    /// of a decided fixed-size id with a payload of that size and the packet is below
    /// `packetCapacity`; returns the index of the first record it did not append.
    @unsafe
    mutating func appendFixedSize(ring: Int, records: UnsafeBufferPointer<VisitedRecord>, from start: Int,
                                  conversion: CycleConversion, packetCapacity: Int) -> Int {
        precondition(!finished, "append after finish")
        // SAFETY: `decisions` has one entry per 16-bit id and is not resized during the call.
        return unsafe decisions.withUnsafeBufferPointer { decisions in
            // SAFETY: the records' payloads are readable (the caller's promise).
            unsafe streams[ring].appendFixedSize(records, from: start, decisions: decisions, conversion: conversion,
                                                 packetCapacity: packetCapacity)
        }
    }

    /// Appends one event to its ring's stream; returns the packet's event bytes so far, or -1
    /// (nothing written) when `eventID` is not decided yet. `payload` must be readable.
    @unsafe
    mutating func append(ring: Int, eventID: UInt16, timestamp: UInt64, thread: UInt64,
                         payload bytes: UnsafeRawBufferPointer) -> Int {
        precondition(!finished, "append after finish")
        let encoding = decisions[Int(eventID)]
        if encoding.kind == .undecided { return -1 }
        // A payload that does not match its schema would make the whole stream unreadable: keep
        // it, with its id, as a malformed-payload event instead.
        let malformed: Bool
        var convertText = false
        switch encoding.kind {
        case .unknown, .undecided:  // (.undecided returned above)
            malformed = false
        case .fixed:
            // Every field has a fixed size: `EventSchema.matches` is a size compare.
            malformed = bytes.count != Int(encoding.value)
        case .variable:
            let fields = fieldLayouts[Int(encoding.value)..<Int(encoding.value + encoding.count)]
            malformed = !PayloadFieldShape.matches(size: bytes.count, fields) { offset in
                // SAFETY: `bytes` is readable during this call (the caller's promise), and `matches`
                // reads a count only at `offset + 2 <= bytes.count`.
                unsafe Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            }
            convertText = !malformed && encoding.hasText
        }
        if malformed { malformedSeen = true }
        let fields = convertText ? fieldLayouts[Int(encoding.value)..<Int(encoding.value + encoding.count)] : []
        // SAFETY: `bytes` is readable during this call (the caller's promise).
        return unsafe streams[ring].append(
            eventID: eventID, timestamp: timestamp, thread: thread, malformed: malformed,
            lengthPrefixed: encoding.kind == .unknown || malformed, convertingText: fields, payload: bytes)
    }
}

/// How the events of one id are written.
struct EventEncoding: BitwiseCopyable {
    enum Kind: UInt8, BitwiseCopyable {
        /// No record of the id yet.
        case undecided
        /// No schema: `rseqtrace:unknown_<id>`, the payload after its 32-bit length.
        case unknown
        /// Every field fixed-size: `value` is the payload size.
        case fixed
        /// `value` is the first of the schema's `count` fields in `fieldLayouts`.
        case variable
    }
    var kind: Kind
    /// Whether the schema has a string field (converted to a NUL-terminated CTF string).
    var hasText: Bool
    var value: UInt32
    var count: UInt32

    static let undecided = EventEncoding(kind: .undecided, hasText: false, value: 0, count: 0)
}

/// Per-ring state of a stream being written. A value in the writer's `streams`, so that appending
/// a record is one access to that array.
struct CTFStream {
    let cpu: UInt32
    /// `CTFTraceWriter.headerSize` bytes for the packet header, then the packet's `eventBytes`
    /// bytes of events; longer (zeros) so that an event is stored without growing it.
    var buffer: [UInt8]
    var eventBytes = 0
    var begin: UInt64 = 0
    var end: UInt64 = 0
    var last: UInt64 = 0
    var sequence: UInt64 = 0
    var lostPending: UInt64 = 0
    var lostReported: UInt64 = 0
    var eventCount: UInt64 = 0
    var bytesWritten: UInt64 = 0
    /// `eventCount` when the last packet was written.
    var eventsWritten: UInt64 = 0

    init(cpu: UInt32) {
        self.cpu = cpu
        self.buffer = [UInt8](repeating: 0, count: CTFTraceWriter.headerSize + 4096)
    }

    /// The most bytes an event adds to its payload: extended header (13), context (8), original
    /// id (2), length (4).
    static let maximumEventOverhead = 13 + CTFLayout.eventContextSize + 2 + 4

    /// The event context's 8 bytes as one little-endian word: `_vpid` then `_vtid`, from a
    /// writer's `pid << 32 | tid` (`VisitedRecord.thread`).
    @inline(__always)
    static func contextWord(_ thread: UInt64) -> UInt64 { (thread >> 32 | thread << 32).littleEndian }

    /// `pid << 32 | tid`.
    static func thread(processID: Int32, threadID: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: processID)) << 32 | UInt64(UInt32(bitPattern: threadID))
    }

    /// Appends one event; returns the packet's event bytes so far. With `convertingText` (the
    /// schema's fields; the payload matches them) each text field is written as CTF wants it: its
    /// bytes up to the first NUL, then a NUL. That is never longer than the field in the payload.
    @unsafe
    mutating func append(eventID: UInt16, timestamp: UInt64, thread: UInt64, malformed: Bool, lengthPrefixed: Bool,
                         convertingText fields: ArraySlice<PayloadFieldShape>, payload: UnsafeRawBufferPointer) -> Int {
        if eventBytes == 0 { begin = max(timestamp, end) }
        let previous = eventBytes == 0 ? begin : last
        let stamp = max(timestamp, previous)   // a stream's clock never goes back
        let writtenID = malformed ? CTFMetadata.malformedEventID : eventID
        let needed = CTFTraceWriter.headerSize + eventBytes + CTFStream.maximumEventOverhead + payload.count
        if buffer.count < needed {
            buffer.append(contentsOf: repeatElement(0, count: max(needed - buffer.count, buffer.count)))
        }
        let start = CTFTraceWriter.headerSize + eventBytes
        // SAFETY: the buffer has room for the event (grown above); `payload` is readable (the caller's promise).
        let end = unsafe buffer.withUnsafeMutableBytes { out in
            // SAFETY: within the room made above (at least `maximumEventOverhead` bytes from `start`).
            var at = unsafe CTFStream.storeHeader(id: UInt32(writtenID), stamp: stamp, previous: previous,
                                                  to: out.baseAddress!, at: start)
            // SAFETY: within the room made above.
            unsafe out.storeBytes(of: CTFStream.contextWord(thread), toByteOffset: at, as: UInt64.self)
            at += CTFLayout.eventContextSize
            if malformed {
                // SAFETY: within the room made above.
                unsafe out.storeBytes(of: eventID.littleEndian, toByteOffset: at, as: UInt16.self)
                at += 2
            }
            if lengthPrefixed {
                // SAFETY: within the room made above.
                unsafe out.storeBytes(of: UInt32(payload.count).littleEndian, toByteOffset: at, as: UInt32.self)
                at += 4
            }
            if fields.isEmpty {
                // SAFETY: `payload.count` bytes fit after `at` (the room made above); `payload` is readable.
                unsafe UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + payload.count)]).copyMemory(from: payload)
                return at + payload.count
            }
            // SAFETY: the payload matches `fields` (checked by the caller); the output is never longer.
            return unsafe CTFStream.copyConvertingText(payload, fields, to: out, at: at)
        }
        eventBytes = end - CTFTraceWriter.headerSize
        last = stamp
        eventCount += 1
        return eventBytes
    }

    /// Stores the header of an event of `id` at `stamp`, the stream's clock being at `previous`, at
    /// offset `at` of `base`: compact (id and the timestamp's low bits in one 32-bit word) when the id
    /// fits and the timestamp moved less than the compact field can count, extended otherwise.
    /// Returns the offset after it.
    @unsafe @inline(__always)
    static func storeHeader(id: UInt32, stamp: UInt64, previous: UInt64, to base: UnsafeMutableRawPointer,
                            at: Int) -> Int {
        let compactLimit = UInt64(1) << CTFLayout.compactTimestampBits
        if id < CTFMetadata.extendedID && stamp &- previous < compactLimit {
            let low = UInt32(truncatingIfNeeded: stamp) & UInt32(compactLimit &- 1)
            // SAFETY: the caller made room for `maximumEventOverhead` bytes at `at`.
            unsafe base.storeBytes(of: (id | low << CTFLayout.compactIDBits).littleEndian, toByteOffset: at, as: UInt32.self)
            return at &+ 4
        }
        // SAFETY: as above.
        unsafe base.storeBytes(of: UInt8(CTFMetadata.extendedID), toByteOffset: at, as: UInt8.self)
        // SAFETY: as above.
        unsafe base.storeBytes(of: id.littleEndian, toByteOffset: at &+ 1, as: UInt32.self)
        // SAFETY: as above.
        unsafe base.storeBytes(of: stamp.littleEndian, toByteOffset: at &+ 5, as: UInt64.self)
        return at &+ 13
    }

    /// The batch loop of `WriterState.appendFixedSize`: the same bytes `append` writes for each
    /// event of a fixed-size id with a matching payload, without a call per event. A payload is
    /// copied in 8-byte words: a record occupies its length rounded up to 8 bytes, so the last
    /// word stays inside the record, and the buffer keeps `maximumEventOverhead + 8` bytes of room.
    /// The id and length of the last record that qualified are kept, so a run of records of one
    /// event (the common case) looks its encoding up once.
    @unsafe
    mutating func appendFixedSize(_ records: UnsafeBufferPointer<VisitedRecord>, from start: Int,
                                  decisions: UnsafeBufferPointer<EventEncoding>, conversion: CycleConversion,
                                  packetCapacity: Int) -> Int {
        let headerSize = CTFTraceWriter.headerSize
        var index = start
        var eventBytes = self.eventBytes
        var last = self.last
        // SAFETY: every store below is checked against the buffer's count first.
        unsafe buffer.withUnsafeMutableBytes { out in
            guard let base = out.baseAddress else { return }
            // An event of `size` payload bytes fits when `eventBytes + size <= room` (its header,
            // context and the last word of its payload copy included).
            let room = out.count &- headerSize &- CTFStream.maximumEventOverhead &- 8
            // The id and length bits of the record word whose encoding was last checked.
            let keyMask: UInt64 = 0x0000_FFFF_00FF_FFFF
            var checkedKey = UInt64.max
            if eventBytes == 0 && index < records.count {
                // SAFETY: index < records.count.
                begin = max(conversion.monotonicNanoseconds(unsafe records[index].timestamp), end)
                last = begin
            }
            while index < records.count && eventBytes < packetCapacity {
                // SAFETY: index < records.count.
                let record = unsafe records[index]
                let word = record.word.rawValue
                let size = Int(truncatingIfNeeded: word & 0xFF_FFFF) &- TraceLayout.recordHeaderSize
                if word & keyMask != checkedKey {
                    // SAFETY: one entry per 16-bit id.
                    let encoding = unsafe decisions[Int(record.word.eventID)]
                    guard encoding.kind == .fixed, size == Int(encoding.value) else { break }
                    checkedKey = word & keyMask
                }
                guard eventBytes &+ size <= room else { break }
                let stamp = max(conversion.monotonicNanoseconds(record.timestamp), last)   // never goes back
                // SAFETY: room checked above.
                let header = unsafe CTFStream.storeHeader(id: UInt32(record.word.eventID), stamp: stamp, previous: last,
                                                          to: base, at: headerSize &+ eventBytes)
                // SAFETY: room checked above (maximumEventOverhead counts the context).
                unsafe base.storeBytes(of: CTFStream.contextWord(record.thread), toByteOffset: header, as: UInt64.self)
                let at = header &+ CTFLayout.eventContextSize
                var copied = 0
                while copied < size {
                    // SAFETY: within the record's occupied size (a multiple of 8 from its start), which
                    // is readable; the store is within the room checked above.
                    let payloadWord = unsafe record.payload.loadUnaligned(fromByteOffset: copied, as: UInt64.self)
                    // SAFETY: as above.
                    unsafe base.storeBytes(of: payloadWord, toByteOffset: at &+ copied, as: UInt64.self)
                    copied &+= 8
                }
                eventBytes = at &+ size &- headerSize
                last = stamp
                index &+= 1
            }
        }
        eventCount &+= UInt64(index &- start)
        self.eventBytes = eventBytes
        self.last = last
        return index
    }

    /// Copies a payload that matches `fields` to `out` at `at`, each text field as its bytes up to
    /// the first NUL then a NUL; returns the offset after it.
    @unsafe
    static func copyConvertingText(_ payload: UnsafeRawBufferPointer, _ fields: ArraySlice<PayloadFieldShape>,
                                   to out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var at = start
        var offset = 0
        for field in fields {
            var size = Int(field.fixed)
            if size < 0 {
                // SAFETY: the payload matches `fields`, so the count is present.
                let count = unsafe Int(payload[offset]) | Int(payload[offset + 1]) << 8
                if field.isString {
                    // SAFETY: the payload matches `fields`, so `count` bytes follow the count (and
                    // the payload, holding at least the count, has a base address).
                    let text = unsafe payload.baseAddress! + offset + 2
                    // SAFETY: memchr reads at most `count` bytes from `text`, all readable (above).
                    let nul = unsafe memchr(text, 0, count)
                    // SAFETY: `nul`, when found, points into those `count` bytes.
                    let length = unsafe nul.map { unsafe UnsafeRawPointer($0) - text } ?? count
                    // SAFETY: `length` <= `count` bytes of the payload, to room in `out` (the caller's promise).
                    unsafe UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + length)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[(offset + 2)..<(offset + 2 + length)]))
                    // SAFETY: room in `out` (the caller's promise).
                    unsafe out[at + length] = 0
                    at += length + 1
                    offset += 2 + count
                    continue
                }
                size = 2 + count
            }
            // SAFETY: the payload matches `fields`, so `size` bytes are present; room in `out` (the caller's promise).
            unsafe UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + size)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + size)]))
            at += size
            offset += size
        }
        return at
    }

    /// Writes the pending events as a packet (after an empty one saying 0 discarded events, if the
    /// stream has lost events before its first packet).
    mutating func flush(ring: Int, uuid: [UInt8], monotonicReference: UInt64, to sinks: [any CTFPacketSink]) throws(TraceError) {
        let hasEvents = eventBytes > 0
        let begin = hasEvents ? self.begin : max(end, self.begin, monotonicReference)
        let end = hasEvents ? last : begin
        if sequence == 0 && lostPending > 0 {
            // A reader cannot know where a stream's discarded-events counter started, so it only
            // reports a count between two packets: open every stream with a packet saying 0.
            let packet = header(ring: ring, uuid: uuid, eventBytes: 0, begin: begin, end: begin, discarded: 0)
            try write(packet, count: packet.count, ring: ring, begin: begin, end: begin, discarded: 0, to: sinks)
        }
        let header = header(ring: ring, uuid: uuid, eventBytes: eventBytes, begin: begin, end: end,
                            discarded: lostPending)
        buffer.replaceSubrange(0..<CTFTraceWriter.headerSize, with: header)
        try write(buffer, count: CTFTraceWriter.headerSize + eventBytes, ring: ring, begin: begin, end: end,
                  discarded: lostPending, to: sinks)
        lostReported = lostPending
        self.end = end
        self.begin = end
        eventBytes = 0
    }

    /// The packet header and context, field by field in the order of `CTFLayout.packetHeader` and
    /// `CTFLayout.packetContext`.
    private func header(ring: Int, uuid: [UInt8], eventBytes: Int, begin: UInt64, end: UInt64,
                        discarded: UInt64) -> [UInt8] {
        var packet: [UInt8] = []
        packet.reserveCapacity(CTFTraceWriter.headerSize)
        packet.appendLittleEndian(CTFMetadata.packetMagic)
        packet.append(contentsOf: uuid.prefix(16))
        packet.appendLittleEndian(UInt32(0))                  // stream_id
        packet.appendLittleEndian(UInt64(ring))               // stream_instance_id
        let bits = UInt64(CTFTraceWriter.headerSize + eventBytes) * 8
        packet.appendLittleEndian(begin)                      // timestamp_begin
        packet.appendLittleEndian(end)                        // timestamp_end
        packet.appendLittleEndian(bits)                       // content_size
        packet.appendLittleEndian(bits)                       // packet_size
        packet.appendLittleEndian(sequence)                   // packet_seq_num
        packet.appendLittleEndian(discarded)                  // events_discarded
        packet.appendLittleEndian(cpu)                        // cpu_id
        return packet
    }

    /// Bytes of an LTTng index 1.1 entry: nine big-endian 64-bit fields.
    static let indexEntrySize = 72

    /// Writes the first `count` bytes of `bytes` as one packet (whose header holds `begin`, `end`
    /// and `discarded`) to each sink, with its index entry (after the packet).
    private mutating func write(_ bytes: [UInt8], count: Int, ring: Int, begin: UInt64, end: UInt64,
                                discarded: UInt64, to sinks: [any CTFPacketSink]) throws(TraceError) {
        let bits = UInt64(count) * 8
        let entry = CTFPacketIndexEntry(offset: bytesWritten, packetBits: bits, contentBits: bits, begin: begin,
                                        end: end, discarded: discarded, streamID: 0, streamInstanceID: UInt64(ring),
                                        sequence: sequence, events: eventCount - eventsWritten)
        for sink in sinks { try sink.writePacket(ring: ring, bytes[0..<count], entry: entry) }
        bytesWritten += UInt64(count)
        eventsWritten = eventCount
        sequence += 1
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        for i in (0..<MemoryLayout<T>.size).reversed() {
            append(UInt8(truncatingIfNeeded: value >> (8 * i)))
        }
    }

    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        for _ in 0..<MemoryLayout<T>.size {
            append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }
}
