/// An event-name pattern for enabling and disabling tracepoints: `*` matches any run of
/// characters (including none), `?` one character; everything else matches itself.
/// Examples: `http:*`, `*:request`, `db:query`, `*`.
public struct EventPattern: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    private let characters: [Character]

    /// - Throws: `.invalidConfiguration` for an empty pattern or one with characters no event name has.
    public init(_ text: String) throws(TraceError) {
        guard !text.isEmpty else { throw TraceError(.invalidConfiguration, "an event pattern cannot be empty (use '*' for every event)") }
        for c in text where !(c == "*" || c == "?" || c == ":" || EventSchema.isIdentifierCharacter(c)) {
            throw TraceError(.invalidConfiguration, """
                event pattern '\(text)' contains '\(c)': use letters, digits, '_', ':', and the wildcards '*' and '?'
                """)
        }
        self.text = text
        self.characters = Array(text)
    }

    public var description: String { text }

    /// Whether `name` matches the whole pattern.
    public func matches(_ name: String) -> Bool {
        let subject = Array(name)
        // Greedy matching with backtracking to the last '*': linear for patterns with one star.
        var p = 0, s = 0
        var star = -1, resume = 0
        while s < subject.count {
            if p < characters.count && (characters[p] == "?" || characters[p] == subject[s]) {
                p += 1
                s += 1
            } else if p < characters.count && characters[p] == "*" {
                star = p
                resume = s
                p += 1
            } else if star >= 0 {
                p = star + 1
                resume += 1
                s = resume
            } else {
                return false
            }
        }
        while p < characters.count && characters[p] == "*" { p += 1 }
        return p == characters.count
    }
}
