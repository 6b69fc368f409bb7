import Synchronization

/// The engine of a typed tracepoint: its state word, name and field names. ``Tracepoint2`` and
/// its siblings (one per field count) and the `@TraceEvent` macro are built on it; use it directly
/// for events with more than 20 fields.
///
/// Declare tracepoints as globals or `static let`s: there they are statically initialised, so
/// checking one costs a single load. A tracepoint stored elsewhere (a local, a class property) is
/// refused at registration and stays disabled, because the runtime keeps the address of its
/// state word to enable and disable it later.
///
/// Cost model: the first time a tracepoint is reached it registers its schema with
/// ``TraceRuntime`` (a slow path, once per tracepoint and process). After that, a disabled
/// tracepoint costs one load and a branch; an enabled one computes the payload size, reserves a
/// record, stores each field and commits, without throwing, locking, allocating or entering the
/// kernel. A record that cannot be stored is dropped and counted in its ring.
///
/// Why fixed field counts and not one `Tracepoint<each Value>`: Swift 6.3 lowers iteration over a
/// value pack to a loop whose body stays generic (witness calls per field), even when every type
/// is concrete at the call site, so it would not specialize to straight-line stores.
@frozen
public struct TracepointSite: ~Copyable, Sendable {
    /// See ``TracepointState``.
    @usableFromInline let state: Atomic<UInt64>
    /// `provider:event`.
    public let name: StaticString
    /// The field names, separated by spaces, in field order.
    public let fieldNames: StaticString

    /// A tracepoint named `name` (`provider:event`) with the space-separated field names `fields`.
    @inlinable
    public init(_ name: StaticString, fields: StaticString = "") {
        self.state = Atomic(TracepointState.unregistered)
        self.name = name
        self.fieldNames = fields
    }

    /// Whether ``emit(fieldTypes:payloadSize:encode:)`` records anything; registers the
    /// tracepoint (with `fieldTypes`) when it is reached for the first time.
    @inlinable
    public func isEnabled(fieldTypes: () -> [FieldType]) -> Bool {
        let word = state.load(ordering: .acquiring)
        if word == TracepointState.disabled { return false }
        if word == TracepointState.unregistered { return resolveSlow(fieldTypes) != TracepointState.disabled }
        return true
    }

    /// Records one event.
    /// - Parameters:
    ///   - fieldTypes: the schema's field types, in order (called once, at registration).
    ///   - payloadSize: the exact payload size of this event (called only when enabled).
    ///   - encode: writes exactly `payloadSize()` bytes: each field, in order (only when enabled).
    @inlinable
    @inline(__always)
    public func emit(fieldTypes: () -> [FieldType], payloadSize: () -> Int,
                     encode: (inout TracePayloadWriter) -> Void) {
        let word = state.load(ordering: .acquiring)
        if word == TracepointState.disabled { return }
        emit(loaded: word, fieldTypes: fieldTypes, payloadSize: payloadSize, encode: encode)
    }

    /// Payloads up to this size are encoded on the stack and copied in by one restartable sequence.
    @usableFromInline static let stagedPayloadLimit = 64

    /// The state word, for callers that check it before building the closures of
    /// ``emit(loaded:fieldTypes:payloadSize:encode:)`` (so a disabled call stores nothing).
    @inlinable
    @inline(__always)
    public var stateWord: UInt64 { state.load(ordering: .acquiring) }

    /// Whether a state word means "disabled".
    @inlinable
    @inline(__always)
    public static func isDisabled(_ word: UInt64) -> Bool { word == TracepointState.disabled }

