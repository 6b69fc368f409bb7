import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

// MARK: - Fixtures

/// Traces of made-up processes written with `CTFTraceWriter`, one `set:tick` event (field `n`)
/// per entry, in directories under /tmp removed by the tests.
private enum SetFixture {
    static let schemas: [UInt16: EventSchema] = [
        1: EventSchema(name: "set:tick", fields: [EventField("n", .uint64)]),
        2: EventSchema(name: "rseqtrace:span_begin", fields: [EventField("id", .uint64)]),
        3: EventSchema(name: "rseqtrace:span_end", fields: [EventField("id", .uint64), EventField("duration_ns", .uint64)]),
    ]
    static let monotonicReference: UInt64 = 1_000_000
    /// The real time of monotonic 0 in the first fixture trace.
    static let baseOffset: Int64 = 1_763_781_921_000_000_000

    /// One event: its ring, its monotonic time, its event id (of `schemas`) and field values.
    struct Tick {
        var ring: Int
        var monotonic: UInt64
        var event: UInt16
        var fields: [UInt64]

        /// A `set:tick` event.
        init(ring: Int, monotonic: UInt64, n: UInt64) {
            self.init(ring: ring, monotonic: monotonic, event: 1, fields: [n])
        }

        init(ring: Int, monotonic: UInt64, event: UInt16, fields: [UInt64]) {
            self.ring = ring
            self.monotonic = monotonic
            self.event = event
            self.fields = fields
        }
    }

    /// A fresh empty directory.
    static func directory(_ tag: String) -> String {
        let path = CTFEndToEndTests.temporaryDirectory("set-\(tag)")
        CTFEndToEndTests.removeTree(path)
        // SAFETY: mkdir takes the path by value.
        let made = unsafe mkdir(path, 0o755)
        #expect(made == 0, "mkdir \(path)")
        return path
    }

    /// Writes the trace of process `pid` running `program` to `directory` (created), with the
    /// real time of monotonic 0 at `offset`, its `ticks` in order, and `lost` events discarded on
    /// ring 0 after the first half of them. Returns the real time of each tick.
    @discardableResult
    static func write(_ directory: String, pid: Int32, program: String, offset: Int64, rings: Int = 2,
                      ticks: [Tick], lost: UInt64 = 0, packetCapacity: Int = 256 << 10) throws -> [Int64] {
        let clock = CycleClock(frequency: 1_000_000_000, cycleReference: monotonicReference, monotonicReference: monotonicReference,
                               realtimeReference: UInt64(offset + Int64(monotonicReference)))
        let description = CTFTraceDescription(uuid: (0..<16).map { UInt8(truncatingIfNeeded: Int(pid) &+ $0) }, clock: clock,
                                              bootID: Array(repeating: 7, count: 16), hostname: "host", traceName: "set-test",
                                              procname: program, pid: pid, cpuRingCount: rings, schemas: schemas)
        let writer = try CTFTraceWriter(directory: directory, description: description, packetCapacity: packetCapacity)
        for (index, tick) in ticks.enumerated() {
            try writer.append(ring: tick.ring, eventID: tick.event, cycles: tick.monotonic,
                              payload: tick.fields.flatMap { value in (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) } })
            if lost > 0 && index == ticks.count / 2 { try writer.noteLost(ring: 0, total: lost) }
        }
        _ = try writer.finish()
        return ticks.map { offset + Int64($0.monotonic) }
    }

    /// `n` of a `set:tick` event.
    static func n(_ record: CTFRecord) -> UInt64? {
        guard case .event(let event) = record, case .unsigned(let n)? = event[field: "n"] else { return nil }
        return n
    }

    static func realtime(_ record: CTFRecord) -> Int64 {
        switch record {
        case .event(let event): return event.realtime
        case .discarded(let loss): return loss.realtimeBegin
        }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        // SAFETY: open takes the path by value.
        let fd = unsafe open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        // SAFETY: write reads the array's own bytes during the call.
        let written = unsafe bytes.withUnsafeBytes { unsafe Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(written == bytes.count, "cannot write \(path)")
    }

    static func readFile(_ path: String) -> [UInt8] {
        // SAFETY: open takes the path by value.
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            // SAFETY: read writes at most chunk.count bytes into the array's own storage.
            let count = unsafe chunk.withUnsafeMutableBytes { unsafe Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            out += chunk[0..<count]
        }
        return out
    }

    /// The little-endian 64-bit integer at `offset` of `bytes`.
    static func uint64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << UInt64(8 * $1) }
    }

    static func remove(_ path: String) {
        // SAFETY: unlink takes the path by value.
        _ = unsafe unlink(path)
    }

    /// Every element of `set`, in order, with the problems its iterator reported.
    static func readAll(_ set: CTFTraceSet) throws -> (elements: [CTFTraceSet.Element], problems: [CTFTraceSet.Problem]) {
        var iterator = set.records()
        var elements: [CTFTraceSet.Element] = []
        while let element = try iterator.next() { elements.append(element) }
        return (elements, iterator.problems)
    }

    /// alpha (pid 100, in `a-100`) and beta (pid 200, in `b-200`, its clock 500 ns later): every
    /// tick of beta at the real time of one of alpha's (ties), every other one followed by one
    /// 250 ns later; 7 events of beta discarded. Returns the real times written per trace.
    @discardableResult
    static func pair(in root: String) throws -> [[Int64]] {
        let alpha = (0..<200).map { Tick(ring: $0 % 2, monotonic: 10_000 + UInt64($0) * 1000, n: UInt64($0)) }
        var beta: [Tick] = []
        for i in 0..<200 {
            let ring = i % 3 == 0 ? 2 : 0
            beta.append(Tick(ring: ring, monotonic: 9_500 + UInt64(i) * 1000, n: 1000 + UInt64(i)))
            if i % 2 == 1 { beta.append(Tick(ring: ring, monotonic: 9_750 + UInt64(i) * 1000, n: 2000 + UInt64(i))) }
        }
        return [
            try write(root + "/a-100", pid: 100, program: "alpha", offset: baseOffset, ticks: alpha),
            try write(root + "/b-200", pid: 200, program: "beta", offset: baseOffset + 500, ticks: beta, lost: 7),
        ]
    }
}

