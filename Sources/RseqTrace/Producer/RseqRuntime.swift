#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import SystemPackage

/// How this process writes records: chosen once, before the first record, and never changed.
public enum ProducerMode: String, Sendable, CustomStringConvertible {
    /// rseq through glibc's registration (`__rseq_offset`).
    case rseq = "rseq"
    /// rseq through our own per-thread registration (glibc did not register: `glibc.pthread.rseq=0`).
    case rseqSelfRegistered = "rseq-self"
    /// rseq is unusable (ENOSYS under valgrind or on old kernels, EPERM under seccomp, EINVAL when
    /// another component registered its own area) or was disabled: every ring uses the lock-free protocol.
    case fallback = "fallback"

    /// `rseq`, `rseq-self` or `fallback`.
    public var description: String { rawValue }
    /// Whether records are written with restartable sequences (else with the lock-free protocol).
    public var usesRseq: Bool { self != .fallback }
}

/// The process-wide rseq decision.
public struct RseqStatus: Sendable, CustomStringConvertible {
    /// How this process writes records.
    public let mode: ProducerMode
    /// Usable size of the rseq area (28 when `node_id` and `mm_cid` are available).
    public let featureSize: Int
    /// Why rseq is not used, when it is not.
    public let reason: String

    /// Whether rings can be indexed by `mm_cid` (rseq with `node_id`/`mm_cid`, Linux 6.3+).
    public var supportsConcurrencyID: Bool { mode.usesRseq && featureSize >= 28 }

    /// The mode, and why rseq is not used when it is not.
    public var description: String { mode.usesRseq ? "\(mode)" : "\(mode) (\(reason))" }
}

/// Entry point to the process-wide rseq state.
public enum RseqRuntime {
    /// Set to a non-empty value other than `0` to force the fallback protocol, e.g. to debug or
    /// single-step producers.
    public static let forceFallbackVariable = "RSEQTRACE_FORCE_FALLBACK"

    /// The decision, taken on first use (thread-safe).
    public static let status: RseqStatus = {
        let text = SystemInfo.environmentValue(forceFallbackVariable) ?? ""
        let forbid = !text.isEmpty && text != "0"
        let result = rseqtrace_probe(forbid ? 1 : 0)
        let mode: ProducerMode
        var reason = ""
        switch result.registration {
        case Int32(RSEQTRACE_REGISTRATION_GLIBC.rawValue): mode = .rseq
        case Int32(RSEQTRACE_REGISTRATION_SELF.rawValue): mode = .rseqSelfRegistered
        default:
            mode = .fallback
            if forbid {
                reason = "\(forceFallbackVariable) is set"
            } else {
                let errno = Errno(rawValue: result.kernel_errno)
                switch errno {
                case .noFunction: reason = "the kernel refuses rseq with ENOSYS (old kernel, or running under valgrind or an emulator)"
                case .notPermitted: reason = "rseq is blocked with EPERM (seccomp filter)"
                case .invalidArgument: reason = "another rseq area is already registered for this thread (EINVAL)"
                default: reason = "rseq registration failed: \(errno)"
                }
            }
        }
        return RseqStatus(mode: mode, featureSize: Int(result.feature_size), reason: reason)
    }()

    /// The mode in use by this process.
    public static var mode: ProducerMode { status.mode }

    /// Makes sure the calling thread can run rseq sequences (self-registration mode registers it
    /// here). Returns false when the thread cannot: its records then go through the slow lane.
    @inline(never)
    package static func prepareCurrentThreadSlow() -> Bool {
        guard status.mode.usesRseq else { return false }
        if rseqtrace_register_current_thread() != 0 { return false }
        return rseqtrace_current_cpu_id() < 0xFFFF_FFFE // -1 unregistered, -2 registration failed
    }
}
