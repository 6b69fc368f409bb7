/// An event-name pattern for enabling and disabling tracepoints: `*` matches any run of
/// characters (including none), `?` one character; everything else matches itself.
/// Examples: `http:*`, `*:request`, `db:query`, `*`.
package struct EventPattern: Sendable, Hashable, CustomStringConvertible {
    package let text: String

    /// - Throws: `.invalidConfiguration` for an empty pattern or one with characters no event name has.
    package init(_ text: String) throws(TraceError) {
        guard !text.isEmpty else { throw TraceError(.invalidConfiguration, "an event pattern cannot be empty (use '*' for every event)") }
        for c in text where !(c == "*" || c == "?" || c == ":" || EventSchema.isIdentifierCharacter(c)) {
            throw TraceError(.invalidConfiguration, """
                event pattern '\(text)' contains '\(c)': use letters, digits, '_', ':', and the wildcards '*' and '?'
                """)
        }
        self.text = text
    }

    package var description: String { text }

    /// Whether `name` matches the whole pattern.
    package func matches(_ name: String) -> Bool {
        EventPattern.matches(text, name, questionMarkMatchesOne: true)
    }

    /// Glob matching without validating the pattern (e.g. `rseqtrace view --event`, whose patterns
    /// may name any event of a foreign trace): `*` matches any run of characters (also empty), `?`
    /// one character when `questionMarkMatchesOne`, anything else itself. Compares Unicode scalars.
    package static func matches(_ pattern: String, _ name: String, questionMarkMatchesOne: Bool) -> Bool {
        let p = Array(pattern.unicodeScalars)
        let n = Array(name.unicodeScalars)
        // Greedy matching with backtracking to the last '*': linear for patterns with one star.
        var (pi, ni) = (0, 0)
        var star: Int?
        var resume = 0
        while ni < n.count {
            if pi < p.count && p[pi] == "*" {
                star = pi
                resume = ni
                pi += 1
            } else if pi < p.count && (p[pi] == n[ni] || (questionMarkMatchesOne && p[pi] == "?")) {
                pi += 1
                ni += 1
            } else if let s = star {
                pi = s + 1
                resume += 1
                ni = resume
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
