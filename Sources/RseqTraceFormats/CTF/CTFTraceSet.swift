import RseqTrace

/// Several CTF traces read as one: a directory whose immediate subdirectories are traces of
/// different processes (what `rseqtrace attach PID... -o DIR` writes: `DIR/<program>-<pid>/`), or
/// a single trace.
///
/// Each trace is read by its own `CTFTraceReader` and names its process in its metadata `env`
/// block (`vpid` and `procname`, which rseqtrace and LTTng-UST per-process traces write).
/// `records()` merges the records of every trace by real time: each trace's monotonic
/// timestamps plus its own clock offset (`CTFEvent.realtime`), ties broken by the order of the
/// traces (their directory names), then as the reader orders one trace's streams, so the order
/// is the same on every read.
///
/// A trace of a set that cannot be read does not make the others unreadable: one that fails
/// when it is opened is left out and listed in `unreadable`; one found damaged while its records
/// are read stops there (the records before the damage are kept) and is reported by the
/// iterator's `problems`. A single trace that cannot be read is an error, as with
/// `CTFTraceReader`.
public final class CTFTraceSet {
    /// The process a trace records, from its metadata `env` block.
    public struct Process: Sendable, Hashable {
        /// The process id (`vpid`), nil when the metadata does not give one.
        public var pid: Int64?
        /// The program name (`procname`), or the trace directory's name when the metadata does not
        /// give one.
        public var program: String

        /// A process `pid` running `program`.
        public init(pid: Int64?, program: String) {
            self.pid = pid
            self.program = program
        }

        /// `program/pid`, or `program/?` without a pid.
        public var label: String { "\(program)/\(pid.map { "\($0)" } ?? "?")" }

        /// The process `metadata` names, or one named after `directory` when it names none.
        package init(metadata: CTFTraceMetadata, directory: String) {
            switch metadata.environmentValue("vpid") {
            case .integer(let value): pid = value
            case .string(let text): pid = Int64(text)
            case nil: pid = nil
            }
            let name = metadata.environmentValue("procname")?.description ?? ""
            program = name.isEmpty ? String(directory.split(separator: "/").last ?? Substring(directory)) : name
        }
    }

    /// One trace of the set and its process.
    public struct Member {
        /// The trace's reader.
        public let reader: CTFTraceReader
        /// The process the trace records.
        public let process: Process

        /// The trace directory.
        public var directory: String { reader.directory }
    }

    /// A trace of a set that could not be read, entirely or from some record on.
    public struct Problem: Sendable, CustomStringConvertible {
        /// The trace directory.
        public var directory: String
        /// What went wrong.
        public var error: TraceError
        /// nil when the trace could not be opened (none of its records was read); otherwise how
        /// many of its records were read before the error.
        public var recordsRead: UInt64?

        /// What happened and what to do, naming the trace.
        public var description: String {
            if let recordsRead {
                return "\(directory) is damaged: read stopped after \(recordsRead) of its records, the others' records go on: \(error) (check or remove that trace)"
            }
            return "\(directory) cannot be read and is left out, the other traces are read: \(error) (check or remove that trace)"
        }
    }

    /// The directory opened.
    public let directory: String
    /// Whether `directory` holds several traces (a set) rather than one.
    public let isSet: Bool
    /// The traces read, in directory-name order.
    public let members: [Member]
    /// The traces of a set left out because they could not be opened, in directory-name order.
    public let unreadable: [Problem]

    /// The distinct processes of the traces read (two traces of one process count once), in
    /// member order.
    public var processes: [Process] {
        var seen = Set<Process>()
        return members.map(\.process).filter { seen.insert($0).inserted }
    }

    /// Whether the traces read are not all of one boot (their clock uuids, the boot ids, differ):
    /// their monotonic timestamps are then not comparable, only their real times.
    public var hasSeveralClocks: Bool {
        let first = members.first?.reader.metadata.clock.uuid
        return !members.allSatisfy { $0.reader.metadata.clock.uuid == first }
    }

    /// Stream files of every trace read.
    public var streamCount: Int { members.reduce(0) { $0 + $1.reader.streamNames.count } }