// MARK: - The set, read in process

@Suite("CTFTraceSet: traces of several processes read as one")
struct CTFTraceSetTests {
    @Test("a directory of two traces: records merged by real time, ties in directory order, each attributed to its process; per-trace counts as read alone")
    func mergedOrder() throws {
        let root = SetFixture.directory("merge")
        defer { CTFEndToEndTests.removeTree(root) }
        let times = try SetFixture.pair(in: root)
        let set = try CTFTraceSet(directory: root)
        #expect(set.isSet && set.unreadable.isEmpty)
        #expect(set.members.map(\.directory) == [root + "/a-100", root + "/b-200"])
        #expect(set.members.map(\.process) == [CTFTraceSet.Process(pid: 100, program: "alpha"), CTFTraceSet.Process(pid: 200, program: "beta")])
        #expect(set.members.map(\.process.label) == ["alpha/100", "beta/200"])
        #expect(set.processes.count == 2)
        #expect(set.streamCount == 3 + 3)
        let (elements, problems) = try SetFixture.readAll(set)
        #expect(problems.isEmpty)
        // The events in the order expected: by real time, alpha before beta at the same time.
        let expected = times.enumerated().flatMap { member, list in list.enumerated().map { (time: $0.element, member: member, index: $0.offset) } }
            .sorted { ($0.time, $0.member) < ($1.time, $1.member) }
        let events = elements.filter { SetFixture.n($0.record) != nil }
        #expect(events.count == 200 + 300)
        #expect(events.map { SetFixture.realtime($0.record) } == expected.map(\.time))
        #expect(events.map(\.member) == expected.map(\.member))
        // Every record, losses included, comes in non-decreasing real time.
        let realtimes = elements.map { SetFixture.realtime($0.record) }
        #expect(zip(realtimes, realtimes.dropFirst()).allSatisfy { $0 <= $1 })
        // The ticks of each trace in its own order, with their own field values.
        #expect(events.filter { $0.member == 0 }.compactMap { SetFixture.n($0.record) } == (0..<200).map { UInt64($0) })
        let betaNumbers = events.filter { $0.member == 1 }.compactMap { SetFixture.n($0.record) }
        #expect(betaNumbers.count == 300 && betaNumbers.allSatisfy { $0 >= 1000 })
        let losses = elements.compactMap { element -> (Int, UInt64)? in
            guard case .discarded(let loss) = element.record else { return nil }
            return (element.member, loss.count)
        }
        #expect(losses.map(\.0) == [1] && losses.map(\.1) == [7])
        // Each trace read alone yields exactly the records the set attributes to it.
        for (index, member) in set.members.enumerated() {
            let alone = try CTFTraceReader(directory: member.directory).readAll()
            #expect(elements.filter { $0.member == index }.map(\.record) == alone, "\(member.directory)")
        }
        // Reading twice gives the same order.
        #expect(try SetFixture.readAll(try CTFTraceSet(directory: root)).elements.map(\.member) == elements.map(\.member))
    }

