import ArgumentParser
import RseqTrace
#if LTTng
import RseqTraceLTTng
#endif

/// Where typed events go: `--backend buffer|lttng|both` (RSEQTRACE_BACKEND for programs).
enum TraceBackend: String, ExpressibleByArgument, CaseIterable {
    /// RseqTrace's own per-CPU buffers (the default).
    case buffer
    /// LTTng-UST only (needs a build with `--traits LTTng`).
    case lttng
    /// Both.
    case both

    var sinks: TraceSinks {
        switch self {
        case .buffer: return .buffer
        case .lttng: return .forwarder
        case .both: return [.buffer, .forwarder]
        }
    }

    var usesLTTng: Bool { self != .buffer }

    /// Whether this rseqtrace includes the LTTng-UST bridge.
    static var lttngAvailable: Bool {
        #if LTTng
        return LTTngBridge.isAvailable
        #else
        return false
        #endif
    }

    static let missingTraitMessage =
        "this rseqtrace was built without the LTTng trait: rebuild with `swift build --traits LTTng` (needs liblttng-ust-dev)"

    /// Routes this process's typed events: installs the LTTng-UST forwarder when needed.
    func activate() throws(TraceError) {
        guard usesLTTng else {
            TraceRuntime.setSinks(.buffer)
            return
        }
        #if LTTng
        try LTTngBridge.install(backend: sinks)
        #else
        throw TraceError(.invalidConfiguration, TraceBackend.missingTraitMessage)
        #endif
    }

    /// The problems the LTTng forwarder met (events it could not forward typed), if installed.
    static var lttngProblems: [String] {
        #if LTTng
        return LTTngBridge.installed?.problems ?? []
        #else
        return []
        #endif
    }
}
