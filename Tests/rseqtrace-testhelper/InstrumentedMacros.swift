import RseqTrace
import RseqTraceFormats
import RseqTraceMacros

/// An event declared with the macro: its stored properties are the fields.
@TraceEvent("macro:request")
struct MacroRequest {
    var bytes: UInt64
    var status: Int16
    var path: TraceString<16>
    var level: InstLevel
}

extension InstrumentedCommand {
    /// `@TraceEvent` / `#trace` against a real buffer: the three ways to emit record the same
    /// values, and a disabled event does not evaluate its arguments.
    static func macrosScenario(_ expect: (Bool, @autoclosure () -> String) -> Void, _ facts: inout [String]) {
        let buffer = makeBuffer("macros")
        attach(buffer)
        var evaluated = 0
        func bytes(_ n: UInt64) -> UInt64 {
            evaluated += 1
            return n
        }
        #trace(MacroRequest(bytes: bytes(1), status: -1, path: "/a", level: .low))
        MacroRequest.emit(bytes: bytes(2), status: 200, path: "/a/very/long/path/indeed", level: .mid)
        MacroRequest(bytes: 3, status: 404, path: "", level: .high).emit()
        do { try TraceRuntime.disable("macro:*") } catch { expect(false, "\(error)") }
        for _ in 0..<5 {
            #trace(MacroRequest(bytes: bytes(99), status: 0, path: "x", level: .low))
            MacroRequest.emit(bytes: bytes(99), status: 0, path: "x", level: .low)
        }
        let (events, undecodable) = drain(buffer)
        expect(undecodable == 0, "\(undecodable) undecodable records")
        let rendered = events.map { event in "\(event.0) " + event.1.map { "\($0.name)=\($0.value)" }.joined(separator: " ") }
        expect(rendered == [
            #"macro:request bytes=1 status=-1 path="/a" level=( "low" : container = -5 )"#,
            #"macro:request bytes=2 status=200 path="/a/very/long/pat" level=( "mid" : container = 0 )"#,
            #"macro:request bytes=3 status=404 path="" level=( "high" : container = 300 )"#,
        ], "recorded \(rendered)")
        expect(evaluated == 2, "arguments evaluated \(evaluated) times, expected 2 (the enabled #trace and emit)")
        expect(TraceRuntime.problems.isEmpty, "problems: \(TraceRuntime.problems)")
        facts.append("recorded=\(events.count) evaluated=\(evaluated)")
    }
}
