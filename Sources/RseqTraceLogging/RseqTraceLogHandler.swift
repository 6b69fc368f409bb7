import Logging
import RseqTrace

/// A swift-log `LogHandler` that records each log message as one RseqTrace event, `log:message`,
/// into the per-CPU buffers.
///
/// ```swift
/// LoggingSystem.bootstrap { label in RseqTraceLogHandler(label: label) }
/// let logger = Logger(label: "server")
/// logger.info("listening", metadata: ["port": "8080"])
/// ```
///
/// It multiplexes with other handlers as swift-log expects:
/// `MultiplexLogHandler([RseqTraceLogHandler(label: label), StreamLogHandler.standardError(label: label)])`.
///
/// The event's fields: `level` (an enumeration `trace` ... `critical`), `label`, `message` (at most
/// 1024 bytes), `metadata` (the merged metadata as `key=value` pairs sorted by key and separated by
/// spaces, at most 1024 bytes; a message's error is added as `error.message` and `error.type`, as
/// swift-log's `StreamLogHandler` does), `source`, `file`, `function`, `line`. Longer text is cut at
/// a character boundary. The event's worst-case payload is about 3.1 KiB, so a trace needs
/// sub-buffers of at least 4 KiB for it (the default is 64 KiB); with smaller ones the event stays
/// disabled and the runtime says so once on stderr.
///
/// Cost: `Logger` checks ``logLevel`` before it builds a message, so a filtered-out message costs
/// a comparison. A message that passes the level but whose event is disabled (not traced, or
/// disabled by `RSEQTRACE_EVENTS` / `rseqtrace record --disable 'log:*'`) costs one load: the
/// metadata is merged and rendered only when the event is recorded. Metadata set on the logger is
/// rendered once, when it is set, and reused while a message brings no metadata of its own.
public struct RseqTraceLogHandler: LogHandler {
    /// The label of the logger this handler belongs to.
    public let label: String

    /// Messages below this level are not recorded (`Logger` checks it before building them).
    public var logLevel: Logger.Level

    /// Contributes metadata to every message at the time it is logged (merged over ``metadata``,
    /// under the message's own metadata).
    public var metadataProvider: Logger.MetadataProvider?

    /// The logger's metadata, recorded with every message.
    public var metadata: Logger.Metadata {
        didSet { renderedMetadata = Self.render(metadata) }
    }

    /// ``metadata`` rendered, so messages without metadata of their own reuse it.
    private var renderedMetadata: String

    /// A handler for the logger labelled `label`, recording messages at `logLevel` and above, with
    /// the global metadata provider of `LoggingSystem` unless told otherwise.
    public init(label: String, logLevel: Logger.Level = .info,
                metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
        self.metadata = [:]
        self.renderedMetadata = ""
    }

    /// Reads or changes one item of ``metadata``.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Records `event` as a `log:message` event (nothing when the event is disabled).
    public func log(event: LogEvent) {
        guard Self.tracepoint.isEnabled else { return }
        let metadataText = mergedMetadataText(explicit: event.metadata, error: event.error)
        Self.tracepoint.emit(LogLevelField(event.level), label, TraceString(event.message.description),
                             TraceString(metadataText), event.source, event.file, event.function,
                             UInt32(truncatingIfNeeded: event.line))
    }

    /// Records a message given by its parts (swift-log's former entry point; use ``log(event:)``).
    @available(*, deprecated, renamed: "log(event:)")
    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        log(event: LogEvent(level: level, message: message, metadata: metadata, source: source, file: file,
                            function: function, line: line))
    }

    /// The metadata recorded with a message: the logger's, then the provider's, then the message's
    /// own (a later one replaces an earlier one with the same key), then the message's error as
    /// `error.message` and `error.type`; rendered by ``render(_:)``.
    package func mergedMetadataText(explicit: Logger.Metadata?, error: (any Error)? = nil) -> String {
        let provided = metadataProvider?.get() ?? [:]
        let own = explicit ?? [:]
        if provided.isEmpty && own.isEmpty && error == nil { return renderedMetadata }
        var merged = metadata
        merged.merge(provided) { _, new in new }
        merged.merge(own) { _, new in new }
        if let error {
            merged["error.message"] = .string(String(describing: error))
            merged["error.type"] = .string(String(reflecting: type(of: error)))
        }
        return Self.render(merged)
    }

    /// `key=value` pairs sorted by key and separated by one space (values as swift-log describes them).
    package static func render(_ metadata: Logger.Metadata) -> String {
        if metadata.isEmpty { return "" }
        var text = ""
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            if !text.isEmpty { text += " " }
            text += key
            text += "="
            text += value.description
        }
        return text
    }

    /// The name of the event each message is recorded as.
    public static let eventName = "log:message"

    /// The tracepoint of ``eventName``.
    static let tracepoint = Tracepoint8<LogLevelField, String, TraceString<1024>, TraceString<1024>, String,
                                        String, String, UInt32>(
        "log:message", fields: "level label message metadata source file function line")
}

/// The `level` field of `log:message`: swift-log's levels, in their order.
package enum LogLevelField: UInt8, TraceEnum {
    case trace, debug, info, notice, warning, error, critical

    package init(_ level: Logger.Level) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}
