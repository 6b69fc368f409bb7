#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import CRseqTraceTestSupport
import RseqTrace
import RseqTraceTestPayloads
import RseqTraceConsumer
import Synchronization
import RseqTraceSupport

/// Common setup for options that shape the environment of the producers.
enum Environment {
    /// Applies `--inject` and `--signals`; exits with a message on failure.
    static func prepare(inject: Int, signals: Bool) {
        // Only debug builds of the critical sections contain the injection point.
        if inject > 0 { rseqtrace_set_inject_loops(UInt32(inject)) }
        if signals {
            let rc = rtts_install_signal_counter()
            if rc != 0 {
                printError("error: cannot install the timer signal handler (errno \(rc))")
                finish(3)
            }
        }
        if rtts_affinity_snapshot() < 0 {
            printError("error: cannot read this process's CPU affinity")
            finish(3)
        }
    }
}
