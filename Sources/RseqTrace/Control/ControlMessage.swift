/// One message of the live-tracing control protocol (docs/LiveTracing.md): a verb and named
/// fields, carried as one `SOCK_SEQPACKET` packet of UTF-8 text — the verb on the first line, then
/// one `key=value` per line.
///
/// Both sides parse strictly: a packet that is not valid UTF-8, has a malformed or repeated key, a
/// value with a control character, or is larger than ``maximumSize`` is refused with an error
/// naming the problem. Neither side ever trusts a field without checking it (``integer(_:in:)``).
package struct ControlMessage: Equatable, Sendable {
    /// What the message asks for or answers: `status`, `events`, `attach`, `detach`,
    /// `snapshot`; replies are `ok` or `error` (with a `message` field).
    package var verb: String
    /// The named fields.
    package var fields: [String: String]

    /// The largest packet either side sends or accepts.
    package static let maximumSize = 60 << 10

    package init(_ verb: String, _ fields: [String: String] = [:]) {
        self.verb = verb
        self.fields = fields
    }

    /// An `error` reply saying `message`, of kind `code`.
    package static func error(_ message: String, code: TraceError.Code = .invalidConfiguration) -> ControlMessage {
        ControlMessage("error", ["message": message, "code": code.description])
    }

    /// The error an `error` reply carries (its `code`, when known, and its `message`).
    package var carriedError: TraceError {
        let codes: [TraceError.Code] = [.invalidConfiguration, .invalidName, .alreadyExists, .notFound, .permissionDenied,
                                        .notATraceObject, .unsupportedVersion, .corrupted, .systemCallFailed]
        let code = codes.first { $0.description == fields["code"] } ?? .invalidConfiguration
        return TraceError(code, fields["message"] ?? "the traced process refused the request without saying why")
    }

    package subscript(key: String) -> String? {
        get { fields[key] }
        set { fields[key] = newValue }
    }

    /// The packet: verb, then the fields sorted by key. Control characters in values (there
    /// should be none) are replaced by spaces, so the packet always parses.
    package func encoded() -> [UInt8] {
        var text = verb
        for key in fields.keys.sorted() {
            text += "\n" + key + "="
            text.unicodeScalars.append(contentsOf: fields[key]!.unicodeScalars.map {
                $0.properties.generalCategory == .control ? " " : $0
            })
        }
        return Array(text.utf8)
    }

    /// Parses a packet.
    /// - Throws: `.corrupted` naming what is wrong with it.
    package init(decoding bytes: some Collection<UInt8>) throws(TraceError) {
        guard bytes.count <= Self.maximumSize else {
            throw TraceError(.corrupted, "a control message of \(bytes.count) bytes is larger than the protocol allows (\(Self.maximumSize))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw TraceError(.corrupted, "a control message is not valid UTF-8")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.first, !first.isEmpty, first.allSatisfy(Self.isKeyCharacter) else {
            throw TraceError(.corrupted, "a control message does not start with a verb (lowercase letters and '_')")
        }
        verb = String(first)
        fields = [:]
        lines.removeFirst()
        for line in lines {
            guard let equals = line.firstIndex(of: "="), equals != line.startIndex,
                  line[..<equals].allSatisfy(Self.isKeyCharacter) else {
                throw TraceError(.corrupted, "control message '\(verb)' has a malformed line (expected key=value)")
            }
            let key = String(line[..<equals])
            let value = String(line[line.index(after: equals)...])
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw TraceError(.corrupted, "field '\(key)' of control message '\(verb)' contains a control character")
            }
            guard fields.updateValue(value, forKey: key) == nil else {
                throw TraceError(.corrupted, "field '\(key)' appears twice in control message '\(verb)'")
            }
        }
    }

    /// The integer field `key`, required to lie in `range`.
    /// - Throws: `.corrupted` naming the field when it is missing, not a decimal integer or out of range.
    package func integer(_ key: String, in range: ClosedRange<Int>) throws(TraceError) -> Int {
        guard let text = fields[key] else {
            throw TraceError(.corrupted, "control message '\(verb)' lacks the field '\(key)'")
        }
        guard let value = Int(text), range.contains(value) else {
            throw TraceError(.corrupted, "field '\(key)' of control message '\(verb)' is '\(text)', not an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// The text field `key`.
    /// - Throws: `.corrupted` when it is missing.
    package func text(_ key: String) throws(TraceError) -> String {
        guard let value = fields[key] else {
            throw TraceError(.corrupted, "control message '\(verb)' lacks the field '\(key)'")
        }
        return value
    }

    static func isKeyCharacter(_ c: Character) -> Bool { c == "_" || ("a"..."z").contains(c) || ("0"..."9").contains(c) }
}
