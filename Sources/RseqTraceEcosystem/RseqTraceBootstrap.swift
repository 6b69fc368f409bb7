@_exported import RseqTraceLogging
@_exported import RseqTraceMetrics
@_exported import RseqTraceTracing
import CoreMetrics
import Logging
import Tracing

/// Sets up the Swift server ecosystem's APIs to record into RseqTrace, in one call at the start of
/// a program:
///
/// ```swift
/// import RseqTraceEcosystem
///
/// RseqTraceBootstrap.bootstrap(logLevel: .info)
/// ```
///
/// swift-log's `LoggingSystem` then makes ``RseqTraceLogHandler``s, swift-distributed-tracing's
/// `InstrumentationSystem` uses ``RseqTraceTracer``, and swift-metrics' `MetricsSystem` uses
/// ``RseqTraceMetricsFactory`` (per-CPU counters). Each system can be bootstrapped only once per
/// process (they stop the program on a second bootstrap), so call this once, instead of bootstrapping
/// them yourself.
///
/// The program records into the trace buffer of `rseqtrace record` (or of `rseqtrace attach`) when
/// it runs under it; otherwise every event stays disabled and each call costs one load.
public enum RseqTraceBootstrap {
    /// Bootstraps swift-log, swift-distributed-tracing and (unless `metrics` is false) swift-metrics.
    /// - Parameters:
    ///   - logLevel: the level of every logger's handler (a logger can change its own).
    ///   - metadataProvider: metadata added to every message (swift-log's global provider).
    ///   - spanIDsInLogs: adds the current span's `trace_id` and `span_id` (hexadecimal, as in a
    ///     `traceparent` header) to the metadata of every message logged inside a span, to find a
    ///     message's span after an `async` hop; this formats both ids for each message.
    ///   - alsoLogTo: makes a second handler for each label (for example
    ///     `{ label, provider in StreamLogHandler.standardError(label: label, metadataProvider: provider) }`);
    ///     it gets the same level, and messages go to both through swift-log's `MultiplexLogHandler`.
    ///   - metrics: bootstraps swift-metrics' `MetricsSystem` with an ``RseqTraceMetricsFactory``
    ///     (false: leave it to the program, e.g. to multiplex it with another backend).
    public static func bootstrap(
        logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil,
        spanIDsInLogs: Bool = false,
        metrics: Bool = true,
        alsoLogTo: (@Sendable (_ label: String, _ metadataProvider: Logger.MetadataProvider?) -> any LogHandler)? = nil
    ) {
        var providers: [Logger.MetadataProvider] = []
        if let metadataProvider { providers.append(metadataProvider) }
        if spanIDsInLogs { providers.append(spanMetadataProvider) }
        LoggingSystem.bootstrap({ label, provider in
            makeLogHandler(label: label, logLevel: logLevel, metadataProvider: provider, alsoLogTo: alsoLogTo)
        }, metadataProvider: providers.isEmpty ? nil : .multiplex(providers))
        InstrumentationSystem.bootstrap(RseqTraceTracer())
        if metrics { MetricsSystem.bootstrap(RseqTraceMetricsFactory()) }
    }

    /// The handler `bootstrap` installs for `label`.
    static func makeLogHandler(
        label: String, logLevel: Logger.Level, metadataProvider: Logger.MetadataProvider?,
        alsoLogTo: (@Sendable (_ label: String, _ metadataProvider: Logger.MetadataProvider?) -> any LogHandler)?
    ) -> any LogHandler {
        let handler = RseqTraceLogHandler(label: label, logLevel: logLevel, metadataProvider: metadataProvider)
        guard let alsoLogTo else { return handler }
        var other = alsoLogTo(label, metadataProvider)
        other.logLevel = logLevel
        return MultiplexLogHandler([handler, other])
    }

    /// Metadata `trace_id` and `span_id` of the span of the current task-local context, if any.
    public static let spanMetadataProvider = Logger.MetadataProvider {
        guard let span = InstrumentationContext.current?.rseqTraceSpanContext else { return [:] }
        return ["trace_id": .string(span.traceIDHex), "span_id": .string(span.spanIDHex)]
    }
}
