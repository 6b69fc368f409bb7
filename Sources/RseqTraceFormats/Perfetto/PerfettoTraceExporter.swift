import RseqTrace
import SystemPackage

/// Converts a trace into Perfetto's native protobuf trace format (`perfetto.protos.Trace`: a
/// sequence of `TracePacket`s with `TrackDescriptor`s and `TrackEvent`s), which the Perfetto UI
/// and `trace_processor` load faster, and smaller, than the Chrome JSON of the same trace.
///
/// It draws the ``TraceTimeline`` of the trace: a process track per process, a thread track per
/// thread (with `pid`/`tid`, so Perfetto groups threads under their process), a CPU track for the
/// events of a trace that does not record threads and for discarded-event ranges, spans as slices
/// (`TYPE_SLICE_BEGIN` / `TYPE_SLICE_END`), other events as instants with their fields as debug
/// annotations, and a counter track per CPU with the running count of discarded events. Event
/// names, categories (the provider part of `provider:event`) and field names are interned on one
/// packet sequence. Timestamps are the trace's CLOCK_MONOTONIC nanoseconds, written in the
/// default clock of the format. Output is streamed: memory grows with the number of distinct
/// names and open spans, not with the trace.
public struct PerfettoTraceExporter {
    /// What an export wrote.
    public struct Summary: Sendable, Equatable {
        /// Instant events written (events other than span events).
        public var instants: UInt64 = 0
        /// Slices written (spans, including unfinished ones).
        public var slices: UInt64 = 0
        /// Spans whose end is not in the trace, written as slices without an end.
        public var unfinishedSlices: UInt64 = 0
        /// Ranges of discarded events written.
        public var discardedRanges: UInt64 = 0
        /// Thread tracks written.
        public var threadTracks: Int = 0
        /// `TracePacket`s written.
        public var packets: UInt64 = 0
        /// Bytes written.
        public var bytes: UInt64 = 0
    }

    /// An exporter (it keeps no state between exports).
    public init() {}

    /// Writes `reader`'s trace to `path` (created, or replaced if it is a regular file).
    public func export(_ reader: CTFTraceReader, to path: String) throws(TraceError) -> Summary {
        try export(CTFTraceSet(reader: reader), to: path)
    }

    /// Writes the traces of `set` to `path` (created, or replaced if it is a regular file);
    /// `problems` as for `export(_:to:named:problems:)`.
    public func export(_ set: CTFTraceSet, to path: String,
                       problems: (CTFTraceSet.Problem) -> Void = { _ in }) throws(TraceError) -> Summary {
        let fd = try OutputFile.create(path)
        defer { try? fd.close() }
        return try export(set, to: fd, named: path, problems: problems)
    }

    /// Writes `reader`'s trace to the open descriptor `descriptor`, which it does not close; `name`
    /// names it in errors.
    public func export(_ reader: CTFTraceReader, to descriptor: FileDescriptor, named name: String) throws(TraceError) -> Summary {
        try export(CTFTraceSet(reader: reader), to: descriptor, named: name)
    }

    /// Writes the traces of `set` to the open descriptor `descriptor`, which it does not close;
    /// `name` names it in errors. Each traced process of a set is a process of its own
    /// (`TraceTimeline.draw`); the records of a set whose traces are not of one boot (different
    /// clock uuids) are placed by their CLOCK_REALTIME instead. A trace of a set found damaged while
    /// it is read is written up to the damage; `problems` is called with each such trace when it
    /// is found.
    public func export(_ set: CTFTraceSet, to descriptor: FileDescriptor, named name: String,
                       problems: (CTFTraceSet.Problem) -> Void = { _ in }) throws(TraceError) -> Summary {
        var out = JSONOutput(fd: descriptor, path: name)
        var encoder = Encoder()
        try encoder.start(&out)
        let counts = try TraceTimeline.draw(set, problems: problems) { (item) throws(TraceError) in
            try encoder.write(item, &out)
        }
        try out.flush()
        var summary = Summary()
        summary.instants = counts.instants
        summary.slices = counts.slices + counts.unfinishedSlices
        summary.unfinishedSlices = counts.unfinishedSlices
        summary.discardedRanges = counts.discardedRanges
        summary.threadTracks = counts.threadTracks
        summary.packets = encoder.packets
        summary.bytes = out.written
        return summary
    }

