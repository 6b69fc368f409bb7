#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import Synchronization

/// The process-wide side of instrumentation: which buffer typed events go to, which events are
/// enabled, and where else they are forwarded.
///
/// Everything here is a slow path, taken once per tracepoint (registration) or per configuration
/// change; it recomputes and stores the state word of every registered tracepoint, which is all the
/// fast path reads.
///
/// At first use the runtime reads `RSEQTRACE_EVENTS` (a rule list, see below),
/// `RSEQTRACE_BACKEND` (`buffer`, `lttng` or `both`) and attaches the buffer named by
/// `RSEQTRACE_BUFFER` when that is set (as `rseqtrace record` does), so an instrumented program
/// records under `rseqtrace record` without calling ``attach(_:)`` itself. Otherwise it starts
/// the flight recorder `RSEQTRACE_FLIGHT_RECORDER` asks for and, unless `RSEQTRACE_CONTROL=off`,
/// the control socket through which `rseqtrace list`, `attach` and `snapshot` reach the process
/// while it runs (docs/LiveTracing.md).
///
/// ## Which events are enabled
///
/// This is the one description of the model; `RSEQTRACE_EVENTS`, ``setRules(_:)``,
/// ``enable(_:)``, ``disable(_:)`` and `rseqtrace record --enable/--disable` all follow it.
///
/// - A **rule** is a pattern and a verdict: enable or disable the events whose name matches it.
///   Patterns match whole names, case-sensitively (`HTTP:*` does not match `http:request`); `*`
///   matches any run of characters (also none), `?` one character; the other allowed characters are
///   ASCII letters and digits, `_` and `:` (`http:*`, `*:request`, `db:query`, `*`).
/// - A **rule list** is written as comma-separated rules, each pattern optionally preceded by `-`
///   (disable) or `+` (enable): `http:*,-http:debug`. Blanks around a rule are ignored.
/// - **Start**: an event no rule matches is enabled, unless the rule list begins with an enabling
///   rule: then it is an allow-list (`http:*` records only `http:` events) and such an event is
///   disabled. An empty list, or one beginning with a disabling rule, starts with everything enabled.
/// - **Order**: rules apply in the order written; the **last matching rule wins**
///   (`http:*,-http:debug` records `http:request` but not `http:debug`; `-http:debug,http:*` records both).
/// - **At run time**, ``enable(_:)`` and ``disable(_:)`` add one rule at the end: they change only the
///   events matching their pattern, never the others, and never the start. So `enable(X)` never
///   disables anything, and `disable(X)` followed by `enable(X)` brings back exactly the previous state
///   of every event when the events matching `X` were enabled before. Earlier rules that a new rule
///   shadows entirely are dropped, so toggling does not grow the list. ``setRules(_:)`` replaces the
///   whole list (and its start), as `RSEQTRACE_EVENTS` sets it at first use.
/// - A **malformed** `RSEQTRACE_EVENTS` disables every event (fails closed): the runtime says so
///   once on stderr, quoting the value and what is allowed, and records it in ``problems``;
///   ``enable(_:)`` still enables events afterwards. `rseqtrace record` checks its patterns before it
///   starts the program.
public enum TraceRuntime {
    /// The rule list read at first use (see "Which events are enabled" above): `http:*,-http:debug`.
    public static let eventsVariable = "RSEQTRACE_EVENTS"
    /// `buffer` (default), `lttng` or `both`.
    public static let backendVariable = "RSEQTRACE_BACKEND"
    /// Buffers one process can attach over its lifetime.
    public static let maximumAttachments = 64

    // MARK: - Hot state (statically initialised: reading it is a plain load)

    /// The ring writer of attachment `generation`: one pointer to its state in the table. The buffer it writes into stays mapped for the life of the process
    /// (`State.attached`), so this non-owning writer never outlives its mapping.
    ///
    /// ## Safety
    /// Only for generations named by an armed state word loaded with acquire: such a word is stored
    /// (release) only after the table (`rseqtrace_producer_table`, published with release) and this
    /// entry were written; entries are never changed or freed.
    @unsafe
    @inlinable
    @inline(__always)
    static func writer(generation: Int) -> RingWriter {
        // SAFETY: see `## Safety`: the table exists once any word is armed, and its entries and
        // their buffers stay for the life of the process.
        unsafe RingWriter(state: UnsafePointer<RingWriter.State>(bitPattern: rseqtrace_load_producer_table())!.advanced(by: generation))
    }