    /// Reads the trace or the set of traces in `directory`:
    /// - a directory holding `metadata` is one trace;
    /// - a directory whose immediate subdirectories are two or more traces (each holding
    ///   `metadata`, or stream files of a trace that lost it), with no trace deeper below, is a set;
    /// - anything else is read as `CTFTraceReader(directory:)` reads it (an LTTng session
    ///   directory holding one trace).
    ///
    /// - Throws: `TraceError` `.notFound` when `directory` does not exist, is empty, or holds no
    ///   trace there or in its immediate subdirectories; `.invalidConfiguration` when it holds
    ///   traces in its subdirectories and deeper below; `.corrupted` (or the first trace's error)
    ///   when no trace of a set can be read, listing each; for a single trace, what
    ///   `CTFTraceReader(directory:)` throws.
    public convenience init(directory: String) throws(TraceError) {
        guard let entries = SystemInfo.directoryEntries(directory) else {
            throw TraceError(.notFound, "cannot open trace directory \(directory): it does not exist or is not a directory")
        }
        if entries.contains("metadata") {
            self.init(reader: try CTFTraceReader(directory: directory), requested: directory)
            return
        }
        guard !entries.isEmpty else {
            throw TraceError(.notFound, "\(directory) is empty: a trace directory holds `metadata` and stream files, or one trace per subdirectory (as `rseqtrace attach -o DIR` writes): name a directory with a trace")
        }
        let candidates = entries.filter { !$0.hasPrefix(".") }.sorted().map { directory + "/" + $0 }.filter { path in
            (SystemInfo.directoryEntries(path) ?? []).contains { CTFTraceWriter.isTraceFile($0) }
        }
        if candidates.count >= 2 {
            let below = CTFTraceSet.traceDirectories(below: directory, levels: 4)
            let deeper = below.filter { !candidates.contains($0) }
            guard deeper.isEmpty else {
                throw TraceError(.invalidConfiguration, "\(directory) holds \(Set(below + candidates).count) traces, in its subdirectories and deeper below: read one of them (\(Set(below + candidates).sorted().joined(separator: ", "))), or a directory whose subdirectories are the traces to read together")
            }
            try self.init(set: directory, traces: candidates)
            return
        }
        if CTFTraceReader.traceDirectories(below: directory).isEmpty {
            let broken = candidates.filter { SystemInfo.directoryEntries($0)?.contains("metadata") == false }
            if let first = broken.first {
                throw TraceError(.notFound, "\(first)/metadata: no such file: \(first) holds stream files without their metadata, so it cannot be read: copy its `metadata` back, or name a complete trace")
            }
            throw TraceError(.notFound, "\(directory)/metadata: no such file: \(directory) is not a CTF trace directory, nor a directory of traces (one per subdirectory, as `rseqtrace attach -o DIR` writes) or an LTTng session directory (ust/uid/*/*-bit, ust/pid/*): name a directory with a trace")
        }
        self.init(reader: try CTFTraceReader(directory: directory), requested: directory)
    }

    /// The single trace `reader` reads, as a set of one (not `isSet`).
    public convenience init(reader: CTFTraceReader) {
        self.init(reader: reader, requested: reader.directory)
    }

    private init(reader: CTFTraceReader, requested: String) {
        directory = requested
        isSet = false
        members = [Member(reader: reader, process: Process(metadata: reader.metadata, directory: reader.directory))]
        unreadable = []
    }

    /// The set of the traces in `traces` (subdirectories of `directory`).
    private init(set directory: String, traces: [String]) throws(TraceError) {
        var members: [Member] = []
        var unreadable: [Problem] = []
        for path in traces {
            do {
                let reader = try CTFTraceReader(directory: path)
                members.append(Member(reader: reader, process: Process(metadata: reader.metadata, directory: path)))
            } catch {
                unreadable.append(Problem(directory: path, error: error, recordsRead: nil))
            }
        }
        guard !members.isEmpty else {
            let list = unreadable.map { "\($0.directory): \($0.error)" }.joined(separator: "; ")
            throw TraceError(.corrupted, "none of the \(traces.count) traces in \(directory) can be read: \(list)")
        }
        self.directory = directory
        isSet = true
        self.members = members
        self.unreadable = unreadable
    }