    /// Field numbers of the `perfetto.protos` messages written (protos/perfetto/trace/...).
    enum Field {
        static let tracePacket = 1                 // Trace.packet
        // TracePacket
        static let timestamp = 8
        static let trustedPacketSequenceID = 10
        static let trackEvent = 11
        static let internedData = 12
        static let sequenceFlags = 13
        static let trackDescriptor = 60
        // TracePacket.SequenceFlags
        static let incrementalStateCleared: UInt64 = 1
        static let needsIncrementalState: UInt64 = 2
        // TrackDescriptor
        static let uuid = 1
        static let name = 2
        static let process = 3
        static let thread = 4
        static let parentUUID = 5
        static let counter = 8
        // ProcessDescriptor / ThreadDescriptor
        static let pid = 1
        static let tid = 2
        static let threadName = 5
        static let processName = 6
        // TrackEvent
        static let categoryIIDs = 3
        static let debugAnnotations = 4
        static let type = 9
        static let nameIID = 10
        static let trackUUID = 11
        static let counterValue = 30
        // TrackEvent.Type
        static let sliceBegin: UInt64 = 1
        static let sliceEnd: UInt64 = 2
        static let instant: UInt64 = 3
        static let counterType: UInt64 = 4
        // InternedData
        static let eventCategories = 1
        static let eventNames = 2
        static let debugAnnotationNames = 3
        // EventCategory / EventName / DebugAnnotationName
        static let iid = 1
        static let internedName = 2
        // DebugAnnotation
        static let annotationNameIID = 1
        static let boolValue = 2
        static let uintValue = 3
        static let intValue = 4
        static let doubleValue = 5
        static let stringValue = 6
    }

    /// The packet sequence: interning tables and the writing of each timeline item.
    struct Encoder {
        static let sequenceID: UInt64 = 1
        private var eventNames: [String: UInt64] = [:]
        private var categories: [String: UInt64] = [:]
        private var annotationNames: [String: UInt64] = [:]
        private var processTracks: [Int64: UInt64] = [:]
        private(set) var packets: UInt64 = 0

        /// The first packet: clears the sequence's incremental state (the interning tables).
        mutating func start(_ out: inout JSONOutput) throws(TraceError) {
            var packet = ProtobufWriter()
            packet.unsigned(Field.trustedPacketSequenceID, Self.sequenceID)
            packet.unsigned(Field.sequenceFlags, Field.incrementalStateCleared)
            try emit(packet, &out)
        }

        private mutating func emit(_ packet: ProtobufWriter, _ out: inout JSONOutput) throws(TraceError) {
            var trace = ProtobufWriter()
            trace.data(Field.tracePacket, packet.bytes)
            try out.write(bytes: trace.bytes)
            packets += 1
        }

        mutating func write(_ item: TraceTimeline.Item, _ out: inout JSONOutput) throws(TraceError) {
            switch item {
            case .process(let process):
                let uuid = processUUID(process.pid)
                var packet = ProtobufWriter()
                packet.unsigned(Field.trustedPacketSequenceID, Self.sequenceID)
                packet.message(Field.trackDescriptor) { track in
                    track.unsigned(Field.uuid, uuid)
                    track.message(Field.process) { descriptor in
                        descriptor.signed(Field.pid, process.pid)
                        descriptor.string(Field.processName, process.name)
                    }
                }
                try emit(packet, &out)
            case .track(let info):
                let parent = processUUID(info.track.pid)
                var packet = ProtobufWriter()
                packet.unsigned(Field.trustedPacketSequenceID, Self.sequenceID)
                packet.message(Field.trackDescriptor) { track in
                    track.unsigned(Field.uuid, info.track.uuid)
                    track.unsigned(Field.parentUUID, parent)
                    switch info.track {
                    case .thread(let pid, let tid):
                        track.message(Field.thread) { descriptor in
                            descriptor.signed(Field.pid, pid)
                            descriptor.signed(Field.tid, tid)
                            descriptor.string(Field.threadName, info.name)
                        }
                    case .discardedCounter, .metricCounter:
                        track.string(Field.name, info.name)
                        track.message(Field.counter) { _ in }
                    case .cpu, .span:
                        track.string(Field.name, info.name)
                    }
                }
                try emit(packet, &out)
            case .instant(let track, let event):
                let category = event.name.split(separator: ":").first.map(String.init) ?? event.name
                try trackEvent(at: event.timestamp, track: track, type: Field.instant, name: event.name,
                               category: category, annotations: event.fields.map { ($0.name, $0.value) }, &out)
            case .slice(let slice):
                var annotations: [(String, CTFValue)] = [("id", .unsigned(slice.id))]
                if slice.beginMissing { annotations.append(("begin_not_in_trace", .bool(true))) }
                if slice.end == nil { annotations.append(("end_not_in_trace", .bool(true))) }
                try trackEvent(at: slice.begin, track: slice.track, type: Field.sliceBegin, name: slice.name,
                               category: "span", annotations: annotations, &out)
                if let end = slice.end {
                    try trackEvent(at: end, track: slice.track, type: Field.sliceEnd, name: nil, category: nil,
                                   annotations: [], &out)
                }
            case .discarded(let track, let loss):
                try trackEvent(at: loss.begin, track: track, type: Field.sliceBegin, name: "discarded events",
                               category: "rseqtrace", annotations: [("count", .unsigned(loss.count))], &out)
                try trackEvent(at: max(loss.begin, loss.end), track: track, type: Field.sliceEnd, name: nil,
                               category: nil, annotations: [], &out)
            case .counter(let track, let at, let value):
                var packet = ProtobufWriter()
                packet.unsigned(Field.timestamp, at)
                packet.unsigned(Field.trustedPacketSequenceID, Self.sequenceID)
                packet.unsigned(Field.sequenceFlags, Field.needsIncrementalState)
                packet.message(Field.trackEvent) { event in
                    event.unsigned(Field.type, Field.counterType)
                    event.unsigned(Field.trackUUID, track.uuid)
                    event.signed(Field.counterValue, value)
                }
                try emit(packet, &out)
            }
        }