    @Test("a trace directory is a set of one: not a set, its records as CTFTraceReader reads them")
    func singleTrace() throws {
        let root = SetFixture.directory("single")
        defer { CTFEndToEndTests.removeTree(root) }
        try SetFixture.pair(in: root)
        let set = try CTFTraceSet(directory: root + "/b-200")
        #expect(!set.isSet && set.members.count == 1 && set.directory == root + "/b-200")
        #expect(set.members[0].process == CTFTraceSet.Process(pid: 200, program: "beta"))
        let elements = try SetFixture.readAll(set).elements
        #expect(elements.map(\.record) == (try CTFTraceReader(directory: root + "/b-200").readAll()))
        #expect(elements.allSatisfy { $0.member == 0 })
    }

    @Test("errors: a missing, an empty and a traceless directory, traces at two depths, no readable trace")
    func errors() throws {
        let root = SetFixture.directory("errors")
        defer { CTFEndToEndTests.removeTree(root) }
        #expect(throws: TraceError(.notFound, "cannot open trace directory \(root)/absent: it does not exist or is not a directory")) {
            try CTFTraceSet(directory: root + "/absent")
        }
        #expect(throws: TraceError(.notFound, "\(root) is empty: a trace directory holds `metadata` and stream files, or one trace per subdirectory (as `rseqtrace attach -o DIR` writes): name a directory with a trace")) {
            try CTFTraceSet(directory: root)
        }
        SetFixture.writeFile(root + "/notes.txt", Array("not a trace\n".utf8))
        #expect(throws: TraceError(.notFound, "\(root)/metadata: no such file: \(root) is not a CTF trace directory, nor a directory of traces (one per subdirectory, as `rseqtrace attach -o DIR` writes) or an LTTng session directory (ust/uid/*/*-bit, ust/pid/*): name a directory with a trace")) {
            try CTFTraceSet(directory: root)
        }
        try SetFixture.pair(in: root)
        // SAFETY: mkdir takes the paths by value.
        let made = unsafe (mkdir(root + "/deeper", 0o755) == 0 && mkdir(root + "/deeper/more", 0o755) == 0)
        #expect(made)
        try SetFixture.write(root + "/deeper/more/c-300", pid: 300, program: "gamma", offset: SetFixture.baseOffset,
                             ticks: [SetFixture.Tick(ring: 0, monotonic: 5000, n: 1)])
        #expect(throws: TraceError(.invalidConfiguration, "\(root) holds 3 traces, in its subdirectories and deeper below: read one of them (\(root)/a-100, \(root)/b-200, \(root)/deeper/more/c-300), or a directory whose subdirectories are the traces to read together")) {
            try CTFTraceSet(directory: root)
        }
        CTFEndToEndTests.removeTree(root + "/deeper")
        for name in ["a-100", "b-200"] { SetFixture.writeFile(root + "/\(name)/metadata", Array("/* CTF 1.8 */\nnonsense\n".utf8)) }
        do {
            _ = try CTFTraceSet(directory: root)
            Issue.record("a set of unreadable traces was opened")
        } catch {
            #expect(error.code == .corrupted)
            #expect(error.message.hasPrefix("none of the 2 traces in \(root) can be read: \(root)/a-100: \(root)/a-100/metadata: "), "\(error)")
            #expect(error.message.contains("; \(root)/b-200: \(root)/b-200/metadata: "), "\(error)")
        }
    }

    @Test("a trace of a set that cannot be opened is left out and listed; one without its metadata too; the others are read whole")
    func unreadableAtOpen() throws {
        let root = SetFixture.directory("unreadable")
        defer { CTFEndToEndTests.removeTree(root) }
        let times = try SetFixture.pair(in: root)
        try SetFixture.write(root + "/c-300", pid: 300, program: "gamma", offset: SetFixture.baseOffset,
                             ticks: [SetFixture.Tick(ring: 0, monotonic: 5000, n: 1)])
        SetFixture.writeFile(root + "/c-300/metadata", Array("/* CTF 1.8 */\nnonsense\n".utf8))
        try SetFixture.write(root + "/d-400", pid: 400, program: "delta", offset: SetFixture.baseOffset,
                             ticks: [SetFixture.Tick(ring: 0, monotonic: 5000, n: 1)])
        // SAFETY: unlink takes the path by value.
        let removed = unsafe unlink(root + "/d-400/metadata")
        #expect(removed == 0)
        let set = try CTFTraceSet(directory: root)
        #expect(set.isSet)
        #expect(set.members.map(\.process.label) == ["alpha/100", "beta/200"])
        #expect(set.unreadable.map(\.directory) == [root + "/c-300", root + "/d-400"])
        #expect(set.unreadable.allSatisfy { $0.recordsRead == nil })
        let text = set.unreadable[0].description
        #expect(text.hasPrefix("\(root)/c-300 cannot be read and is left out, the other traces are read: \(root)/c-300/metadata: "), "\(text)")
        #expect(text.hasSuffix(" (check or remove that trace)"), "\(text)")
        #expect(set.unreadable[1].error.code == .notFound, "\(set.unreadable[1])")
        let (elements, problems) = try SetFixture.readAll(set)
        #expect(problems.isEmpty)
        #expect(elements.filter { SetFixture.n($0.record) != nil }.count == times[0].count + times[1].count)
    }

    @Test("a trace of a set damaged in its middle: its records before the damage are kept, the others' all, and the problem says how far it was read")
    func damagedWhileRead() throws {
        let root = SetFixture.directory("damaged")
        defer { CTFEndToEndTests.removeTree(root) }
        let alpha = (0..<100).map { SetFixture.Tick(ring: 0, monotonic: 10_000 + UInt64($0) * 10_000, n: UInt64($0)) }
        try SetFixture.write(root + "/a-100", pid: 100, program: "alpha", offset: SetFixture.baseOffset, ticks: alpha)
        // 1500 events in 4 KiB packets: several packets on ring 0; the second packet's magic is
        // damaged, and the index (which would reveal it when the trace is opened) removed.
        let beta = (0..<1500).map { SetFixture.Tick(ring: 0, monotonic: 5_000 + UInt64($0) * 1000, n: 1000 + UInt64($0)) }
        let damaged = root + "/b-200"
        try SetFixture.write(damaged, pid: 200, program: "beta", offset: SetFixture.baseOffset, rings: 1, ticks: beta, packetCapacity: 4096)
        CTFEndToEndTests.removeTree(damaged + "/index")
        var stream = SetFixture.readFile(damaged + "/channel0_0")
        // packet_size (in bits) is at byte 56 of a packet: after magic, uuid, stream_id,
        // stream_instance_id, timestamp_begin, timestamp_end and content_size.
        try #require(stream.count > 64)
        let packetSize = Int(SetFixture.uint64(stream, at: 56) / 8)
        try #require(packetSize > 0 && stream.count > 2 * packetSize)
        stream[packetSize] ^= 0x55
        SetFixture.writeFile(damaged + "/channel0_0", stream)

        // Alone, the damaged trace is an error.
        let alone = try CTFTraceSet(directory: damaged)
        #expect(throws: TraceError.self) { try SetFixture.readAll(alone) }

        let set = try CTFTraceSet(directory: root)
        #expect(set.unreadable.isEmpty)
        let (elements, problems) = try SetFixture.readAll(set)
        #expect(problems.count == 1)
        let problem = try #require(problems.first)
        let fromDamaged = elements.filter { $0.member == 1 }.count
        #expect(problem.directory == damaged && problem.recordsRead == UInt64(fromDamaged), "\(problem)")
        #expect(fromDamaged > 0 && fromDamaged < 1500, "\(fromDamaged)")
        #expect(problem.error.message.hasPrefix("\(damaged)/channel0_0: byte offset \(packetSize): "), "\(problem)")
        #expect(problem.description.hasPrefix("\(damaged) is damaged: read stopped after \(fromDamaged) of its records, the others' records go on: "), "\(problem)")
        #expect(elements.filter { $0.member == 0 }.compactMap { SetFixture.n($0.record) } == (0..<100).map { UInt64($0) })
    }

    @Test("Chrome export of a set: one process per traced process (pid and name), each event under its process")
    func chromeExport() throws {
        let root = SetFixture.directory("chrome")
        defer { CTFEndToEndTests.removeTree(root) }
        try SetFixture.pair(in: root)
        let output = root + ".json"
        defer { SetFixture.remove(output) }
        let summary = try ChromeTraceExporter().export(try CTFTraceSet(directory: root), to: output)
        #expect(summary.events == 500 && summary.discardedRanges == 1 && summary.processes == 2)
        let entries = try Self.chromeEntries(output)
        let names = Dictionary(uniqueKeysWithValues: entries.filter { $0["name"] as? String == "process_name" }.map {
            (($0["pid"] as? Int) ?? -1, (($0["args"] as? [String: Any])?["name"] as? String) ?? "")
        })
        #expect(names == [100: "alpha", 200: "beta"])
        let ticks = entries.filter { $0["name"] as? String == "set:tick" }
        #expect(ticks.filter { $0["pid"] as? Int == 100 }.count == 200)
        #expect(ticks.filter { $0["pid"] as? Int == 200 }.count == 300)
        #expect(ticks.allSatisfy { (($0["args"] as? [String: Any])?["n"] as? Int).map { n in n < 1000 } == ($0["pid"] as? Int == 100) })
        let discarded = entries.filter { $0["name"] as? String == "discarded events" }
        #expect(discarded.count == 1 && discarded.first?["pid"] as? Int == 200)
    }

    @Test("Perfetto export of a set: a process per traced process, every event, decoded by protoc + python3-protobuf",
          .enabled(if: PerfettoExportTests.decoderAvailable, "needs /usr/bin/protoc and python3-protobuf"))
    func perfettoExport() throws {
        let root = SetFixture.directory("perfetto")
        defer { CTFEndToEndTests.removeTree(root) }
        try SetFixture.pair(in: root)
        let output = root + ".pftrace"
        defer { SetFixture.remove(output) }
        let summary = try PerfettoTraceExporter().export(try CTFTraceSet(directory: root), to: output)
        #expect(summary.instants == 500 && summary.discardedRanges == 1)
        let check = try HelperProcess.run(CTFEndToEndTests.python, [PerfettoExportTests.checker, output],
                                          environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
        #expect(check.exitCode == 0, "\(check)")
        let fields = try #require(check.fields(of: "perfetto: "), "\(check)")
        #expect(fields["processes"] == "2" && fields["instants"] == "500", "\(check)")
        #expect(fields["unresolved"] == "0" && fields["unknown_tracks"] == "0" && fields["nesting_errors"] == "0", "\(check)")
    }

    @Test("Chrome export: two programs with one pid (pid reuse) stay two processes; two traces of one process are one")
    func chromeProcessIDs() throws {
        let root = SetFixture.directory("chrome-ids")
        defer { CTFEndToEndTests.removeTree(root) }
        let tick = [SetFixture.Tick(ring: 0, monotonic: 5000, n: 1)]
        try SetFixture.write(root + "/a", pid: 100, program: "alpha", offset: SetFixture.baseOffset, ticks: tick)
        try SetFixture.write(root + "/b", pid: 100, program: "beta", offset: SetFixture.baseOffset, ticks: tick)
        try SetFixture.write(root + "/c", pid: 100, program: "alpha", offset: SetFixture.baseOffset + 10, ticks: tick)
        let set = try CTFTraceSet(directory: root)
        #expect(set.processes == [CTFTraceSet.Process(pid: 100, program: "alpha"), CTFTraceSet.Process(pid: 100, program: "beta")])
        #expect(TraceTimeline.processIDs(set) == [100, (1 << 22) + 1, 100])
    }

    /// The `traceEvents` of a Chrome trace JSON file, parsed by Foundation.
    static func chromeEntries(_ path: String) throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return try #require(object?["traceEvents"] as? [[String: Any]], "\(path) has no traceEvents array")
    }
}

