#if canImport(Glibc)
import Glibc
#endif
import CRseqTraceSupport

/// Plain POSIX threads for workloads and drain loops (no Foundation, no async runtime): the
/// producers of a trace are ordinary OS threads that migrate between CPUs.
package final class WorkerThreads: @unchecked Sendable {
    private var threads: [pthread_t] = []

    private final class Box: @unchecked Sendable {
        let index: Int
        let body: @Sendable (Int) -> Void
        init(index: Int, body: @escaping @Sendable (Int) -> Void) {
            self.index = index
            self.body = body
        }
    }

    /// Starts `count` threads running `body(index)`.
    package init(count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        for index in 0..<count {
            // SAFETY: the retained box is released exactly once, by the thread that runs it.
            let box = unsafe Unmanaged.passRetained(Box(index: index, body: body))
            var thread = pthread_t()
            // SAFETY: the box is retained until the thread takes it back; `thread` is a local.
            let rc = unsafe pthread_create(&thread, nil, { raw in
                let box = unsafe Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body(box.index)
                return nil
            }, box.toOpaque())
            precondition(rc == 0, "pthread_create failed: \(rc)")
            threads.append(thread)
        }
    }

    /// Waits for every thread to finish.
    package func join() {
        for thread in threads {
            // Joining threads this object created, once each.
            _ = pthread_join(thread, nil)
        }
        threads.removeAll()
    }

    /// The calling thread's id (`gettid`).
    package static var currentThreadID: Int32 { rseqtrace_support_gettid() }

    /// Runs `count` threads to completion.
    package static func run(count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        WorkerThreads(count: count, body).join()
    }
}
