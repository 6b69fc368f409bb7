import RseqTrace

/// What each measured event carries.
enum Workload: String, CaseIterable, Sendable {
    /// `bench:event`: 2 × u64 + 1 × u32 (a 20-byte payload).
    case event
    /// `bench:string`: one 64-byte string.
    case string
}

/// One way of running the workload: a tracer in some state, or a baseline written for the harness.
enum Configuration: String, CaseIterable, Sendable {
    /// `Tracepoint.emit` into an attached discard-mode buffer that holds the whole run.
    case rseqtraceDiscard = "rseqtrace-discard"
    /// `Tracepoint.emit` into an attached overwrite-mode buffer of 1 MiB per CPU (flight recorder:
    /// it recycles continuously, so "lost" counts what was overwritten, by design).
    case rseqtraceOverwrite = "rseqtrace-overwrite"
    /// `Tracepoint.emit` into a discard-mode buffer that holds the whole run, in a worker started
    /// with `RSEQTRACE_FORCE_FALLBACK=1`: the protocol of processes that cannot use rseq.
    case rseqtraceFallback = "rseqtrace-fallback"
    /// `Tracepoint.emit` with the event disabled by `TraceRuntime.disable("bench:*")`.
    case rseqtraceDisabled = "rseqtrace-disabled"
    /// The lower-level `Producer.write(eventID:value:)` copy-commit, discard mode (no typed encoding).
    case rseqtraceProducer = "rseqtrace-producer"
    /// LTTng-UST 2.13 with a discard-mode session recording the events (separate C program).
    case lttngEnabled = "lttng-enabled"
    /// `Tracepoint.emit` forwarded to LTTng-UST by the bridge (`LTTngBridge`, sinks = forwarder only)
    /// with a discard-mode session recording `bench:*` (needs a build with `--traits LTTng`).
    case rseqtraceLTTng = "rseqtrace-lttng"
    /// LTTng-UST 2.13 tracepoints compiled in, session daemon running, no session.
    case lttngDisabled = "lttng-disabled"
    /// One ring behind one pthread mutex, rdtsc timestamp under the lock.
    case mutexRing = "mutex-ring"
    /// Per-CPU rings: `sched_getcpu()`, LOCK xadd reserve, rdtsc, stores, LOCK xadd commit.
    case perCPURing = "percpu-ring"
    /// A bare `rdtsc` per iteration.
    case rdtsc
    /// A bare `clock_gettime(CLOCK_MONOTONIC)` per iteration.
    case clockGettime = "clock-gettime"
    /// An empty loop (a compiler barrier per iteration).
    case empty
    /// A dependent multiply chain (16 steps per "event"): the CPU-contention probe.
    case alu

    /// The label of the results table.
    var label: String {
        switch self {
        case .rseqtraceDiscard: "RseqTrace emit, discard"
        case .rseqtraceOverwrite: "RseqTrace emit, overwrite"
        case .rseqtraceFallback: "RseqTrace emit, fallback"
        case .rseqtraceDisabled: "RseqTrace emit, disabled"
        case .rseqtraceProducer: "RseqTrace Producer.write"
        case .lttngEnabled: "LTTng-UST, discard session"
        case .rseqtraceLTTng: "RseqTrace emit → LTTng bridge"
        case .lttngDisabled: "LTTng-UST, no session"
        case .mutexRing: "mutex ring + rdtsc"
        case .perCPURing: "per-CPU xadd ring + rdtsc"
        case .rdtsc: "bare rdtsc loop"
        case .clockGettime: "bare clock_gettime loop"
        case .empty: "empty loop"
        case .alu: "ALU probe (16 mul)"
        }
    }

    /// Whether the configuration stores the events somewhere (it then reports recorded/lost).
    var records: Bool {
        switch self {
        case .rseqtraceDiscard, .rseqtraceOverwrite, .rseqtraceFallback, .rseqtraceProducer, .lttngEnabled, .rseqtraceLTTng,
             .mutexRing, .perCPURing: true
        default: false
        }
    }

    /// Whether the configuration writes a trace to disk (bytes per event are reported).
    var writesTrace: Bool {
        switch self {
        case .rseqtraceDiscard, .rseqtraceOverwrite, .rseqtraceFallback, .rseqtraceProducer, .lttngEnabled: true
        default: false
        }
    }

    /// Whether this configuration runs under the LTTng runner (a session daemon is needed): the
    /// LTTng C program, or (for the bridge) `rseqtrace-bench worker` inside an LTTng session.
    var isLTTng: Bool { self == .lttngEnabled || self == .lttngDisabled || self == .rseqtraceLTTng }

    /// Environment variables the worker of this configuration is started with.
    var workerEnvironment: [String: String] {
        self == .rseqtraceFallback ? ["RSEQTRACE_FORCE_FALLBACK": "1"] : [:]
    }

    /// Runs this many times the events of the others: the empty loop is so fast that a run of the
    /// normal length lasts well under a millisecond, where one interrupt shows.
    var eventsMultiplier: UInt64 { self == .empty ? 16 : 1 }

    /// Whether the configuration has a string variant (the primitives carry no payload).
    var hasStringVariant: Bool {
        switch self {
        case .rdtsc, .clockGettime, .empty, .alu, .rseqtraceProducer, .rseqtraceLTTng: false
        default: true
        }
    }
}

/// The events of the RseqTrace rows, through the typed instrumentation API.
let benchEvent = Tracepoint3<UInt64, UInt64, UInt32>("bench:event", fields: "a b c")
/// The 64-byte string event of the RseqTrace rows.
let benchString = Tracepoint1<TraceString<64>>("bench:string", fields: "text")

/// The 64 bytes every string event carries (the same bytes as `bench_string_text` in C, checked at start).
let benchStringText: TraceString<64> = "rseqtrace bench: a 64-byte string event payload, ASCII 012345678"

/// The second u64 of event `i` (the first is `i`, the u32 is `i` truncated).
@inline(__always)
func benchMix(_ i: UInt64) -> UInt64 { i &* 0x9E37_79B9_7F4A_7C15 }

/// The payload `Producer.write(eventID:value:)` copies: the same 20 bytes as `bench:event`.
struct BenchPayload: BitwiseCopyable {
    var a: UInt64
    var b: UInt64
    var c: UInt32

    static let schema = EventSchema(name: "bench:raw", fields: [
        EventField("a", .uint64), EventField("b", .uint64), EventField("c", .uint32),
    ])
}