// MARK: - The CLI on what attach writes

@Suite("CLI: view, stats and export read attach's directory of traces as one trace", .serialized,
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath)
                && HelperProcess.isExecutable(HelperProcess.buildDirectory + "/rseqtrace-example"),
                "rseqtrace and rseqtrace-example are built next to the tests"))
struct CLITraceSetTests {
    static var example: String { HelperProcess.buildDirectory + "/rseqtrace-example" }

    /// Starts the example program (one worker at `rate` events/s for at most 60 s) and waits until
    /// it is traceable.
    static func startExample(rate: Int) throws -> ChildProcess {
        let target = try HelperProcess.start(example, ["1", "--duration", "60", "--rate", "\(rate)"],
                                             environment: HelperProcess.childEnvironment())
        var found = false
        for _ in 0..<200 where !found {
            found = ControlClient.endpoint(of: target.pid) != nil
            if !found { SystemClock.sleep(milliseconds: 50) }
        }
        #expect(found, "the example program never opened its control socket")
        return target
    }

    /// The rows of `stats`' process table: pid, program, events, discarded, trace name.
    static func processRows(_ run: HelperProcess.Outcome) -> [[Substring]] {
        let lines = run.stdoutLines
        guard let header = lines.firstIndex(where: { $0.hasPrefix("pid ") }) else { return [] }
        return lines[(header + 1)...].prefix { $0.first?.isNumber == true || $0.hasPrefix("?") }.map { $0.split(separator: " ") }
    }

