#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceTestSupport
import RseqTrace

// RseqTraceTestPlugin: a shared object that a program loads with `dlopen` (the `dlopen-plugin`
// scenario of rseqtrace-testhelper). It links its own copy of RseqTrace, so its tracepoints go
// through its own TraceRuntime, which attaches to the buffer RSEQTRACE_BUFFER names.

/// One event per call of the emit loop: the emitting thread's tid and the sequence number.
let pluginEvent = Tracepoint2<UInt64, UInt64>("plugin:event", fields: "tid seq")

/// Emits `count` `plugin:event` events from the calling thread; returns 1 when this copy of the
/// runtime is attached to a buffer, 0 otherwise.
@_cdecl("rseqtrace_test_plugin_emit")
public func rseqtraceTestPluginEmit(_ count: Int) -> Int32 {
    let tid = UInt64(rtts_gettid())
    for sequence in 0..<UInt64(max(count, 0)) {
        pluginEvent.emit(tid, sequence)
    }
    return TraceRuntime.attachedBuffer != nil ? 1 : 0
}