    // MARK: - Slow state

    struct Entry {
        var stateAddress: UInt
        var localIndex: Int
        /// Buffer event id per attachment generation, once registered there.
        var bufferIDs: [Int: UInt16] = [:]
    }

    struct State: ~Copyable {
        var entries: [Entry] = []
        var schemas: [EventSchema] = []
        var localIndexByName: [String: Int] = [:]
        var rules = EventRules.enablingEverything
        var sinks: TraceSinks = .buffer
        var buffer: SharedTraceBuffer?
        var generation = -1
        /// Every buffer ever attached: kept mapped for the process's lifetime, because a thread may
        /// still be writing a record it reserved just before a detach.
        var attached: [SharedTraceBuffer] = []
        var forwarder: (any TraceEventForwarder)?
        var announced = Set<Int>()
        var problems: [String] = []
        var reportedMalformed = Set<String>()
        var reportedMissingForwarder = false
        /// The always-on overwrite buffer (`RSEQTRACE_FLIGHT_RECORDER`, `startFlightRecorder`).
        var flightRecorder: FlightRecorder?
        /// The live-tracing session (attach or snapshot) open now, if any.
        var session: ControlSession?
        /// Buffers created for attach sessions, kept for the next session with the same geometry.
        var sessionBuffers: [SessionBuffer] = []
        /// The abstract name of this process's control socket, once listening.
        var controlName: String?
    }

    static let shared: Mutex<State> = {
        var state = State()
        readEnvironment(into: &state)
        return Mutex(state)
    }()

    // MARK: - Attaching

    /// Sends typed events to `buffer` from now on. Attaching the buffer already attached does nothing.
    ///
    /// The runtime keeps an attached buffer mapped for the rest of the process (a thread may be
    /// writing into it at any time), so the buffer's deinit never runs: a program that *created*
    /// the buffer should call `buffer.removeName()` once no other process needs to open it by name
    /// (right after a consumer opened it, or when done), or the name stays in `/dev/shm`.
    /// - Throws: `.invalidConfiguration` after ``maximumAttachments`` different buffers.
    public static func attach(_ buffer: SharedTraceBuffer) throws(TraceError) {
        try shared.withLock { (state: inout State) throws(TraceError) in
            if let current = state.buffer, current === buffer { return }
            guard state.attached.count < maximumAttachments || state.attached.contains(where: { $0 === buffer }) else {
                throw TraceError(.invalidConfiguration, """
                    this process already attached \(maximumAttachments) trace buffers; reuse one instead of attaching '\(buffer.name)'
                    """)
            }
            installProducer(for: buffer, &state)
            rearm(&state)
        }
    }

    /// Adds `buffer`'s producer to the producer table as the next generation and makes it current.
    static func installProducer(for buffer: SharedTraceBuffer, _ state: inout State) {
        TraceSpan.useClock(buffer.clock)
        if let generation = state.attached.firstIndex(where: { $0 === buffer }) {
            // Attached before (a later session on the same buffer): its producer is in the table.
            state.buffer = buffer
            state.generation = generation
            return
        }
        var address = rseqtrace_load_producer_table()   // only ever written under the runtime's lock
        if address == 0 {
            // Allocated once and never freed: tracepoints may read it at any time.
            let table = UnsafeMutablePointer<RingWriter.State>.allocate(capacity: maximumAttachments)
            address = UInt(bitPattern: table)
            // Published before any armed word names one of its entries (see TracepointState).
            rseqtrace_publish_producer_table(address)
        }
        let generation = state.attached.count
        // SAFETY: a fresh slot (generation < maximumAttachments, checked by callers) of the live table;
        // `buffer` joins `state.attached`, which keeps it mapped for the rest of the process.
        unsafe UnsafeMutablePointer<RingWriter.State>(bitPattern: address)!.advanced(by: generation).initialize(to: buffer.makeWriterState())
        state.attached.append(buffer)
        state.buffer = buffer
        state.generation = generation
    }

