import Logging
import RseqTrace
@testable import RseqTraceEcosystem
@testable import RseqTraceLogging
@testable import RseqTraceTracing
import Testing
import Tracing

/// What the ecosystem backends do without recording: metadata, levels, rendering, trace context.
/// Nothing here reaches a tracepoint (the runtime is process-wide: everything that records runs in a
/// child process under `rseqtrace record`, see EcosystemEndToEndTests).
@Suite("Ecosystem backends: swift-log handler and tracer, without recording")
struct EcosystemUnitTests {
    struct DictionaryInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }

    struct DictionaryExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "it broke" }
    }

    @Test("the handler keeps metadata and level as swift-log's Logger sets them, and filtered messages are never built")
    func handlerMetadataAndLevel() {
        var logger = Logger(label: "unit") { RseqTraceLogHandler(label: $0, logLevel: .warning, metadataProvider: nil) }
        #expect(logger.logLevel == .warning)
        logger[metadataKey: "a"] = "1"
        logger[metadataKey: "b"] = ["x", "y"]
        #expect(logger[metadataKey: "a"] == "1")
        let handler = logger.handler as? RseqTraceLogHandler
        #expect(handler?.label == "unit")
        #expect(handler?.metadata == ["a": "1", "b": ["x", "y"]])
        #expect(handler?.mergedMetadataText(explicit: nil) == "a=1 b=[\"x\", \"y\"]")
        logger[metadataKey: "a"] = nil
        #expect((logger.handler as? RseqTraceLogHandler)?.mergedMetadataText(explicit: nil) == "b=[\"x\", \"y\"]")

        // Below the level, Logger does not call the handler, so neither the message nor its
        // metadata is evaluated.
        var evaluated = 0
        func count() -> String { evaluated += 1; return "x" }
        logger.info("\(count())", metadata: ["k": "\(count())"])
        logger.debug("\(count())")
        logger.trace("\(count())")
        #expect(evaluated == 0)
        logger.logLevel = .error
        #expect((logger.handler as? RseqTraceLogHandler)?.logLevel == .error)
    }

    @Test("metadata merges handler < provider < message < error, rendered sorted as key=value")
    func metadataMerging() {
        let provider = Logger.MetadataProvider { ["p": "provided", "shared": "provider"] }
        var handler = RseqTraceLogHandler(label: "merge", metadataProvider: provider)
        handler.metadata = ["h": "handler", "shared": "handler"]
        #expect(handler.mergedMetadataText(explicit: nil) == "h=handler p=provided shared=provider")
        #expect(handler.mergedMetadataText(explicit: ["shared": "message", "z": "1"])
                == "h=handler p=provided shared=message z=1")
        #expect(handler.mergedMetadataText(explicit: ["error.message": "mine"], error: Failure())
                == "error.message=it broke error.type=RseqTraceEcosystemTests.EcosystemUnitTests.Failure h=handler p=provided shared=provider")
        handler.metadataProvider = nil
        #expect(handler.mergedMetadataText(explicit: [:]) == "h=handler shared=handler")
        #expect(RseqTraceLogHandler.render([:]) == "")
        #expect(RseqTraceLogHandler.render(["m": ["k": "v"], "s": .stringConvertible(42)]) == "m=[\"k\": \"v\"] s=42")
    }

    @Test("the bootstrap's handler multiplexes with a second one at the same level")
    func bootstrapHandler() {
        let single = RseqTraceBootstrap.makeLogHandler(label: "one", logLevel: .notice, metadataProvider: nil, alsoLogTo: nil)
        #expect((single as? RseqTraceLogHandler)?.logLevel == .notice)
        var both = RseqTraceBootstrap.makeLogHandler(label: "two", logLevel: .debug, metadataProvider: nil) { label, _ in
            SwiftLogNoOpLogHandler(label)
        }
        #expect(both is MultiplexLogHandler)
        #expect(both.logLevel == .debug)
        both[metadataKey: "k"] = "v"
        #expect(both.metadata == ["k": "v"])
    }

    @Test("the log level enumeration lists swift-log's levels in order")
    func levelField() {
        #expect(Logger.Level.allCases.map { LogLevelField($0).rawValue } == [0, 1, 2, 3, 4, 5, 6])
        #expect(LogLevelField.allCases.map { "\($0)" } == Logger.Level.allCases.map { "\($0)" })
    }

    @Test("traceparent: written and read back; malformed values refused")
    func traceparent() throws {
        let identity = RseqTraceSpanContext(traceIDHigh: 0x0af7_6519_16cd_43dd, traceIDLow: 0x8448_eb21_1c80_319c,
                                            spanID: 0xb7ad_6b71_6920_3331, isSampled: true)
        #expect(identity.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        let read = try #require(RseqTraceSpanContext(traceparent: identity.traceparent))
        #expect(read == RseqTraceSpanContext(traceIDHigh: identity.traceIDHigh, traceIDLow: identity.traceIDLow,
                                             spanID: identity.spanID, isSampled: true, isRemote: true))
        #expect(RseqTraceSpanContext(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")?.isSampled == false)
        // A later version is read by its first four fields.
        #expect(RseqTraceSpanContext(traceparent: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")?.spanID
                == 0xb7ad_6b71_6920_3331)
        for bad in ["", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
                    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",     // uppercase
                    "00-00000000000000000000000000000000-b7ad6b7169203331-01",     // zero trace id
                    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",     // zero span id
                    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",     // invalid version
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",   // version 00 has 4 fields
                    "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"] {
            #expect(RseqTraceSpanContext(traceparent: bad) == nil, "\(bad)")
        }
    }

    @Test("inject writes the context's span as traceparent, extract reads it, both do nothing without one")
    func propagation() {
        let tracer = RseqTraceTracer()
        var carrier: [String: String] = [:]
        tracer.inject(.topLevel, into: &carrier, using: DictionaryInjector())
        #expect(carrier.isEmpty)
        var context = ServiceContext.topLevel
        context.rseqTraceSpanContext = RseqTraceSpanContext(traceIDHigh: 1, traceIDLow: 2, spanID: 3, isSampled: false)
        tracer.inject(context, into: &carrier, using: DictionaryInjector())
        #expect(carrier == ["traceparent": "00-00000000000000010000000000000002-0000000000000003-00"])

        var extracted = ServiceContext.topLevel
        tracer.extract(carrier, into: &extracted, using: DictionaryExtractor())
        #expect(extracted.rseqTraceSpanContext == RseqTraceSpanContext(traceIDHigh: 1, traceIDLow: 2, spanID: 3,
                                                                        isSampled: false, isRemote: true))
        var untouched = ServiceContext.topLevel
        tracer.extract(["traceparent": "garbage"], into: &untouched, using: DictionaryExtractor())
        #expect(untouched.rseqTraceSpanContext == nil)
    }

    @Test("span attributes render sorted as key=value, arrays in brackets")
    func attributeRendering() {
        var attributes: SpanAttributes = [:]
        attributes["s"] = "text"
        attributes["i"] = 7
        attributes["d"] = 1.5
        attributes["b"] = false
        attributes["list"] = ["x", "y"]
        attributes["ints"] = [1, 2, 3]
        #expect(TracingEvents.render(attributes) == "b=false d=1.5 i=7 ints=[1, 2, 3] list=[x, y] s=text")
        #expect(TracingEvents.render([:]) == "")
        #expect(TracingEvents.render(.stringConvertible(42)) == "42")
    }

    @Test("the tracer's slice events have the schema of TraceSpan's, so both write the same events")
    func sliceSchema() {
        #expect(Tracepoint2<String, UInt64>.fieldTypes() == Tracepoint2<StaticString, UInt64>.fieldTypes())
        #expect(Tracepoint3<String, UInt64, UInt64>.fieldTypes() == Tracepoint3<StaticString, UInt64, UInt64>.fieldTypes())
        #expect(TraceSpan.namedBeginTracepoint.site.name.description == TraceSpan.beginTracepoint.site.name.description)
        #expect(TraceSpan.namedEndTracepoint.site.fieldNames.description == TraceSpan.endTracepoint.site.fieldNames.description)
        #expect(TraceIDField.traceFieldType == .string(maxBytes: 32))
        #expect(TraceIDField.digits(0x0123_abcd) == UInt64(littleEndianBytes: Array("0123abcd".utf8)))
    }
}

extension UInt64 {
    /// The value whose little-endian bytes are `bytes` (8 of them).
    init(littleEndianBytes bytes: [UInt8]) {
        self = bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
    }
}
