import CRseqTraceBench
import RseqTrace
import Synchronization

// MARK: - RseqTrace

/// `bench:event` through `Tracepoint.emit` (enabled or disabled: the runtime decides).
struct TracepointEventLoop: MeasuredLoop {
    func run(from start: UInt64, to end: UInt64) {
        var i = start
        while i < end {
            benchEvent.emit(i, benchMix(i), UInt32(truncatingIfNeeded: i))
            i &+= 1
        }
    }
}

/// `bench:string` through `Tracepoint.emit`.
struct TracepointStringLoop: MeasuredLoop {
    func run(from start: UInt64, to end: UInt64) {
        let text = benchStringText
        var i = start
        while i < end {
            benchString.emit(text)
            i &+= 1
        }
    }
}

/// The same 20 bytes through the lower-level copy-commit, `Producer.write(eventID:value:)`.
struct ProducerWriteLoop: MeasuredLoop {
    let producer: Producer
    let eventID: UInt16

    func run(from start: UInt64, to end: UInt64) {
        var i = start
        while i < end {
            _ = producer.write(eventID: eventID, value: BenchPayload(a: i, b: benchMix(i), c: UInt32(truncatingIfNeeded: i)))
            i &+= 1
        }
    }
}

// MARK: - Baselines

/// The C rings of CRseqTraceBench. The pointer is shared by every thread on purpose (that is the
/// baseline: threads reserve in it with atomics or under its mutex).
@safe
struct BaselineRings: @unchecked Sendable {
    let rings: UnsafeMutablePointer<bench_ring>
    let count: Int32
    let size: UInt64

    /// `count` rings of `size` bytes, pre-faulted; nil when memory is short.
    init?(count: Int, size: UInt64) {
        // SAFETY: bench_rings_create validates its arguments and returns owned memory or nil.
        guard let rings = unsafe bench_rings_create(Int32(count), size) else { return nil }
        // SAFETY: the rings stay allocated until `destroy()`, after every thread has finished.
        unsafe self.rings = rings
        self.count = Int32(count)
        self.size = size
    }

    /// Bytes reserved in all rings.
    var reserved: UInt64 {
        // SAFETY: `rings` holds `count` live rings.
        unsafe bench_rings_reserved(rings, count)
    }

    func destroy() {
        // SAFETY: called once, after the measured threads have been joined.
        unsafe bench_rings_destroy(rings, count, size)
    }
}

struct PerCPURingEventLoop: MeasuredLoop {
    let rings: BaselineRings

    func run(from start: UInt64, to end: UInt64) {
        var i = start
        while i < end {
            // SAFETY: `rings.rings` holds `rings.count` live rings, each sized for the whole run.
            unsafe bench_percpu_emit_event(rings.rings, rings.count, i, benchMix(i), UInt32(truncatingIfNeeded: i))
            i &+= 1
        }
    }
}

struct PerCPURingStringLoop: MeasuredLoop {
    let rings: BaselineRings

    func run(from start: UInt64, to end: UInt64) {
        var i = start
        while i < end {
            // SAFETY: as in PerCPURingEventLoop.
            unsafe bench_percpu_emit_string(rings.rings, rings.count)
            i &+= 1
        }
    }
}

struct MutexRingEventLoop: MeasuredLoop {
    let ring: BaselineRings

    func run(from start: UInt64, to end: UInt64) {
        var i = start
        while i < end {
            // SAFETY: `ring.rings` is one live ring sized for every thread's events.
            unsafe bench_mutex_emit_event(ring.rings, i, benchMix(i), UInt32(truncatingIfNeeded: i))
            i &+= 1
        }
    }
}

struct MutexRingStringLoop: MeasuredLoop {
    let ring: BaselineRings

    func run(from start: UInt64, to end: UInt64) {
        var i = start
        while i < end {
            // SAFETY: as in MutexRingEventLoop.
            unsafe bench_mutex_emit_string(ring.rings)
            i &+= 1
        }
    }
}

// MARK: - Primitives

/// Where the primitive loops leave their result, so that the compiler keeps the work.
let primitiveSink = Atomic<UInt64>(0)

struct RdtscLoop: MeasuredLoop {
    func run(from start: UInt64, to end: UInt64) {
        var sum: UInt64 = 0
        var i = start
        while i < end {
            sum &+= bench_rdtsc()
            i &+= 1
        }
        primitiveSink.store(sum, ordering: .relaxed)
    }
}

struct ClockGettimeLoop: MeasuredLoop {
    func run(from start: UInt64, to end: UInt64) {
        var sum: UInt64 = 0
        var i = start
        while i < end {
            sum &+= bench_monotonic_ns()
            i &+= 1
        }
        primitiveSink.store(sum, ordering: .relaxed)
    }
}

struct EmptyLoop: MeasuredLoop {
    func run(from start: UInt64, to end: UInt64) {
        var i = start
        while i < end {
            bench_compiler_barrier()
            i &+= 1
        }
    }
}

struct ALULoop: MeasuredLoop {
    /// Dependent multiplies per "event".
    static let steps: UInt64 = 16

    func run(from start: UInt64, to end: UInt64) {
        primitiveSink.store(bench_alu_chain(start, (end &- start) &* ALULoop.steps), ordering: .relaxed)
    }
}
