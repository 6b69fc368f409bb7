/// Receives events in addition to (or instead of) the attached buffer: the LTTng-UST bridge is one.
///
/// Install one with ``TraceRuntime/installForwarder(_:)`` and route events to it with
/// ``TraceRuntime/setSinks(_:)`` or `RSEQTRACE_BACKEND`.
public protocol TraceEventForwarder: AnyObject, Sendable {
    /// Called once per event before its first ``forward(event:payload:)``, under the runtime's lock
    /// (do not call back into ``TraceRuntime``). `event` is a process-local number, stable for the
    /// process's lifetime.
    func register(event: Int, schema: EventSchema)
    /// Called on the emitting thread with the encoded payload (the layout of ``EventSchema``).
    func forward(event: Int, payload: RawSpan)
}

/// Where enabled events go.
public struct TraceSinks: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The attached shared-memory buffer (``TraceRuntime/attach(_:)``).
    public static let buffer = TraceSinks(rawValue: 1)
    /// The installed ``TraceEventForwarder`` (e.g. LTTng-UST).
    public static let forwarder = TraceSinks(rawValue: 2)

    /// Parses `buffer`, `lttng` (or `forwarder`) or `both`.
    public init?(backendName: String) {
        switch backendName {
        case "buffer", "rseqtrace": self = .buffer
        case "lttng", "forwarder": self = .forwarder
        case "both": self = [.buffer, .forwarder]
        default: return nil
        }
    }
}