        private mutating func processUUID(_ pid: Int64) -> UInt64 {
            if let uuid = processTracks[pid] { return uuid }
            var hasher = StableHash()
            hasher.add(0)
            hasher.add(UInt64(bitPattern: pid))
            processTracks[pid] = hasher.value
            return hasher.value
        }

        /// The interned id of `key` in `table`, and whether it is new (to be sent with this packet).
        private static func intern(_ key: String, in table: inout [String: UInt64]) -> (iid: UInt64, isNew: Bool) {
            if let iid = table[key] { return (iid, false) }
            let iid = UInt64(table.count + 1)
            table[key] = iid
            return (iid, true)
        }

        private mutating func trackEvent(at timestamp: UInt64, track: TraceTimeline.Track, type: UInt64, name: String?,
                                         category: String?, annotations: [(String, CTFValue)],
                                         _ out: inout JSONOutput) throws(TraceError) {
            var newNames: [(UInt64, String)] = []
            var newCategories: [(UInt64, String)] = []
            var newAnnotationNames: [(UInt64, String)] = []
            var nameIID: UInt64?
            var categoryIID: UInt64?
            if let name {
                let interned = Self.intern(name, in: &eventNames)
                nameIID = interned.iid
                if interned.isNew { newNames.append((interned.iid, name)) }
            }
            if let category {
                let interned = Self.intern(category, in: &categories)
                categoryIID = interned.iid
                if interned.isNew { newCategories.append((interned.iid, category)) }
            }
            var annotationIIDs: [UInt64] = []
            for (key, _) in annotations {
                let interned = Self.intern(key, in: &annotationNames)
                annotationIIDs.append(interned.iid)
                if interned.isNew { newAnnotationNames.append((interned.iid, key)) }
            }
            var packet = ProtobufWriter()
            packet.unsigned(Field.timestamp, timestamp)
            packet.unsigned(Field.trustedPacketSequenceID, Self.sequenceID)
            packet.unsigned(Field.sequenceFlags, Field.needsIncrementalState)
            if !newNames.isEmpty || !newCategories.isEmpty || !newAnnotationNames.isEmpty {
                packet.message(Field.internedData) { interned in
                    for (iid, text) in newCategories {
                        interned.message(Field.eventCategories) { $0.unsigned(Field.iid, iid); $0.string(Field.internedName, text) }
                    }
                    for (iid, text) in newNames {
                        interned.message(Field.eventNames) { $0.unsigned(Field.iid, iid); $0.string(Field.internedName, text) }
                    }
                    for (iid, text) in newAnnotationNames {
                        interned.message(Field.debugAnnotationNames) { $0.unsigned(Field.iid, iid); $0.string(Field.internedName, text) }
                    }
                }
            }
            packet.message(Field.trackEvent) { event in
                if let categoryIID { event.unsigned(Field.categoryIIDs, categoryIID) }
                for (index, (_, value)) in annotations.enumerated() {
                    event.message(Field.debugAnnotations) { annotation in
                        annotation.unsigned(Field.annotationNameIID, annotationIIDs[index])
                        Self.annotate(value, into: &annotation)
                    }
                }
                event.unsigned(Field.type, type)
                if let nameIID { event.unsigned(Field.nameIID, nameIID) }
                event.unsigned(Field.trackUUID, track.uuid)
            }
            try emit(packet, &out)
        }

        private static func annotate(_ value: CTFValue, into annotation: inout ProtobufWriter) {
            switch value {
            case .unsigned(let v): annotation.unsigned(Field.uintValue, v)
            case .signed(let v): annotation.signed(Field.intValue, v)
            case .bool(let v): annotation.bool(Field.boolValue, v)
            case .float32(let v): annotation.double(Field.doubleValue, Double(v))
            case .float64(let v): annotation.double(Field.doubleValue, v)
            case .string(let text): annotation.string(Field.stringValue, text)
            case .bytes(let bytes):
                annotation.string(Field.stringValue, OutputFile.hex(bytes))
            case .enumeration(let label, let v, let isSigned):
                if let label {
                    annotation.string(Field.stringValue, label)
                } else if isSigned {
                    annotation.signed(Field.intValue, v)
                } else {
                    annotation.unsigned(Field.uintValue, UInt64(bitPattern: v))
                }
            }
        }
    }
}
