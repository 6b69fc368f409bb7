import RseqTrace

/// What a timeline viewer draws from a trace, in one model that every viewer export derives from
/// (Chrome JSON, Perfetto protobuf): processes; in each, one track per thread (or per CPU when the
/// trace does not say which thread recorded an event); on a thread's track its events as instants and
/// its spans as slices; per CPU, the ranges of discarded events and a counter of them.
///
/// Feed it records in time order with ``add(_:process:)``, then call ``finish()``; each returns
/// the items to write, in order. A track and its process are announced (``Item/process(_:)``,
/// ``Item/track(_:)``) before the first item that uses them.
///
/// Spans (`rseqtrace:span_begin` / `rseqtrace:span_end`, see `TraceSpan`) become slices, written
/// when they end: on the thread's track when they begin and end on the same thread (so they nest as
/// they did on the thread), otherwise on a track of their own named after the span (an `async` span
/// that resumed on another thread). A begin without an end is written by ``finish()`` as an
/// unfinished slice; an end without its begin becomes a slice of its own measured `duration_ns`.
package struct TraceTimeline {
    /// A traced process.
    package struct Process: Hashable, Sendable {
        package var pid: Int64
        package var name: String
        /// Names of its threads by thread id, where the trace gives them.
        package var threadNames: [Int64: String]

        package init(pid: Int64, name: String, threadNames: [Int64: String] = [:]) {
            self.pid = pid
            self.name = name
            self.threadNames = threadNames
        }
    }

    /// Where an item is drawn.
    package enum Track: Hashable, Sendable {
        /// A thread of a process.
        case thread(pid: Int64, tid: Int64)
        /// A CPU of a process, for events of a trace that does not record threads, and for the
        /// discarded-event ranges of that CPU.
        case cpu(pid: Int64, cpu: UInt32)
        /// A span that ended on another thread than it began on.
        case span(pid: Int64, id: UInt64)
        /// The running count of discarded events of one CPU.
        case discardedCounter(pid: Int64, cpu: UInt32)
        /// A per-CPU counter's values (its `metrics:counter` samples).
        case metricCounter(pid: Int64, name: String)

        package var pid: Int64 {
            switch self {
            case .thread(let pid, _), .cpu(let pid, _), .span(let pid, _), .discardedCounter(let pid, _),
                 .metricCounter(let pid, _): return pid
            }
        }

        /// A number naming the track uniquely within an export.
        package var uuid: UInt64 {
            var hasher = StableHash()
            switch self {
            case .thread(let pid, let tid): hasher.add(1); hasher.add(UInt64(bitPattern: pid)); hasher.add(UInt64(bitPattern: tid))
            case .cpu(let pid, let cpu): hasher.add(2); hasher.add(UInt64(bitPattern: pid)); hasher.add(UInt64(cpu))
            case .span(let pid, let id): hasher.add(3); hasher.add(UInt64(bitPattern: pid)); hasher.add(id)
            case .discardedCounter(let pid, let cpu): hasher.add(4); hasher.add(UInt64(bitPattern: pid)); hasher.add(UInt64(cpu))
            case .metricCounter(let pid, let name):
                hasher.add(5); hasher.add(UInt64(bitPattern: pid))
                for byte in name.utf8 { hasher.add(UInt64(byte)) }
            }
            return hasher.value
        }
    }

    /// A track with its display name.
    package struct TrackInfo: Sendable {
        package var track: Track
        package var name: String
    }

    /// A finished (or, at the end of the trace, unfinished) span.
    package struct Slice: Sendable {
        package var track: Track
        package var name: String
        /// CLOCK_MONOTONIC ns.
        package var begin: UInt64
        /// nil: the trace ended before the span did.
        package var end: UInt64?
        package var id: UInt64
        /// True when the begin event is not in the trace (`begin` is the end minus `duration_ns`).
        package var beginMissing: Bool
    }

    /// One thing to draw.
    package enum Item: Sendable {
        case process(Process)
        case track(TrackInfo)
        /// An event that is not a span event.
        case instant(Track, CTFEvent)
        case slice(Slice)
        /// A range of discarded events on a CPU track.
        case discarded(Track, CTFDiscardedEvents)
        /// A counter track's new value at a time (ns).
        case counter(Track, at: UInt64, value: Int64)
    }

    /// Counts of what was produced.
    package struct Counts: Sendable, Equatable {
        package var instants: UInt64 = 0
        package var slices: UInt64 = 0
        package var unfinishedSlices: UInt64 = 0
        package var discardedRanges: UInt64 = 0
        package var discardedEvents: UInt64 = 0
        package var processes: Int = 0
        package var threadTracks: Int = 0
    }

    package fileprivate(set) var counts = Counts()
    fileprivate var knownProcesses = Set<Int64>()
    private var knownTracks = Set<Track>()
    private var spans = SpanPairing<Int64, Track>()
    private var discardedSoFar: [Track: Int64] = [:]

    private var threadNames: [ThreadKey: String] = [:]

    /// A thread of a traced process.
    package struct ThreadKey: Hashable {
        package var pid: Int64
        package var tid: Int64

        package init(pid: Int64, tid: Int64) {
            self.pid = pid
            self.tid = tid
        }
    }

    /// The event `TraceRuntime.nameCurrentThread` records: it names its thread's track.
    package static let threadNameEventName = "rseqtrace:thread_name"

    package init() {}

    /// The thread of `event` when its trace records threads (the `vtid` / `vpid` event context, as
    /// LTTng writes it), else nil.
    package static func thread(of event: CTFEvent) -> (pid: Int64?, tid: Int64)? {
        var tid: Int64?
        var pid: Int64?
        for field in event.context {
            switch (field.name, field.value) {
            case ("vtid", .signed(let v)), ("tid", .signed(let v)): tid = v
            case ("vtid", .unsigned(let v)), ("tid", .unsigned(let v)): tid = Int64(truncatingIfNeeded: v)
            case ("vpid", .signed(let v)), ("pid", .signed(let v)): pid = v
            case ("vpid", .unsigned(let v)), ("pid", .unsigned(let v)): pid = Int64(truncatingIfNeeded: v)
            default: break
            }
        }
        return tid.map { (pid, $0) }
    }

    /// The items for one record of `process`'s trace.
    package mutating func add(_ record: CTFRecord, process: Process) -> [Item] {
        var items: [Item] = []
        if knownProcesses.insert(process.pid).inserted {
            counts.processes += 1
            items.append(.process(process))
        }
        switch record {
        case .event(let event):
            if event.name == SharedTraceBuffer.counterSampleSchema.name, case .signed(let value)? = event[field: "value"],
               case .string(let name)? = event[field: "name"] {
                // A per-CPU counter's value: a point of the counter's track, not an instant.
                let counter = Track.metricCounter(pid: process.pid, name: name)
                announce(counter, in: process, &items)
                items.append(.counter(counter, at: event.timestamp, value: value))
                return items
            }
            let track: Track
            if let thread = Self.thread(of: event) {
                track = .thread(pid: process.pid, tid: thread.tid)
            } else {
                track = .cpu(pid: process.pid, cpu: event.cpuID)
            }
            if event.name == TraceTimeline.threadNameEventName, case .thread(let pid, let tid) = track,
               case .string(let name)? = event[field: "name"] {
                // Names the thread's track (again, if it was drawn already); not an instant.
                threadNames[ThreadKey(pid: pid, tid: tid)] = name
                if knownTracks.insert(track).inserted { counts.threadTracks += 1 }
                items.append(.track(TrackInfo(track: track, name: "\(name) \(tid)")))
                return items
            }
            announce(track, in: process, &items)
            switch spans.add(event, process: process.pid, context: { track }) {
            case .notSpan, .malformed:
                counts.instants += 1
                items.append(.instant(track, event))
            case .began:
                break
            case .ended(let ended):
                span(ended, endedOn: track, process: process, &items)
            }
        case .discarded(let loss):
            let track = Track.cpu(pid: process.pid, cpu: loss.cpuID)
            announce(track, in: process, &items)
            counts.discardedRanges += 1
            counts.discardedEvents &+= loss.count
            items.append(.discarded(track, loss))
            let counter = Track.discardedCounter(pid: process.pid, cpu: loss.cpuID)
            announce(counter, in: process, &items)
            let total = discardedSoFar[counter, default: 0] &+ Int64(truncatingIfNeeded: loss.count)
            discardedSoFar[counter] = total
            items.append(.counter(counter, at: loss.end, value: total))
        }
        return items
    }

    private mutating func span(_ ended: SpanPairing<Int64, Track>.Ended, endedOn track: Track, process: Process,
                               _ items: inout [Item]) {
        counts.slices += 1
        guard let begun = ended.begun else {
            items.append(.slice(Slice(track: track, name: ended.name ?? "span", begin: ended.begin, end: ended.end,
                                      id: ended.id, beginMissing: true)))
            return
        }
        let name = begun.name ?? "span"
        var sliceTrack = begun.context
        if begun.context != track {
            sliceTrack = .span(pid: process.pid, id: ended.id)
            announce(sliceTrack, named: name, in: process, &items)
        }
        items.append(.slice(Slice(track: sliceTrack, name: name, begin: begun.begin, end: max(begun.begin, ended.end),
                                  id: ended.id, beginMissing: false)))
    }

    /// The spans still open when the trace ends, as unfinished slices (oldest first).
    package mutating func finish() -> [Item] {
        let unfinished = spans.stillOpen
        spans = SpanPairing()
        counts.unfinishedSlices = UInt64(unfinished.count)
        return unfinished.map { entry in
            .slice(Slice(track: entry.context, name: entry.name ?? "span", begin: entry.begin, end: nil,
                         id: entry.id, beginMissing: false))
        }
    }

    private mutating func announce(_ track: Track, named name: String? = nil, in process: Process, _ items: inout [Item]) {
        guard knownTracks.insert(track).inserted else { return }
        let title: String
        switch track {
        case .thread(_, let tid):
            counts.threadTracks += 1
            if let name = threadNames[ThreadKey(pid: process.pid, tid: tid)] ?? process.threadNames[tid] {
                title = "\(name) \(tid)"
            } else {
                title = tid == process.pid ? "\(process.name) (main thread \(tid))" : "thread \(tid)"
            }
        case .cpu(_, let cpu): title = "cpu \(cpu)"
        case .span(_, let id): title = "\(name ?? "span") (id \(id))"
        case .discardedCounter(_, let cpu): title = "discarded events, cpu \(cpu)"
        case .metricCounter(_, let name): title = name
        }
        items.append(.track(TrackInfo(track: track, name: title)))
    }
}

