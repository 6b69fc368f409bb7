import CRseqTrace
import Synchronization
import SystemPackage

/// The event registry of a trace object: the schemas of every event producers registered, so a
/// consumer in another process can name and decode records without producers doing anything per
/// event.
///
/// Registration is a slow path taken once per event type and process, under the registry's
/// process-shared robust mutex: an event already registered under the same name with the same
/// fields gets its existing id (several processes of one program share ids); a different schema
/// under a registered name is refused. Entries are append-only; `registryUsed` is published with
/// a releasing store after the entry is written, and readers load it with acquiring ordering.
///
/// Entry encoding (little-endian, each entry padded to 8 bytes):
/// ```
/// u32 entry length | u16 event id | u8 field count | u8 name length | name bytes
/// then per field: u8 type code | u8 bits | u8 name length | name bytes | type parameters
/// ```
/// Type codes: 1 unsigned, 2 signed, 3 float32, 4 float64, 5 bool (no parameters); 6 string and
/// 7 bytes (u16 bound); 8 enumeration (`bits` is the container; u8 signed, u16 case count, then per
/// case i64 value, u8 name length, name bytes).
package enum EventRegistry {
    /// Ids start at 1; 0 is never assigned.
    package static let firstEventID: UInt16 = 1

    /// Encodes one entry.
    static func encode(id: UInt16, schema: EventSchema) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, 0, 0, UInt8(truncatingIfNeeded: id), UInt8(truncatingIfNeeded: id >> 8),
                              UInt8(schema.fields.count), UInt8(schema.name.utf8.count)]
        bytes.append(contentsOf: schema.name.utf8)
        for field in schema.fields {
            let (code, bits) = field.type.registryCode
            bytes.append(code)
            bytes.append(UInt8(bits))
            bytes.append(UInt8(field.name.utf8.count))
            bytes.append(contentsOf: field.name.utf8)
            field.type.appendRegistryParameters(to: &bytes)
        }
        while bytes.count % 8 != 0 { bytes.append(0) }
        let length = UInt32(bytes.count)
        for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: length >> (8 * i)) }
        return bytes
    }

    /// Decodes the entries in `bytes`, or says what is malformed.
    static func decode(_ bytes: [UInt8]) -> Result<[(UInt16, EventSchema)], TraceError> {
        var entries: [(UInt16, EventSchema)] = []
        var offset = 0
        func fail(_ what: String) -> Result<[(UInt16, EventSchema)], TraceError> {
            .failure(TraceError(.corrupted, "event registry entry at offset \(offset): \(what)"))
        }
        while offset < bytes.count {
            guard offset + 8 <= bytes.count else { return fail("truncated header") }
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            guard length >= 8, length % 8 == 0, length <= bytes.count - offset else { return fail("invalid length \(length)") }
            let end = offset + length
            let id = UInt16(bytes[offset + 4]) | UInt16(bytes[offset + 5]) << 8
            let fieldCount = Int(bytes[offset + 6])
            var cursor = offset + 8
            func string(_ count: Int) -> String? {
                guard cursor + count <= end else { return nil }
                defer { cursor += count }
                return String(decoding: bytes[cursor..<(cursor + count)], as: UTF8.self)
            }
            func integer(_ size: Int) -> UInt64? {
                guard cursor + size <= end else { return nil }
                var value: UInt64 = 0
                for i in 0..<size { value |= UInt64(bytes[cursor + i]) << (8 * UInt64(i)) }
                cursor += size
                return value
            }
            guard let name = string(Int(bytes[offset + 7])) else { return fail("name runs past the entry") }
            var fields: [EventField] = []
            for _ in 0..<fieldCount {
                guard cursor + 3 <= end else { return fail("field runs past the entry") }
                let code = bytes[cursor], bits = Int(bytes[cursor + 1]), nameLength = Int(bytes[cursor + 2])
                cursor += 3
                guard let fieldName = string(nameLength) else { return fail("field name runs past the entry") }
                let type: FieldType
                switch FieldType.fromRegistry(code: code, bits: bits, field: fieldName, integer: integer, string: string) {
                case .success(let decoded): type = decoded
                case .failure(let problem): return fail(problem.what)
                }
                fields.append(EventField(fieldName, type))
            }
            let schema = EventSchema(name: name, fields: fields)
            if let problem = schema.problem { return fail(problem) }
            entries.append((id, schema))
            offset = end
        }
        return .success(entries)
    }
}

extension SharedTraceBuffer {
    private var registryUsedWord: UnsafeMutablePointer<Atomic<UInt64>> {
        // SAFETY: an 8-aligned word of the mapped header.
        unsafe base.sharedWord64(at: HeaderField.registryUsed.rawValue)
    }