    /// ``emit(fieldTypes:payloadSize:encode:)`` after the caller loaded ``stateWord`` and found it
    /// not disabled.
    @inlinable
    @inline(__always)
    public func emit(loaded: UInt64, fieldTypes: () -> [FieldType], payloadSize: () -> Int,
                     encode: (inout TracePayloadWriter) -> Void) {
        var word = loaded
        if word == TracepointState.unregistered {
            word = resolveSlow(fieldTypes)
            if word == TracepointState.disabled { return }
        }
        let size = payloadSize()
        if word & TracepointState.bufferSink != 0 {
            // SAFETY: `word` is armed and was loaded with acquire (see TraceRuntime.writer).
            let writer = unsafe TraceRuntime.writer(generation: TracepointState.generation(of: word))
            if size <= TracepointSite.stagedPayloadLimit {
                // Small payloads are staged on the stack and published by one copy-commit sequence:
                // cheaper than a reserve sequence followed by a separate commit store.
                // Uninitialized stack memory: the encoder writes exactly `size` bytes before they are read.
                // SAFETY: 64 bytes of stack, valid for the closure; `size` <= 64.
                unsafe withUnsafeTemporaryAllocation(byteCount: TracepointSite.stagedPayloadLimit, alignment: 8) { bytes in
                    // SAFETY: `bytes` has 64 writable bytes, of which the writer uses `size`.
                    var payload = unsafe TracePayloadWriter(start: bytes.baseAddress!, count: size)
                    encode(&payload)
                    if payload.isExactlyFilled {
                        // SAFETY: the first `size` bytes of `bytes` were just written.
                        _ = unsafe writer.write(eventID: TracepointState.eventID(of: word),
                                                source: UnsafeRawPointer(bytes.baseAddress!), size: size)
                    } else {
                        TraceRuntime.reportMalformedPayloadSlow(name: name)
                    }
                }
            } else if let slot = writer.reserve(eventID: TracepointState.eventID(of: word), payloadSize: size) {
                // SAFETY: the reserved record's payload has exactly `size` writable bytes until commit.
                var payload = unsafe TracePayloadWriter(start: slot.payload, count: size)
                encode(&payload)
                if payload.isExactlyFilled {
                    slot.commit()
                } else {
                    // Abandoning the record turns it into padding; say why, once.
                    slot.abandon()
                    TraceRuntime.reportMalformedPayloadSlow(name: name)
                }
            }
        }
        if word & TracepointState.forwarderSink != 0 {
            forwardSlow(word: word, size: size, encode: encode)
        }
    }

    /// First use: registers the schema and stores the tracepoint's state word.
    @inline(never)
    @usableFromInline
    func resolveSlow(_ fieldTypes: () -> [FieldType]) -> UInt64 {
        let types = fieldTypes()
        // SAFETY: `state` is an atomic borrowed in place; the runtime keeps its address only when it
        // lies in static storage (checked there), which lives as long as the process.
        return unsafe withUnsafePointer(to: state) { pointer in
            unsafe TraceRuntime.register(state: pointer, name: name, fieldNames: fieldNames, types: types)
        }
    }

    /// The forwarding sink (LTTng bridge): encodes into a stack buffer and hands it over.
    @inline(never)
    @usableFromInline
    func forwardSlow(word: UInt64, size: Int, encode: (inout TracePayloadWriter) -> Void) {
        // SAFETY: the temporary allocation holds `size` bytes (at least 1) for the closure's duration.
        unsafe withUnsafeTemporaryAllocation(byteCount: Swift.max(size, 1), alignment: 8) { buffer in
            // SAFETY: `buffer` has at least `size` writable bytes.
            var writer = unsafe TracePayloadWriter(start: buffer.baseAddress!, count: size)
            encode(&writer)
            guard writer.isExactlyFilled else {
                TraceRuntime.reportMalformedPayloadSlow(name: name)
                return
            }
            // SAFETY: the first `size` bytes were just written and stay valid during the call.
            let payload = unsafe RawSpan(_unsafeBytes: UnsafeRawBufferPointer(rebasing: buffer[0..<size]))
            TraceRuntime.forward(word: word, payload: payload)
        }
    }
}

/// The state word of a tracepoint.
///
/// `0`: not registered yet (the next use registers). `1`: disabled. Anything else: armed, as
/// `sinks | generation << 2 | eventID << 8 | localIndex << 24`, where `sinks` bit 0 is the
/// attached buffer and bit 1 the forwarder, `generation` selects the attached buffer's producer
/// (attachments never reuse a generation), `eventID` is the id in that buffer's registry, and
/// `localIndex` the process-local event number the forwarder knows. An armed word is never 1:
/// with the buffer sink the id is at least 1, without it bit 1 is set.
///
/// Ordering: the runtime writes a producer table entry, then stores armed words with release;
/// tracepoints load their word with acquire before reading the entry.
@usableFromInline
enum TracepointState {
    @usableFromInline static let unregistered: UInt64 = 0
    @usableFromInline static let disabled: UInt64 = 1
    @usableFromInline static let bufferSink: UInt64 = 1
    @usableFromInline static let forwarderSink: UInt64 = 2

    @inlinable static func generation(of word: UInt64) -> Int { Int(truncatingIfNeeded: (word >> 2) & 0x3F) }
    @inlinable static func eventID(of word: UInt64) -> UInt16 { UInt16(truncatingIfNeeded: word >> 8) }
    @inlinable static func localIndex(of word: UInt64) -> Int { Int(truncatingIfNeeded: (word >> 24) & 0xFFFF_FFFF) }

    static func armed(sinks: TraceSinks, generation: Int, eventID: UInt16, localIndex: Int) -> UInt64 {
        UInt64(sinks.rawValue) | UInt64(generation & 0x3F) << 2 | UInt64(eventID) << 8 | UInt64(localIndex) << 24
    }
}