    /// Attaches the buffer named by `RSEQTRACE_BUFFER`, if set.
    /// - Returns: whether a buffer is attached now.
    @discardableResult
    public static func attachFromEnvironment() throws(TraceError) -> Bool {
        // Starting the runtime (the first use of `shared`) already attaches the buffer that
        // RSEQTRACE_BUFFER names: do not map it a second time.
        let current = shared.withLock { $0.buffer }
        if let current, current.name == environment(SharedTraceBuffer.environmentVariable) { return true }
        guard let buffer = try SharedTraceBuffer.openFromEnvironment() else { return current != nil }
        try attach(buffer)
        return true
    }

    /// Stops sending events to the attached buffer (it stays mapped; events in flight complete).
    public static func detach() {
        shared.withLock { state in
            state.buffer = nil
            rearm(&state)
        }
    }

    /// The attached buffer, if any.
    public static var attachedBuffer: SharedTraceBuffer? { shared.withLock { $0.buffer } }

    // MARK: - Enabling

    /// Enables the events whose name matches `pattern` and changes no other event (see "Which
    /// events are enabled").
    /// - Throws: `.invalidConfiguration` for a malformed pattern (nothing changes).
    public static func enable(_ pattern: String) throws(TraceError) {
        let parsed = try EventPattern(pattern)
        shared.withLock { state in
            state.rules.append(.init(parsed, enabled: true))
            rearm(&state)
        }
    }

    /// Disables the events whose name matches `pattern` and changes no other event (see "Which
    /// events are enabled").
    /// - Throws: `.invalidConfiguration` for a malformed pattern (nothing changes).
    public static func disable(_ pattern: String) throws(TraceError) {
        let parsed = try EventPattern(pattern)
        shared.withLock { state in
            state.rules.append(.init(parsed, enabled: false))
            rearm(&state)
        }
    }

    /// Replaces every rule, and the start, with the rule list `specification`, as
    /// `RSEQTRACE_EVENTS` does at first use (see "Which events are enabled"): `http:*,-http:debug`
    /// records the `http:` events but `http:debug`; an empty list enables everything.
    /// - Throws: `.invalidConfiguration` naming the first malformed rule (nothing changes).
    public static func setRules(_ specification: String) throws(TraceError) {
        let rules = try EventRules(parsing: specification)
        shared.withLock { state in
            state.rules = rules
            rearm(&state)
        }
    }

    /// Whether an event named `name` is enabled by the current rules (see "Which events are enabled").
    public static func isEnabled(_ name: String) -> Bool {
        shared.withLock { $0.rules.isEnabled(name) }
    }

    /// The current rule list, for tests.
    package static var rules: EventRules { shared.withLock { $0.rules } }

    // MARK: - Forwarding

    /// Installs the forwarder events go to when the ``TraceSinks/forwarder`` sink is selected.
    public static func installForwarder(_ forwarder: any TraceEventForwarder) {
        shared.withLock { state in
            // SAFETY: a +1 reference that is never released (see currentForwarder), so the address stays valid.
            let address = unsafe UInt(bitPattern: Unmanaged.passRetained(ForwarderBox(forwarder)).toOpaque())
            currentForwarder.store(address, ordering: .releasing)
            state.forwarder = forwarder
            state.announced = []
            rearm(&state)
        }
    }

    /// Chooses where enabled events go (default: the attached buffer).
    public static func setSinks(_ sinks: TraceSinks) {
        shared.withLock { state in
            state.sinks = sinks
            rearm(&state)
        }
    }

    /// The current sinks.
    public static var sinks: TraceSinks { shared.withLock { $0.sinks } }

