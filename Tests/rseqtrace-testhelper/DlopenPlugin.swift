#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceSupport

/// The main program's event in the `dlopen-plugin` scenario: the emitting thread's tid and the
/// sequence number.
let mainProgramEvent = Tracepoint2<UInt64, UInt64>("main:event", fields: "tid seq")

/// `dlopen-plugin`: emits `--events` `main:event` events, loads the shared object at `--library`
/// (RseqTraceTestPlugin) with `dlopen`, calls its `rseqtrace_test_plugin_emit(events)` from 2
/// threads at once, then from the main thread (which so writes through both copies of the runtime),
/// then emits `--events` `main:event` events again. Prints `dlopen-plugin: loaded=1 main_tid=<tid>
/// plugin_tids=<t1>,<t2> plugin_attached=<0|1>,<0|1>,<0|1> main_attached=<0|1>` (the main
/// thread's plugin call last), or, when `dlopen` fails, `dlopen-plugin: loaded=0` on stdout and
/// `error: dlopen <path>: <dlerror text>` on stderr (exit status 3).
enum DlopenPluginCommand {
    static let usage = "dlopen-plugin --library PATH [--events N]"

    /// `rseqtrace_test_plugin_emit`'s C signature.
    typealias EmitFunction = @convention(c) (Int) -> Int32

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: [], valueNames: ["library", "events"])
        let library = try options.string("library")
        let events = try options.int("events", default: 1000, in: 1...1_000_000)
        let mainTID = UInt64(rtts_gettid())
        for sequence in 0..<UInt64(events) { mainProgramEvent.emit(mainTID, sequence) }

        // SAFETY: dlopen takes a NUL-terminated path (the String's C string, valid for the call).
        guard let handle = unsafe dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            // SAFETY: dlerror returns NUL-terminated text owned by libdl, copied at once.
            let reason = unsafe dlerror().map { unsafe String(cString: $0) } ?? "unknown error"
            print("dlopen-plugin: loaded=0")
            printError("error: dlopen \(library): \(reason)")
            return 3
        }
        // SAFETY: `handle` is the live handle dlopen returned; the name is a NUL-terminated literal.
        guard let symbol = unsafe dlsym(handle, "rseqtrace_test_plugin_emit") else {
            print("dlopen-plugin: loaded=0")
            printError("error: \(library) has no symbol rseqtrace_test_plugin_emit")
            return 3
        }
        // SAFETY: the plugin defines this symbol with @_cdecl and exactly this signature.
        let emit = unsafe unsafeBitCast(symbol, to: EmitFunction.self)
        let results = ResultSlots()
        WorkerThreads.run(count: 2) { index in
            let attached = emit(events)
            results.set(index, tid: UInt64(rtts_gettid()), attached: attached)
        }
        let mainThreadAttached = emit(events)
        for sequence in UInt64(events)..<UInt64(2 * events) { mainProgramEvent.emit(mainTID, sequence) }
        let slots = results.values
        print("dlopen-plugin: loaded=1 main_tid=\(mainTID) plugin_tids=\(slots.map { "\($0.tid)" }.joined(separator: ","))"
              + " plugin_attached=\((slots.map(\.attached) + [mainThreadAttached]).map { "\($0)" }.joined(separator: ","))"
              + " main_attached=\(TraceRuntime.attachedBuffer != nil ? 1 : 0)")
        return 0
    }

    /// What each plugin thread reports, written by that thread before it is joined.
    final class ResultSlots: @unchecked Sendable {
        private(set) var values = [(tid: UInt64, attached: Int32)](repeating: (0, 0), count: 2)
        func set(_ index: Int, tid: UInt64, attached: Int32) { values[index] = (tid, attached) }
    }
}