    @Test("attach two programs, then: view labels every line with its process and --pid selects one, stats counts each as read alone, the Chrome and Perfetto exports have both processes, babeltrace2 counts the same; a damaged trace is left out with a warning",
          .timeLimit(.minutes(3)))
    func attachedPair() throws {
        let root = CTFEndToEndTests.temporaryDirectory("set-attach")
        CTFEndToEndTests.removeTree(root)
        defer { CTFEndToEndTests.removeTree(root) }
        let targets = [try Self.startExample(rate: 400), try Self.startExample(rate: 700)]
        defer {
            for target in targets {
                target.signal(SIGKILL)
                _ = target.wait(timeout: .seconds(10))
            }
        }
        let pids = targets.map(\.pid)
        let attach = try HelperProcess.runRseqtrace(["attach", "\(pids[0])", "\(pids[1])", "--duration", "1", "-o", root],
                                                    timeout: .seconds(60))
        #expect(attach.exitCode == 0, "\(attach)")
        var recorded: [Int32: Int] = [:]
        for line in attach.stdoutLines where line.hasPrefix("process: ") {
            let fields = HelperProcess.parseFields(line.dropFirst("process: ".count))
            if let pid = fields["pid"].flatMap({ Int32($0) }), let count = fields["recorded"].flatMap({ Int($0) }) { recorded[pid] = count }
        }
        #expect(Set(recorded.keys) == Set(pids), "\(attach)")
        #expect(recorded.values.allSatisfy { $0 > 0 }, "\(attach)")
        let total = recorded.values.reduce(0, +)
        let labels = pids.map { "[rseqtrace-example/\($0)] " }

        // view: one line per event, each naming its process, in non-decreasing real time.
        let view = try HelperProcess.runRseqtrace(["view", root], timeout: .seconds(60))
        #expect(view.exitCode == 0 && view.stderr.isEmpty, "\(view)")
        let lines = view.stdoutLines
        #expect(lines.count == total, "\(view.stdoutLines.prefix(3))")
        for (pid, label) in zip(pids, labels) {
            #expect(lines.filter { $0.contains(") " + label + "cpu ") }.count == recorded[pid], "\(label)")
        }
        let set = try CTFTraceSet(directory: root)
        let realtimes = try SetFixture.readAll(set).elements.map { SetFixture.realtime($0.record) }
        #expect(realtimes.count == total && zip(realtimes, realtimes.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(lines.map { String($0.prefix(20)) } == realtimes.map { "[" + TraceTextTime.timeOfDay($0) + "]" })

        // view --pid: exactly that process's lines, as they appear in the whole view.
        let one = try HelperProcess.runRseqtrace(["view", root, "--pid", "\(pids[1])"], timeout: .seconds(60))
        #expect(one.exitCode == 0 && one.stderr.isEmpty, "\(one)")
        // The lines without their delta (from the line before, which differs).
        func withoutDelta(_ line: Substring) -> String { String(line.prefix(20) + line.drop(while: { $0 != ")" })) }
        #expect(one.stdoutLines.map(withoutDelta) == lines.filter { $0.contains(labels[1]) }.map(withoutDelta))
        #expect(one.stdoutLines.count == recorded[pids[1]])
        let both = try HelperProcess.runRseqtrace(["view", root, "--pid", "\(pids[0])", "--pid", "\(pids[1])"], timeout: .seconds(60))
        #expect(both.stdout == view.stdout, "\(both.stderr)")
        let none = try HelperProcess.runRseqtrace(["view", root, "--pid", "1"], timeout: .seconds(60))
        #expect(none.exitCode == 0 && none.stdout.isEmpty, "\(none)")
        // In the order of the trace directories' names.
        let sortedLabels = pids.sorted { "rseqtrace-example-\($0)" < "rseqtrace-example-\($1)" }
            .map { "rseqtrace-example/\($0)" }.joined(separator: ", ")
        #expect(none.stderrLines == ["warning: --pid 1: the trace has no process 1 (its processes: \(sortedLabels)); nothing is shown for it"], "\(none)")

        // stats: a row per process with what stats of its trace alone counts; processes=2.
        let stats = try HelperProcess.runRseqtrace(["stats", root], timeout: .seconds(60))
        #expect(stats.exitCode == 0 && stats.stderr.isEmpty, "\(stats)")
        let fields = try #require(stats.fields(of: "stats: "), "\(stats)")
        #expect(fields["events"] == "\(total)" && fields["processes"] == "2" && fields["unreadable"] == "0", "\(stats)")
        #expect(stats.stdoutLines.last?.hasPrefix("stats: events=\(total) discarded=\(fields["discarded"] ?? "") streams=\(set.streamCount) duration_ns=") == true, "\(stats)")
        let rows = Self.processRows(stats)
        #expect(rows.count == 2, "\(stats)")
        for row in rows {
            guard row.count == 5, let pid = Int32(row[0]) else { Issue.record("bad row \(row)"); continue }
            #expect(row[1] == "rseqtrace-example" && row[4] == "rseqtrace-example-\(pid)", "\(row)")
            let alone = try HelperProcess.runRseqtrace(["stats", root + "/" + row[4]], timeout: .seconds(60))
            let aloneFields = try #require(alone.fields(of: "stats: "), "\(alone)")
            #expect(aloneFields["events"] == String(row[2]) && aloneFields["discarded"] == String(row[3]), "\(row) vs \(alone.stdoutLines.last ?? "")")
            // A single trace's line is as it always was: no processes= and unreadable=.
            #expect(alone.stdoutLines.last?.hasSuffix(" duration_ns=\(aloneFields["duration_ns"] ?? "")") == true, "\(alone)")
            #expect(Int(row[2]) == recorded[pid], "\(row)")
        }

        // export: both processes, named, with their events.
        let json = root + ".json"
        defer { SetFixture.remove(json) }
        let export = try HelperProcess.runRseqtrace(["export", root, "-o", json], timeout: .seconds(60))
        #expect(export.exitCode == 0 && export.stderr.isEmpty, "\(export)")
        #expect(export.stdout.hasPrefix("exported \(total) events of 2 processes and "), "\(export)")
        let entries = try CTFTraceSetTests.chromeEntries(json)
        let processNames = entries.filter { $0["name"] as? String == "process_name" }
            .map { ($0["pid"] as? Int ?? -1, ($0["args"] as? [String: Any])?["name"] as? String ?? "") }
        #expect(processNames.map(\.0).sorted() == pids.map { Int($0) }.sorted() && processNames.allSatisfy { $0.1 == "rseqtrace-example" })
        for pid in pids {
            #expect(entries.filter { $0["name"] as? String == "example:work" && $0["pid"] as? Int == Int(pid) }.count == recorded[pid])
        }

        // The Perfetto export: both processes, every event.
        if PerfettoExportTests.decoderAvailable {
            let pftrace = root + ".pftrace"
            defer { SetFixture.remove(pftrace) }
            let perfetto = try HelperProcess.runRseqtrace(["export", root, "--format", "perfetto", "-o", pftrace], timeout: .seconds(60))
            #expect(perfetto.exitCode == 0 && perfetto.stderr.isEmpty && perfetto.stdout.hasPrefix("exported \(total) events, "), "\(perfetto)")
            let check = try HelperProcess.run(CTFEndToEndTests.python, [PerfettoExportTests.checker, pftrace],
                                              environment: HelperProcess.childEnvironment(), timeout: .seconds(60))
            let decoded = try #require(check.fields(of: "perfetto: "), "\(check)")
            #expect(decoded["processes"] == "2" && decoded["instants"] == "\(total)", "\(check)")
        }

        // babeltrace2 reads the directory as one trace too, with the same events.
        if HelperProcess.isExecutable(CTFEndToEndTests.babeltrace) {
            let count = try BabeltraceCount(root)
            #expect(count.events == total, "\(count)")
        }

        // A damaged trace beside them: left out with a warning, the others read whole.
        // SAFETY: mkdir takes the path by value.
        let made = unsafe mkdir(root + "/broken-1", 0o755)
        #expect(made == 0)
        SetFixture.writeFile(root + "/broken-1/metadata", Array("/* CTF 1.8 */\nnonsense\n".utf8))
        for command in ["view", "stats"] {
            let run = try HelperProcess.runRseqtrace([command, root], timeout: .seconds(60))
            #expect(run.exitCode == 0, "\(run)")
            #expect(run.stderrLines.count == 1 && run.stderrLines[0].hasPrefix("warning: \(root)/broken-1 cannot be read and is left out, the other traces are read: \(root)/broken-1/metadata: "), "\(run)")
            if command == "view" { #expect(run.stdout == view.stdout) }
            if command == "stats" {
                let damaged = try #require(run.fields(of: "stats: "), "\(run)")
                #expect(damaged["events"] == "\(total)" && damaged["processes"] == "2" && damaged["unreadable"] == "1", "\(run)")
            }
        }
    }

    @Test("stats --spans of a set pairs span begins and ends within their process, though both processes use the same span ids")
    func spansPerProcess() throws {
        let root = SetFixture.directory("spans")
        defer { CTFEndToEndTests.removeTree(root) }
        // Span 1 of alpha from 1000 to 3000 ns, span 1 of beta from 2000 to 5000 ns (interleaved).
        func span(_ begin: UInt64, _ end: UInt64) -> [SetFixture.Tick] {
            [SetFixture.Tick(ring: 0, monotonic: begin, event: 2, fields: [1]),
             SetFixture.Tick(ring: 0, monotonic: end, event: 3, fields: [1, end - begin])]
        }
        try SetFixture.write(root + "/a-100", pid: 100, program: "alpha", offset: SetFixture.baseOffset, ticks: span(1000, 3000))
        try SetFixture.write(root + "/b-200", pid: 200, program: "beta", offset: SetFixture.baseOffset, ticks: span(2000, 5000))
        let run = try HelperProcess.runRseqtrace(["stats", "--spans", root], timeout: .seconds(60))
        #expect(run.exitCode == 0 && run.stderr.isEmpty, "\(run)")
        let spans = try #require(run.fields(of: "spans: "), "\(run)")
        #expect(spans["spans"] == "2" && spans["unmatched_begins"] == "0" && spans["orphan_ends"] == "0", "\(run)")
    }

    @Test("view, stats and export of an empty directory: exit 1 with one error line saying it is empty")
    func emptyDirectory() throws {
        let root = SetFixture.directory("empty-cli")
        defer { CTFEndToEndTests.removeTree(root) }
        for arguments in [["view", root], ["stats", root], ["export", root, "-o", root + "/x.json"]] {
            let run = try HelperProcess.runRseqtrace(arguments, timeout: .seconds(60))
            #expect(run.exitCode == 1 && run.stdout.isEmpty, "\(run)")
            #expect(run.stderrLines == ["error: \(root) is empty: a trace directory holds `metadata` and stream files, or one trace per subdirectory (as `rseqtrace attach -o DIR` writes): name a directory with a trace"], "\(run)")
        }
    }
}

/// `HH:MM:SS.nnnnnnnnn` (UTC) of real-time nanoseconds, as `rseqtrace view` prints it.
private enum TraceTextTime {
    static func timeOfDay(_ realtime: Int64) -> String {
        let day: Int64 = 86_400 * 1_000_000_000
        let ns = ((realtime % day) + day) % day
        let seconds = ns / 1_000_000_000
        func digits(_ value: Int64, _ width: Int) -> String {
            let text = "\(value)"
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(digits(seconds / 3600, 2)):\(digits(seconds % 3600 / 60, 2)):\(digits(seconds % 60, 2)).\(digits(ns % 1_000_000_000, 9))"
    }
}