    /// The installed forwarder, for emitting threads: an `Unmanaged` reference that is never
    /// released (forwarders are few and live as long as the process), so reading it takes no lock.
    static let currentForwarder = Atomic<UInt>(0)

    @usableFromInline
    static func forward(word: UInt64, payload: RawSpan) {
        let address = currentForwarder.load(ordering: .acquiring)
        // SAFETY: a nonzero address came from `Unmanaged.passRetained` in installForwarder and is never released.
        guard let pointer = unsafe UnsafeRawPointer(bitPattern: address) else { return }
        // SAFETY: as above.
        let forwarder = unsafe Unmanaged<ForwarderBox>.fromOpaque(pointer).takeUnretainedValue().forwarder
        forwarder.forward(event: TracepointState.localIndex(of: word), payload: payload)
    }

    /// Holds an existential forwarder behind one class reference.
    final class ForwarderBox: Sendable {
        let forwarder: any TraceEventForwarder
        init(_ forwarder: any TraceEventForwarder) { self.forwarder = forwarder }
    }

    // MARK: - Diagnostics

    /// Problems met so far (tracepoints that could not be registered, bad environment values),
    /// each also written once to stderr.
    public static var problems: [String] { shared.withLock { $0.problems } }

    /// Every registered event schema, by process-local index.
    package static var registeredSchemas: [EventSchema] { shared.withLock { $0.schemas } }

    @usableFromInline
    static func reportMalformedPayloadSlow(name: StaticString) {
        let text = name.description
        shared.withLock { state in
            guard state.reportedMalformed.insert(text).inserted else { return }
            note("""
                a field of \(text) wrote a different number of bytes than its traceEncodedSize; \
                such records are dropped (check custom TraceFieldValue conformances)
                """, into: &state)
        }
    }

    static func note(_ problem: String, into state: inout State) {
        state.problems.append(problem)
        let line = Array("rseqtrace: \(problem)\n".utf8)
        // SAFETY: writing `line`'s bytes, valid for the call.
        _ = unsafe line.withUnsafeBytes { unsafe write(2, $0.baseAddress, $0.count) }
    }

    // MARK: - Registration

    /// Registers a tracepoint reached for the first time and returns its state word.
    ///
    /// ## Safety
    /// `statePointer` must be the tracepoint's state word; it is kept only when it lies in static
    /// storage.
    @unsafe
    @usableFromInline
    static func register(state statePointer: UnsafePointer<Atomic<UInt64>>, name: StaticString,
                         fieldNames: StaticString, types: [FieldType]) -> UInt64 {
        let address = UInt(bitPattern: statePointer)
        let eventName = name.description
        let names = fieldNames.description.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        return shared.withLock { state -> UInt64 in
            if let entry = state.entries.first(where: { $0.stateAddress == address }) {
                return word(for: entry, &state)
            }
            func refuse(_ why: String) -> UInt64 {
                note("tracepoint \(eventName) stays disabled: \(why)", into: &state)
                // SAFETY: the caller's tracepoint is alive during this call.
                unsafe statePointer.pointee.store(TracepointState.disabled, ordering: .releasing)
                return TracepointState.disabled
            }
            guard names.count == types.count else {
                return refuse("it declares \(types.count) field type(s) but \(names.count) field name(s) ('\(fieldNames)')")
            }
            let schema = EventSchema(name: eventName, fields: zip(names, types).map { EventField($0, $1) })
            if let problem = schema.problem { return refuse(problem) }
            guard schema.name.utf8.count <= 255, schema.fields.count <= 255 else {
                return refuse("names are limited to 255 bytes and events to 255 fields")
            }
            // SAFETY: only an address query.
            guard unsafe rseqtrace_is_static_storage(statePointer) != 0 else {
                return refuse("a Tracepoint must be a global or a static let (this one is on the stack or the heap)")
            }
            let localIndex: Int
            if let existing = state.localIndexByName[schema.name] {
                guard state.schemas[existing] == schema else {
                    return refuse("another tracepoint registered \(schema.name) with different fields; give one of them another name")
                }
                localIndex = existing
            } else {
                localIndex = state.schemas.count
                state.schemas.append(schema)
                state.localIndexByName[schema.name] = localIndex
            }
            state.entries.append(Entry(stateAddress: address, localIndex: localIndex))
            return word(for: state.entries[state.entries.count - 1], &state, index: state.entries.count - 1)
        }
    }

