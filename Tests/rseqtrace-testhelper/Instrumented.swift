#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceConsumer
import RseqTraceFormats
import Synchronization
import RseqTraceSupport

// `instrumented`: the typed instrumentation API (Tracepoint*, TraceRuntime) exercised in a process
// of its own, because the runtime is process-wide. Each scenario prints
// `instrumented: scenario=<name> ok=<0|1> ...` and explains any failure on stderr.

enum InstLevel: Int16, TraceEnum { case low = -5, mid = 0, high = 300 }
enum InstColor: UInt64, TraceEnum { case black = 0, white = 0xFFFF_FFFF_FFFF_FFFF }

let instScalars = Tracepoint11<UInt8, UInt16, UInt32, UInt64, Int8, Int16, Int32, Int64, Bool, Float, Double>(
    "inst:scalars", fields: "u8 u16 u32 u64 i8 i16 i32 i64 flag f32 f64")
let instText = Tracepoint4<String, TraceString<5>, Substring, StaticString>("inst:text", fields: "s bounded sub fixed")
let instBytes = Tracepoint2<[UInt8], TraceBytes<3>>("inst:bytes", fields: "raw bounded")
let instEnums = Tracepoint3<InstLevel, InstColor, UInt8>("inst:enums", fields: "level color tag")
let instEmpty = Tracepoint0("inst:empty")
let instSkipped = Tracepoint1<UInt32>("inst:skipped", fields: "n")
let instDebug = Tracepoint1<UInt32>("http:debug", fields: "n")
let instRequest = Tracepoint1<UInt32>("http:request", fields: "n")
let instLate = Tracepoint1<UInt64>("late:event", fields: "n")
let instWrongCount = Tracepoint2<UInt32, UInt32>("inst:wrong_count", fields: "only_one")
let instBadName = Tracepoint1<UInt32>("not-a-provider-name", fields: "n")
let instClashA = Tracepoint1<UInt32>("inst:clash", fields: "n")
let instClashB = Tracepoint1<UInt64>("inst:clash", fields: "n")
let instSameA = Tracepoint1<UInt32>("inst:same", fields: "n")
let instSameB = Tracepoint1<UInt32>("inst:same", fields: "n")
let instMalformed = Tracepoint1<LyingField>("inst:malformed", fields: "x")

/// A custom field whose encoding writes fewer bytes than it claims.
struct LyingField: TraceFieldValue {
    static var traceFieldType: FieldType { .uint64 }
    var traceEncodedSize: Int { 8 }
    func traceEncode(into writer: inout TracePayloadWriter) { writer.append(UInt32(7)) }
}

/// The texts the `types` scenario emits, and what a reader must see for each.
let instTexts: [(String, String)] = [
    ("", ""), ("abc", "abc"), ("héllo", "héllo"), ("✓✓", "✓✓"),   // 6 bytes: only the 5-byte TraceString keeps one ✓
    (String(repeating: "x", count: 300), String(repeating: "x", count: 255)),
    (String(repeating: "é", count: 200), String(repeating: "é", count: 127)),   // 400 bytes: 254 kept
]