extension TraceTimeline {
    /// Draws `set`: feeds each record, in time order, to a timeline and passes every item to
    /// `write`, then the spans still open. Each traced process is a process of its own, with the
    /// id ``processIDs(_:)`` gives it and named by its program (its trace's `procname`); one whose
    /// traces hold no record is still announced. The records of a set whose traces are not of one
    /// boot (different clock uuids) are placed by their CLOCK_REALTIME. A trace found damaged
    /// while it is read is drawn up to the damage; `problems` is called with each such trace when
    /// it is found. Returns what was drawn.
    package static func draw(_ set: CTFTraceSet, problems: (CTFTraceSet.Problem) -> Void,
                             _ write: (Item) throws(TraceError) -> Void) throws(TraceError) -> Counts {
        let pids = processIDs(set)
        let processes = set.members.enumerated().map { index, member in
            Process(pid: pids[index],
                    name: member.reader.metadata.environmentValue("procname")?.description
                        ?? (set.isSet ? member.process.program : "traced process"),
                    threadNames: member.reader.metadata.threadNames)
        }
        let realtime = set.hasSeveralClocks
        var timeline = TraceTimeline()
        var records = set.records()
        var reported = 0
        while let element = try records.next() {
            for problem in records.problems.dropFirst(reported) { problems(problem) }
            reported = records.problems.count
            let record = realtime ? element.record.placedAtRealtime : element.record
            for item in timeline.add(record, process: processes[element.member]) { try write(item) }
        }
        for problem in records.problems.dropFirst(reported) { problems(problem) }
        // Processes of traces without a record still get their name.
        for process in processes where timeline.knownProcesses.insert(process.pid).inserted {
            timeline.counts.processes += 1
            try write(.process(process))
        }
        for item in timeline.finish() { try write(item) }
        return timeline.counts
    }

    /// The process id each member of `set` is drawn with: its process id; one id for the traces
    /// of one process (same pid and program); an id above 2^22 (the largest Linux pid_max) for a
    /// trace without a pid or whose pid belongs to another program in the set. A single trace
    /// without a pid gets 0.
    package static func processIDs(_ set: CTFTraceSet) -> [Int64] {
        guard set.isSet else { return [set.members.first?.process.pid ?? 0] }
        var byProcess: [CTFTraceSet.Process: Int64] = [:]
        var used = Set<Int64>()
        var synthetic: Int64 = 1 << 22
        return set.members.map { member in
            if let known = byProcess[member.process], member.process.pid != nil { return known }
            var id: Int64
            if let pid = member.process.pid, !used.contains(pid) {
                id = pid
            } else {
                repeat { synthetic += 1; id = synthetic } while used.contains(id)
            }
            used.insert(id)
            byProcess[member.process] = id
            return id
        }
    }
}

/// FNV-1a over 64-bit words: a hash that is the same in every run (unlike `Hasher`), so exports
/// are reproducible.
struct StableHash {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ word: UInt64) {
        var word = word
        for _ in 0..<8 {
            value ^= word & 0xff
            value = value &* 0x100_0000_01b3
            word >>= 8
        }
    }
}