    /// Recomputes and stores every registered tracepoint's word.
    static func rearm(_ state: inout State) {
        for index in state.entries.indices {
            _ = word(for: state.entries[index], &state, index: index)
        }
    }

    /// Computes the word of one entry (registering its schema with the buffer and the forwarder as
    /// needed) and stores it.
    private static func word(for entry: Entry, _ state: inout State, index: Int? = nil) -> UInt64 {
        let schema = state.schemas[entry.localIndex]
        var sinks: TraceSinks = []
        var eventID: UInt16 = 0
        if state.rules.isEnabled(schema.name) {
            if state.sinks.contains(.buffer), let buffer = state.buffer {
                if let id = entry.bufferIDs[state.generation] {
                    eventID = id
                    sinks.insert(.buffer)
                } else {
                    do throws(TraceError) {
                        eventID = try buffer.registerEvent(schema)
                        sinks.insert(.buffer)
                        if let index { state.entries[index].bufferIDs[state.generation] = eventID }
                    } catch {
                        note("event \(schema.name) is not recorded in '\(buffer.name)': \(error)", into: &state)
                    }
                }
            }
            if state.sinks.contains(.forwarder) {
                if let forwarder = state.forwarder {
                    if state.announced.insert(entry.localIndex).inserted {
                        forwarder.register(event: entry.localIndex, schema: schema)
                    }
                    sinks.insert(.forwarder)
                } else if !state.reportedMissingForwarder {
                    state.reportedMissingForwarder = true
                    note("""
                        events are routed to a forwarder (LTTng) but none is installed: call LTTngBridge.install() \
                        (built with --traits LTTng) or set \(backendVariable)=buffer
                        """, into: &state)
                }
            }
        }
        let word = sinks.isEmpty ? TracepointState.disabled
            : TracepointState.armed(sinks: sinks, generation: max(state.generation, 0), eventID: eventID,
                                    localIndex: entry.localIndex)
        // SAFETY: the address is a registered tracepoint's state word in static storage.
        unsafe UnsafePointer<Atomic<UInt64>>(bitPattern: entry.stateAddress)!.pointee.store(word, ordering: .releasing)
        return word
    }

    // MARK: - Environment

    private static func readEnvironment(into state: inout State) {
        if let rules = environment(eventsVariable) {
            do throws(TraceError) {
                state.rules = try EventRules(parsing: rules)
            } catch {
                state.rules = .disablingEverything
                note(escapingControls("""
                    \(eventsVariable)='\(rules)' is malformed, so every event is disabled: \(error.message). \
                    A rule list is comma-separated patterns, each optionally preceded by '-' (disable) or '+' (enable)
                    """), into: &state)
            }
        }
        if let backend = environment(backendVariable), !backend.isEmpty {
            if let sinks = TraceSinks(backendName: backend) {
                state.sinks = sinks
            } else {
                note("\(backendVariable)='\(backend)' is ignored: use buffer, lttng or both", into: &state)
            }
        }
        if environment(SharedTraceBuffer.environmentVariable) != nil {
            do throws(TraceError) {
                if let buffer = try SharedTraceBuffer.openFromEnvironment() {
                    installProducer(for: buffer, &state)
                }
            } catch {
                note("cannot attach the buffer named by \(SharedTraceBuffer.environmentVariable): \(error)", into: &state)
            }
            // Recorded by `rseqtrace record`: no flight recorder, no control socket.
            return
        }
        readLiveTracingEnvironment(into: &state)
    }

    /// `text` with its control characters escaped (`\\t`, `\\u{1B}`), everything else as is, so a
    /// message quoting a value stays one readable line.
    static func escapingControls(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                out += scalar.escaped(asASCII: true)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func environment(_ name: String) -> String? { SystemInfo.environmentValue(name) }
}