enum InstrumentedCommand {
    static let usage = "instrumented --scenario types|emit-types|declaration-error|env|env-toggle|rules|late|problems|reattach|forwarder|malformed|macros [--events N]"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["scenario", "events"])
        let scenario = try options.string("scenario")
        let events = try options.int("events", default: 100, in: 1...1_000_000)
        var failures: [String] = []
        var facts: [String] = []
        func expect(_ condition: Bool, _ what: @autoclosure () -> String) {
            if !condition { failures.append(what()) }
        }
        switch scenario {
        case "types": typesScenario(events: events, expect, &facts)
        case "env": envScenario(events: events, &facts)
        case "env-toggle": envToggleScenario(expect, &facts)
        case "emit-types":
            emitTypes(events: events)
            facts.append("attached=\(TraceRuntime.attachedBuffer != nil ? 1 : 0) problems=\(TraceRuntime.problems.count)")
        case "declaration-error":
            // Its only tracepoint declares 2 fields and names 1: it stays disabled (reported on stderr).
            instWrongCount.emit(1, 2)
            facts.append("attached=\(TraceRuntime.attachedBuffer != nil ? 1 : 0) problems=\(TraceRuntime.problems.count)")
        case "rules": rulesScenario(expect, &facts)
        case "late": lateScenario(expect, &facts)
        case "problems": problemsScenario(expect, &facts)
        case "reattach": reattachScenario(expect, &facts)
        case "forwarder": forwarderScenario(expect, &facts)
        case "malformed": malformedScenario(expect, &facts)
        case "macros": macrosScenario(expect, &facts)
        default: throw UsageError("unknown scenario '\(scenario)'")
        }
        for failure in failures { printError("FAIL: \(failure)") }
        print("instrumented: scenario=\(scenario) ok=\(failures.isEmpty ? 1 : 0) \(facts.joined(separator: " "))")
        return failures.isEmpty ? 0 : 1
    }

    // MARK: - Helpers

    static func makeBuffer(_ tag: String) -> SharedTraceBuffer {
        do {
            let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: "rseqtrace-inst-\(tag)-\(getpid())",
                                                                         ringSize: 1 << 20, subbufferSize: 1 << 16))
            // The runtime keeps an attached buffer mapped for the whole process, so its deinit never
            // unlinks the name: unlink it now (the mapping stays valid).
            buffer.removeName()
            return buffer
        } catch {
            printError("error: \(error)")
            finish(3)
        }
    }

    /// Drains everything and decodes each record with its schema: (event name, fields) in ring order.
    static func drain(_ buffer: SharedTraceBuffer) -> (events: [(String, [CTFFieldValue])], undecodable: Int) {
        let drainer = TraceDrainer(buffer: buffer)
        var records: [(UInt16, [UInt8])] = []
        do {
            _ = try drainer.drainOnce(quiescent: true) { records.append(($0.eventID, $0.bytes)) }
            let schemas = try buffer.registeredEvents()
            var events: [(String, [CTFFieldValue])] = []
            var undecodable = 0
            for (id, bytes) in records {
                if let schema = schemas[id], let fields = EventPayloadDecoder.decode(bytes, schema: schema) {
                    events.append((schema.name, fields))
                } else {
                    undecodable += 1
                }
            }
            return (events, undecodable)
        } catch {
            printError("error: draining: \(error)")
            finish(3)
        }
    }

    static func attach(_ buffer: SharedTraceBuffer) {
        do { try TraceRuntime.attach(buffer) } catch {
            printError("error: \(error)")
            finish(3)
        }
    }

    static func count(_ events: [(String, [CTFFieldValue])], _ name: String) -> Int {
        events.filter { $0.0 == name }.count
    }

    // MARK: - Scenarios

    /// Every field type round-trips through a buffer with exact values, bounds and truncation.
    static func typesScenario(events: Int, _ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let buffer = makeBuffer("types")
        attach(buffer)
        emitTypes(events: events)
        let (decoded, undecodable) = drain(buffer)
        expect(undecodable == 0, "\(undecodable) records did not match their schema")
        expect(TraceRuntime.problems.isEmpty, "runtime problems: \(TraceRuntime.problems)")
        var checked = 0
        var perEvent: [String: Int] = [:]
        for (name, fields) in decoded {
            let i = perEvent[name, default: 0]
            perEvent[name] = i + 1
            let n = UInt64(i)
            let expected: [CTFValue]
            switch name {
            case "inst:scalars":
                expected = [.unsigned(n & 0xFF), .unsigned((n &* 7) & 0xFFFF), .unsigned((n &* 1_000_003) & 0xFFFF_FFFF),
                            .unsigned(n &* 0x1_0000_0001), .signed(Int64(Int8(truncatingIfNeeded: -Int64(i)))),
                            .signed(Int64(Int16(truncatingIfNeeded: -Int64(i) &* 300))),
                            .signed(Int64(Int32(truncatingIfNeeded: -Int64(i) &* 70_000))), .signed(Int64.min &+ Int64(i)),
                            .bool(i % 2 == 0), .float32(Float(i) + 0.25), .float64(Double(i) * -1.5)]
            case "inst:text":
                let (text, kept) = instTexts[i % instTexts.count]
                let bounded = String(decoding: Array(text.utf8).prefix(TracingExpectations.boundedPrefix(text, 5)), as: UTF8.self)
                let sub = String(text.dropFirst())
                let subKept = String(decoding: Array(sub.utf8).prefix(TracingExpectations.boundedPrefix(sub, 255)), as: UTF8.self)
                expected = [.string(kept), .string(bounded), .string(subKept), .string("fixed literal")]
            case "inst:bytes":
                let raw = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: min(i % 300, 255))
                expected = [.unsigned(UInt64(raw.count)), .bytes(raw), .unsigned(3), .bytes([1, 2, 3])]
            case "inst:enums":
                let level = InstLevel.allCases[i % 3], color = InstColor.allCases[i % 2]
                expected = [.enumeration(label: "\(level)", value: Int64(level.rawValue), isSigned: true),
                            .enumeration(label: "\(color)", value: Int64(bitPattern: color.rawValue), isSigned: false),
                            .unsigned(n & 0xFF)]
            case "inst:empty":
                expected = []
            default:
                expect(false, "unexpected event \(name)")
                continue
            }
            let values = fields.map(\.value)
            expect(values == expected, "\(name) #\(i): got \(values), expected \(expected)")
            checked += 1
        }
        for name in ["inst:scalars", "inst:text", "inst:bytes", "inst:enums", "inst:empty"] {
            expect(perEvent[name] == events, "\(name): \(perEvent[name] ?? 0) records, expected \(events)")
        }
        facts.append("checked=\(checked)")
    }

    /// The events of the `types` scenario: `events` of each of inst:scalars, inst:text, inst:bytes,
    /// inst:enums and inst:empty, with values derived from their index.
    static func emitTypes(events: Int) {
        for i in 0..<events {
            let n = UInt64(i)
            instScalars.emit(UInt8(truncatingIfNeeded: n), UInt16(truncatingIfNeeded: n &* 7), UInt32(truncatingIfNeeded: n &* 1_000_003),
                             n &* 0x1_0000_0001, Int8(truncatingIfNeeded: -Int64(i)), Int16(truncatingIfNeeded: -Int64(i) &* 300),
                             Int32(truncatingIfNeeded: -Int64(i) &* 70_000), Int64.min &+ Int64(i), i % 2 == 0,
                             Float(i) + 0.25, Double(i) * -1.5)
            let (text, _) = instTexts[i % instTexts.count]
            instText.emit(text, TraceString(text), text.dropFirst(), "fixed literal")
            instBytes.emit(Array(repeating: UInt8(truncatingIfNeeded: i), count: i % 300), TraceBytes([1, 2, 3, 4]))
            instEnums.emit(InstLevel.allCases[i % 3], InstColor.allCases[i % 2], UInt8(truncatingIfNeeded: i))
            instEmpty.emit()
        }
    }

    /// Attached through RSEQTRACE_BUFFER (automatically, at first use) with RSEQTRACE_EVENTS rules
    /// from the environment: emits `events` of each of inst:scalars, inst:skipped, http:debug, http:request.
    static func envScenario(events: Int, _ facts: inout [String]) {
        for i in 0..<events {
            let n = UInt32(i)
            instScalars.emit(1, 2, n, 4, 5, 6, 7, 8, true, 1.5, 2.5)
            instSkipped.emit(n)
            instDebug.emit(n)
            instRequest.emit(n)
        }
        facts.append("attached=\(TraceRuntime.attachedBuffer != nil ? 1 : 0)")
        // Already attached at start-up: attaching again from the environment keeps that buffer.
        let before = TraceRuntime.attachedBuffer
        let again = (try? TraceRuntime.attachFromEnvironment()) ?? false
        facts.append("reattach_same=\(again && before != nil && TraceRuntime.attachedBuffer === before ? 1 : 0)")
        facts.append("problems=\(TraceRuntime.problems.count)")
        facts.append("enabled=" + ["inst:scalars", "inst:skipped", "http:debug", "http:request"]
            .filter { TraceRuntime.isEnabled($0) }.joined(separator: ","))
    }

    /// Starting from the RSEQTRACE_EVENTS rules: for each event, `enable` adds exactly that event to
    /// the enabled set and `disable` removes exactly it, and disabling then enabling (or enabling then
    /// disabling) an event brings back the previous set. Prints the set it started from.
    static func envToggleScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let names = ["inst:scalars", "inst:skipped", "http:debug", "http:request"]
        func enabledSet() -> Set<String> { Set(names.filter { TraceRuntime.isEnabled($0) }) }
        let start = enabledSet()
        facts.append("enabled=" + names.filter(start.contains).joined(separator: ","))
        facts.append("problems=\(TraceRuntime.problems.count)")
        do {
            for name in names {
                let before = enabledSet()
                if before.contains(name) {
                    try TraceRuntime.disable(name)
                    expect(enabledSet() == before.subtracting([name]), "disable(\(name)) changed \(before.sorted()) to \(enabledSet().sorted())")
                    try TraceRuntime.enable(name)
                } else {
                    try TraceRuntime.enable(name)
                    expect(enabledSet() == before.union([name]), "enable(\(name)) changed \(before.sorted()) to \(enabledSet().sorted())")
                    try TraceRuntime.disable(name)
                }
                expect(enabledSet() == before, "toggling \(name) left \(enabledSet().sorted()), expected \(before.sorted())")
            }
        } catch {
            expect(false, "rule API failed: \(error)")
        }
    }

    /// Enable/disable by exact name and wildcard, rule order, and that a disabled guard skips arguments.
    static func rulesScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let buffer = makeBuffer("rules")
        attach(buffer)
        var evaluated = 0
        func costly() -> UInt32 {
            evaluated += 1
            return 7
        }
        func emitAll(_ round: UInt32) {
            instDebug.emit(round)
            instRequest.emit(round)
            instSkipped.emit(round)
            if instRequest.isEnabled { instRequest.emit(costly()) }
        }
        do {
            emitAll(0)                                  // no rule: everything
            try TraceRuntime.disable("http:*")
            emitAll(1)                                  // only inst:skipped
            try TraceRuntime.enable("http:debug")
            emitAll(2)                                  // http:debug back, inst:skipped unchanged
            try TraceRuntime.setRules("*,-inst:*")
            emitAll(3)                                  // http:debug and http:request
            try TraceRuntime.setRules("")
            emitAll(4)                                  // everything again
            try TraceRuntime.disable("http:debug")      // an admin endpoint turns one event off...
            emitAll(5)
            try TraceRuntime.enable("http:debug")       // ...and on again: every event as in round 4
            emitAll(6)
            for _ in 0..<1000 {
                try TraceRuntime.disable("http:debug")
                try TraceRuntime.enable("http:debug")
            }
            let rules = TraceRuntime.rules
            expect(rules.rules.count == 1 && rules.startsEnabled, "toggling left \(rules.rules.count) rules, start \(rules.startsEnabled)")
            facts.append("rule_count=\(rules.rules.count)")
            do {
                try TraceRuntime.enable("http:dé*")
                expect(false, "a pattern with 'é' was accepted")
            } catch {
                facts.append("bad_pattern_refused=1")
            }
        } catch {
            expect(false, "rule API failed: \(error)")
        }
        let (events, undecodable) = drain(buffer)
        expect(undecodable == 0, "undecodable records")
        func rounds(_ name: String) -> [UInt64] {
            events.filter { $0.0 == name }.compactMap { if case .unsigned(let v) = $0.1[0].value, v != 7 { return v } else { return nil } }
        }
        expect(rounds("http:debug") == [0, 2, 3, 4, 6], "http:debug rounds \(rounds("http:debug"))")
        expect(rounds("http:request") == [0, 3, 4, 5, 6], "http:request rounds \(rounds("http:request"))")
        expect(rounds("inst:skipped") == [0, 1, 2, 4, 5, 6], "inst:skipped rounds \(rounds("inst:skipped"))")
        expect(evaluated == 5, "the guarded argument was evaluated \(evaluated) times, expected 5 (enabled rounds only)")
        expect(TraceRuntime.isEnabled("anything:else"), "with no rule everything is enabled")
        facts.append("evaluated=\(evaluated)")
    }

    /// A tracepoint first reached after records were drained registers then; the registry grows.
    static func lateScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let buffer = makeBuffer("late")
        attach(buffer)
        instRequest.emit(1)
        let before = (try? buffer.registeredEvents())?.count ?? -1
        let first = drain(buffer)
        instLate.emit(42)
        instLate.emit(43)
        let after = (try? buffer.registeredEvents())?.count ?? -1
        let second = drain(buffer)
        expect(before == 1 && after == 2, "registry had \(before) then \(after) events, expected 1 then 2")
        expect(first.events.map(\.0) == ["http:request"], "first drain: \(first.events.map(\.0))")
        expect(second.events.map(\.0) == ["late:event", "late:event"] && second.undecodable == 0,
               "second drain: \(second.events.map(\.0)), \(second.undecodable) undecodable")
        facts.append("registered=\(after)")
    }

    /// Declarations the runtime must refuse, each with a clear message, without affecting others.
    static func problemsScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let buffer = makeBuffer("problems")
        attach(buffer)
        instWrongCount.emit(1, 2)
        instBadName.emit(1)
        instClashA.emit(1)
        instClashB.emit(2)
        instSameA.emit(1)
        instSameB.emit(2)
        let local = Tracepoint1<UInt32>("inst:local", fields: "n")
        local.emit(1)
        expect(!local.isEnabled, "a tracepoint on the stack must stay disabled")
        let problems = TraceRuntime.problems
        func reported(_ fragment: String) -> Bool { problems.contains { $0.contains(fragment) } }
        expect(reported("inst:wrong_count stays disabled: it declares 2 field type(s) but 1 field name(s)"), "field count problem: \(problems)")
        expect(reported("not-a-provider-name stays disabled: event name 'not-a-provider-name' must be 'provider:event'"), "bad name problem: \(problems)")
        expect(reported("inst:clash stays disabled: another tracepoint registered inst:clash with different fields"), "clash problem: \(problems)")
        expect(reported("inst:local stays disabled: a Tracepoint must be a global or a static let"), "static storage problem: \(problems)")
        expect(problems.count == 4, "\(problems.count) problems, expected 4: \(problems)")
        let (events, _) = drain(buffer)
        expect(events.map(\.0) == ["inst:clash", "inst:same", "inst:same"], "recorded \(events.map(\.0))")
        facts.append("problems=\(problems.count)")
    }

    /// Switching buffers and detaching: each record lands in the buffer attached when it was emitted.
    static func reattachScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let first = makeBuffer("first"), second = makeBuffer("second")
        attach(first)
        instRequest.emit(1)
        attach(second)
        instRequest.emit(2)
        instLate.emit(3)
        attach(second)              // again: no change
        instRequest.emit(4)
        TraceRuntime.detach()
        instRequest.emit(5)
        expect(!instRequest.isEnabled, "detached: nothing to record into")
        attach(first)
        instRequest.emit(6)
        let a = drain(first).events.map { "\($0.0)=\($0.1[0].value)" }
        let b = drain(second).events.map { "\($0.0)=\($0.1[0].value)" }
        expect(a == ["http:request=1", "http:request=6"], "first buffer: \(a)")
        expect(b == ["http:request=2", "late:event=3", "http:request=4"], "second buffer: \(b)")
        facts.append("first=\(a.count) second=\(b.count)")
    }

    /// The forwarder sink: registration once per event, payload bytes equal to the buffer's.
    static func forwarderScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        final class Collector: TraceEventForwarder, @unchecked Sendable {
            let lock = Mutex<([Int: EventSchema], [(Int, [UInt8])])>(([:], []))
            func register(event: Int, schema: EventSchema) { lock.withLock { $0.0[event] = schema } }
            func forward(event: Int, payload: RawSpan) {
                // SAFETY: the span's bytes are readable for the closure; copied out before it returns.
                let bytes = unsafe payload.withUnsafeBytes { unsafe Array($0) }
                lock.withLock { $0.1.append((event, bytes)) }
            }
        }
        let buffer = makeBuffer("forward")
        attach(buffer)
        let collector = Collector()
        TraceRuntime.installForwarder(collector)
        TraceRuntime.setSinks([.buffer, .forwarder])
        instText.emit("both", "sinks", "xyz", "f")
        instRequest.emit(9)
        TraceRuntime.setSinks(.forwarder)
        instRequest.emit(10)
        TraceRuntime.setSinks(.buffer)
        instRequest.emit(11)
        let (schemas, forwarded) = collector.lock.withLock { $0 }
        let recorded = drain(buffer).events
        let decodedForwarded = forwarded.compactMap { event, bytes -> (String, [CTFFieldValue])? in
            guard let schema = schemas[event], let fields = EventPayloadDecoder.decode(bytes, schema: schema) else { return nil }
            return (schema.name, fields)
        }
        expect(decodedForwarded.count == 3, "forwarded \(forwarded.count) events, decoded \(decodedForwarded.count); expected 3")
        expect(Set(schemas.values.map(\.name)) == ["inst:text", "http:request"], "registered with the forwarder: \(schemas.values.map(\.name))")
        expect(recorded.map(\.0) == ["inst:text", "http:request", "http:request"], "buffer: \(recorded.map(\.0))")
        if decodedForwarded.count == 3, recorded.count == 3 {
            expect(decodedForwarded[0].1 == recorded[0].1 && decodedForwarded[1].1 == recorded[1].1,
                   "forwarded values differ from the buffer's")
            expect(decodedForwarded[2].1.first?.value == .unsigned(10), "forwarder-only event: \(decodedForwarded[2].1)")
        }
        facts.append("forwarded=\(forwarded.count) recorded=\(recorded.count)")
    }

    /// A custom field that writes the wrong number of bytes: its records are dropped, reported once.
    static func malformedScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let buffer = makeBuffer("malformed")
        attach(buffer)
        instMalformed.emit(LyingField())
        instMalformed.emit(LyingField())
        instRequest.emit(1)
        let (events, undecodable) = drain(buffer)
        let problems = TraceRuntime.problems
        expect(events.map(\.0) == ["http:request"] && undecodable == 0, "recorded \(events.map(\.0)), \(undecodable) undecodable")
        expect(problems.count == 1 && problems[0].contains("inst:malformed wrote a different number of bytes"), "problems: \(problems)")
        facts.append("problems=\(problems.count)")
    }
}

/// Expected truncation, computed independently of the library: the longest prefix of at most
/// `limit` bytes that is valid UTF-8 on its own.
enum TracingExpectations {
    static func boundedPrefix(_ text: String, _ limit: Int) -> Int {
        let bytes = Array(text.utf8)
        var kept = min(limit, bytes.count)
        while kept > 0 && String(validating: bytes[0..<kept], as: UTF8.self) == nil { kept -= 1 }
        return kept
    }
}
