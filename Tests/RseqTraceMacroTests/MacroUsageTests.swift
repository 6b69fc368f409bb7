import RseqTraceMacros
import Synchronization
import Testing

// Real events compiled through the macros. Nothing here attaches the process-wide runtime
// (`TraceRuntime.attach*`): with no buffer attached every event is disabled, which is what these tests check.
// Tests that record run in a subprocess.

@TraceEvent("macrotest:request")
struct MacroTestRequest {
    var bytes: UInt64
    var status: Int16
    var path: TraceString<64>
}

@TraceEvent("macrotest:empty")
struct MacroTestEmpty {}

public enum MacroTestMethod: UInt8, TraceEnum {
    case get, post
}

@TraceEvent("macrotest:mixed")
public struct MacroTestMixed {
    public var a, b: Int32
    public var method: MacroTestMethod
    public var name: String
    public var payload: [UInt8]
    public var tag: RseqTrace.TraceBytes<8>
    public var ok: Bool
    public var ratio: Double
    public var twice: Int64 { Int64(a) * 2 }
    public static let unrelated = 1
}

/// More fields than the fixed-arity `Tracepoint0`...`Tracepoint20` family has: the macro works for any count.
@TraceEvent("macrotest:wide")
struct MacroTestWide {
    var f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19, f20, f21, f22: UInt8
    var last: String
}

enum MacroTestEvents {
    @TraceEvent("macrotest:nested")
    struct Nested {
        var value: UInt32
    }
}

/// Counts how often an argument was evaluated.
private let evaluations = Atomic<Int>(0)

private func counted<T>(_ value: T) -> T {
    evaluations.add(1, ordering: .relaxed)
    return value
}

@Suite("@TraceEvent and #trace in real code (no runtime attached)", .serialized)
struct MacroUsageTests {
    @Test func eventsAreDisabledWithoutARuntime() {
        #expect(!MacroTestRequest.isEnabled)
        #expect(!MacroTestEmpty.isEnabled)
        #expect(!MacroTestMixed.isEnabled)
        #expect(!MacroTestEvents.Nested.isEnabled)
    }

    @Test func generatedTracepointCarriesNameAndFields() {
        #expect(MacroTestRequest.tracepoint.name.description == "macrotest:request")
        #expect(MacroTestRequest.tracepoint.fieldNames.description == "bytes status path")
        #expect(MacroTestEmpty.tracepoint.fieldNames.description == "")
        #expect(MacroTestMixed.tracepoint.fieldNames.description == "a b method name payload tag ok ratio")
    }

    @Test func generatedFieldTypesFollowTheDeclaredTypes() {
        #expect(MacroTestRequest.fieldTypes() == [.unsigned(bits: 64), .signed(bits: 16), .string(maxBytes: 64)])
        #expect(MacroTestEmpty.fieldTypes().isEmpty)
        let mixed = MacroTestMixed.fieldTypes()
        #expect(mixed.count == 8)
        if mixed.count == 8 {
            #expect(mixed[0] == .signed(bits: 32) && mixed[1] == .signed(bits: 32))
            guard case .enumeration(let method) = mixed[2] else {
                Issue.record("method is \(mixed[2]), not an enumeration")
                return
            }
            #expect(method.bits == 8)
            #expect(Array(mixed[3...]) == [
                .string(maxBytes: 255), .bytes(maxCount: 255), .bytes(maxCount: 8), .bool, .float64,
            ])
        }
        let wide = MacroTestWide.fieldTypes()
        #expect(wide == Array(repeating: .unsigned(bits: 8), count: 23) + [.string(maxBytes: 255)])
        #expect(MacroTestWide.tracepoint.fieldNames.description.split(separator: " ").count == 24)
    }

    @Test func conformsToTraceEvent() {
        func isEnabled<E: TraceEvent>(_: E.Type) -> Bool { E.isEnabled }
        #expect(!isEnabled(MacroTestRequest.self))
        #expect(!isEnabled(MacroTestEvents.Nested.self))
        let events: [any TraceEvent] = [
            MacroTestRequest(bytes: 1, status: 2, path: "x"), MacroTestEmpty(), MacroTestEvents.Nested(value: 3),
            MacroTestMixed(a: 1, b: 2, method: .post, name: "n", payload: [1, 2], tag: TraceBytes([3]), ok: true,
                           ratio: 0.5),
        ]
        #expect(events.count == 4)
        for event in events { event.emit() }  // disabled: no effect, no crash
    }

    @Test func traceDoesNotEvaluateArgumentsWhenDisabled() {
        let before = evaluations.load(ordering: .relaxed)
        for _ in 0..<5 {
            #trace(MacroTestRequest(bytes: counted(1), status: counted(200), path: counted("/index")))
            #trace(MacroTestEvents.Nested(value: counted(7)))
            #trace(MacroTestEvents.Nested.init(value: counted(7)))
            MacroTestRequest.emit(bytes: counted(1), status: 404, path: counted("/missing"))
            MacroTestEmpty.emit()
            #trace(MacroTestEmpty())
            MacroTestWide.emit(
                f0: counted(0), f1: 1, f2: 2, f3: 3, f4: 4, f5: 5, f6: 6, f7: 7, f8: 8, f9: 9, f10: 10, f11: 11,
                f12: 12, f13: 13, f14: 14, f15: 15, f16: 16, f17: 17, f18: 18, f19: 19, f20: 20, f21: 21, f22: 22,
                last: counted("x"))
        }
        #expect(evaluations.load(ordering: .relaxed) == before)
    }

    /// The expansion has no closure: `try` and `await` in the arguments work as written.
    @Test func traceWithTryAndAwaitInArguments() async throws {
        func size() throws -> UInt32 { counted(4) }
        func later() async -> UInt32 { counted(5) }
        let before = evaluations.load(ordering: .relaxed)
        #trace(MacroTestEvents.Nested(value: try size()))
        try #trace(MacroTestEvents.Nested(value: size()))
        #trace(MacroTestEvents.Nested(value: await later()))
        #expect(evaluations.load(ordering: .relaxed) == before)
    }

    /// The fallback form `(expr).emit()` evaluates its argument (documented).
    @Test func traceOfAVariableOrFunctionEvaluatesIt() {
        func make() -> MacroTestEvents.Nested { counted(MacroTestEvents.Nested(value: 1)) }
        let before = evaluations.load(ordering: .relaxed)
        #trace(make())
        let event = MacroTestEvents.Nested(value: counted(2))
        #trace(event)
        #expect(evaluations.load(ordering: .relaxed) == before + 2)
    }

    /// Inside a class method: the expansion needs no explicit `self` and no closure.
    @Test func traceInsideAClassMethod() {
        final class Handler {
            var served: UInt64 = 0
            func serve() {
                served += 1
                #trace(MacroTestRequest(bytes: counted(served), status: 200, path: "/"))
            }
        }
        let handler = Handler()
        let before = evaluations.load(ordering: .relaxed)
        handler.serve()
        handler.serve()
        #expect(handler.served == 2)
        #expect(evaluations.load(ordering: .relaxed) == before)
    }
}
