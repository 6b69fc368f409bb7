import CRseqTrace
import SystemPackage

/// The cpu_opv emulation: run a batch of operations on a given CPU by pinning the calling thread
/// there. Operations that must be atomic with that CPU's producers are rseq sequences whose own
/// index check proves they ran on it (a migration in between aborts them instead).
///
/// Each call costs one or two migrations: about 20–35 µs with an idle target or with
/// `SCHED_FIFO`, up to a scheduler tick (~4 ms) when the target CPU is busy and the caller runs
/// `SCHED_OTHER` — so batch all the work for one CPU into one call.
package enum CPUPinner {
    /// Why the batch could not run on the CPU.
    package struct PinError: Error, Sendable, CustomStringConvertible {
        package let cpu: Int
        package let errno: Errno
        package var description: String {
            if errno == .invalidArgument {
                return """
                    CPU \(cpu) is offline or outside this thread's allowed CPUs (taskset/cpuset): no \
                    producer in the same cpuset can run there either; a consumer in a different cpuset \
                    than the producers cannot act on that CPU's ring
                    """
            }
            return "cannot pin to CPU \(cpu): \(errno)"
        }
    }

    /// Runs `body` on `cpu`, raising the thread to SCHED_FIFO priority 1 while pinned when
    /// permitted, and restoring the previous affinity and scheduling policy afterwards.
    package static func run<R, E: Error>(onCPU cpu: Int, realtime: Bool = true,
                                       _ body: () throws(E) -> R) throws(PinnedError<E>) -> R {
        guard cpu >= 0 && cpu < 1024 else {   // CPU_SETSIZE
            throw .pin(PinError(cpu: cpu, errno: .invalidArgument))
        }
        var saved = [UInt8](repeating: 0, count: 1024)
        // SAFETY: `saved` is a 1024-byte buffer, larger than cpu_set_t (128 bytes).
        let rc = unsafe saved.withUnsafeMutableBytes { unsafe rseqtrace_pin_to_cpu(Int32(cpu), $0.baseAddress, $0.count) }
        guard rc == 0 else { throw .pin(PinError(cpu: cpu, errno: Errno(rawValue: rc))) }
        var policy: Int32 = 0
        var priority: Int32 = 0
        // SAFETY: both arguments are local integers.
        let raised = unsafe realtime && rseqtrace_enter_fifo(&policy, &priority) == 1
        defer {
            if raised { rseqtrace_leave_fifo(policy, priority) }
            // SAFETY: `saved` holds the mask written by rseqtrace_pin_to_cpu.
            _ = unsafe saved.withUnsafeBytes { unsafe rseqtrace_restore_affinity($0.baseAddress, $0.count) }
        }
        // sched_setaffinity returns once the thread runs on an allowed CPU; the sequences the
        // body runs check the index again.
        do {
            return try body()
        } catch {
            throw .body(error)
        }
    }

    /// Error of `run(onCPU:_:)`: pinning failed, or the body threw.
    package enum PinnedError<Body: Error>: Error, CustomStringConvertible {
        case pin(PinError)
        case body(Body)
        package var description: String {
            switch self {
            case .pin(let e): return e.description
            case .body(let e): return "\(e)"
            }
        }
    }

    /// Whether this thread may run on `cpu`.
    package static func isAllowed(cpu: Int) -> Bool {
        cpu >= 0 && cpu < 1024 && rseqtrace_cpu_allowed(Int32(cpu)) == 1
    }
}