    /// Every record of every trace, merged by real time (see the type's description).
    public func records() -> Iterator {
        Iterator(members: members.map { $0.reader.records() }, directories: members.map(\.directory),
                 continuesPastDamage: isSet)
    }

    /// A record and the trace it came from.
    public struct Element {
        /// The index in `members` of the trace the record came from.
        public var member: Int
        /// The record.
        public var record: CTFRecord
    }

    /// Merges the traces: keeps the next record of each and yields the earliest by real time.
    public struct Iterator {
        private var members: [CTFTraceReader.Iterator]
        private let directories: [String]
        private let continuesPastDamage: Bool
        private var heads: [CTFRecord?]
        private var exhausted: [Bool]
        private var read: [UInt64]
        /// The traces found damaged so far (a set only), in the order found.
        public private(set) var problems: [Problem] = []

        init(members: [CTFTraceReader.Iterator], directories: [String], continuesPastDamage: Bool) {
            self.members = members
            self.directories = directories
            self.continuesPastDamage = continuesPastDamage
            heads = Array(repeating: nil, count: members.count)
            exhausted = Array(repeating: false, count: members.count)
            read = Array(repeating: 0, count: members.count)
        }

        /// The real time of a record: the event's, or the beginning of the discarded range.
        static func realtime(_ record: CTFRecord) -> Int64 {
            switch record {
            case .event(let event): return event.realtime
            case .discarded(let loss): return loss.realtimeBegin
            }
        }

        /// The next record by real time (ties: member order), nil when every trace is exhausted.
        ///
        /// - Throws: for a single trace, `TraceError(.corrupted)` as `CTFTraceReader.Iterator.next()`.
        ///   A trace of a set found damaged is not read further and is added to `problems` instead.
        public mutating func next() throws(TraceError) -> Element? {
            var best: Int?
            var bestTime = Int64.max
            for i in members.indices {
                if heads[i] == nil && !exhausted[i] {
                    do {
                        heads[i] = try members[i].next()
                    } catch {
                        guard continuesPastDamage else { throw error }
                        problems.append(Problem(directory: directories[i], error: error, recordsRead: read[i]))
                    }
                    if heads[i] == nil { exhausted[i] = true }
                }
                guard let head = heads[i] else { continue }
                let time = Self.realtime(head)
                if best != nil && bestTime <= time { continue }
                best = i
                bestTime = time
            }
            guard let best, let record = heads[best] else { return nil }
            heads[best] = nil
            read[best] += 1
            return Element(member: best, record: record)
        }
    }

    /// The directories below `root` (not `root` itself, at most `levels` down, hidden ones
    /// skipped) that hold a `metadata` file, sorted. A trace's own subdirectories are not searched.
    package static func traceDirectories(below root: String, levels: Int) -> [String] {
        var found: [String] = []
        var level = [root]
        for _ in 0..<levels {
            level = level.flatMap { directory in
                (SystemInfo.directoryEntries(directory) ?? []).filter { !$0.hasPrefix(".") }.sorted()
                    .map { directory + "/" + $0 }.filter { SystemInfo.directoryEntries($0) != nil }
            }
            for directory in level where SystemInfo.directoryEntries(directory)?.contains("metadata") == true {
                found.append(directory)
            }
            // A trace's own subdirectories (LTTng's index/) hold no further trace.
            level.removeAll { found.contains($0) }
        }
        return found.sorted()
    }
}

extension CTFRecord {
    /// The record with its monotonic times replaced by its real times (ns since the epoch; 0
    /// before the epoch), for placing records of traces of different boots on one time line.
    package var placedAtRealtime: CTFRecord {
        switch self {
        case .event(var event):
            event.timestamp = UInt64(max(0, event.realtime))
            return .event(event)
        case .discarded(var loss):
            loss.begin = UInt64(max(0, loss.realtimeBegin))
            loss.end = UInt64(max(0, loss.realtimeEnd))
            return .discarded(loss)
        }
    }
}