    /// `registryUsed`, checked against the registry's size (another process can write anything there).
    private func registryUsed() throws(TraceError) -> Int {
        // SAFETY: see registryUsedWord.
        let used = unsafe registryUsedWord.pointee.load(ordering: .acquiring)
        guard used <= UInt64(TraceLayout.registrySize), used % 8 == 0 else {
            throw TraceError(.corrupted, """
                event registry of '\(name)' claims \(used) bytes (registryUsed, offset \(HeaderField.registryUsed.rawValue) \
                of \(SharedTraceBuffer.path(forName: name))), not a multiple of 8 up to its \(TraceLayout.registrySize): \
                something other than RseqTrace wrote into it; events of ids without a schema cannot be decoded, \
                stop that process and trace again
                """)
        }
        return Int(truncatingIfNeeded: used)
    }

    private func registryBytes(count: Int) -> [UInt8] {
        // SAFETY: `count` is at most registrySize (checked by callers); the region is mapped.
        unsafe Array(UnsafeRawBufferPointer(start: base.advanced(by: TraceLayout.registryOffset), count: count))
    }

    /// Registers `schema` and returns its event id (the existing id when the same schema was
    /// registered before, by this or another process).
    ///
    /// - Throws: `.invalidConfiguration` for an invalid schema, a different schema under the same
    ///   name, or a full registry; `.corrupted` when the registry is damaged.
    public func registerEvent(_ schema: EventSchema) throws(TraceError) -> UInt16 {
        if let problem = schema.problem { throw TraceError(.invalidConfiguration, problem) }
        guard schema.name.utf8.count <= 255, schema.fields.count <= 255,
              schema.fields.allSatisfy({ $0.name.utf8.count <= 255 }) else {
            throw TraceError(.invalidConfiguration, "event \(schema.name): names are limited to 255 bytes and 255 fields")
        }
        guard schema.maximumPayloadSize <= layout.maximumPayloadSize else {
            throw TraceError(.invalidConfiguration, """
                event \(schema.name) can carry a \(schema.maximumPayloadSize)-byte payload; this trace's sub-buffers \
                allow at most \(layout.maximumPayloadSize): use a larger sub-buffer size or lower the string/byte bounds
                """)
        }
        // SAFETY: the registry mutex lives in the mapped header and was initialised at creation.
        let mutex = unsafe base.advanced(by: HeaderField.registryMutex.rawValue)
        // SAFETY: as above.
        let rc = unsafe rseqtrace_mutex_lock(mutex, 5_000_000_000)
        guard rc == 0 else {
            throw TraceError(.systemCallFailed, "cannot lock the event registry of '\(name)'", errno: Errno(rawValue: rc))
        }
        // SAFETY: locked just above.
        defer { unsafe rseqtrace_mutex_unlock(mutex) }
        let used = try registryUsed()
        let existing: [(UInt16, EventSchema)]
        switch EventRegistry.decode(registryBytes(count: used)) {
        case .success(let entries): existing = entries
        case .failure(let error): throw error
        }
        if let match = existing.first(where: { $0.1.name == schema.name }) {
            guard match.1 == schema else {
                throw TraceError(.invalidConfiguration, """
                    event \(schema.name) is already registered in '\(name)' with different fields; \
                    give the new shape another name
                    """)
            }
            return match.0
        }
        let id = EventRegistry.firstEventID &+ UInt16(truncatingIfNeeded: existing.count)
        guard existing.count < Int(UInt16.max) - 1 else {
            throw TraceError(.invalidConfiguration, "the event registry of '\(name)' has no ids left")
        }
        let entry = EventRegistry.encode(id: id, schema: schema)
        guard used + entry.count <= TraceLayout.registrySize else {
            throw TraceError(.invalidConfiguration, "the event registry of '\(name)' is full (\(TraceLayout.registrySize) bytes)")
        }
        for (i, byte) in entry.enumerated() {
            // SAFETY: inside the registry region (bounds checked above).
            unsafe base.storeBytes(of: byte, toByteOffset: TraceLayout.registryOffset + used + i, as: UInt8.self)
        }
        // SAFETY: see registryUsedWord; publishes the entry written above.
        unsafe registryUsedWord.pointee.store(UInt64(used + entry.count), ordering: .releasing)
        return id
    }

    /// Every registered event, by id.
    /// - Throws: `.corrupted` when the registry is damaged.
    public func registeredEvents() throws(TraceError) -> [UInt16: EventSchema] {
        let used = try registryUsed()
        switch EventRegistry.decode(registryBytes(count: used)) {
        case .success(let entries): return Dictionary(entries, uniquingKeysWith: { first, _ in first })
        case .failure(let error):
            throw TraceError(.corrupted, """
                \(error.message) of the event registry of '\(name)' (\(SharedTraceBuffer.path(forName: name))): \
                something other than RseqTrace wrote into it; stop that process and trace again
                """)
        }
    }
}
