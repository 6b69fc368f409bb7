/// An event-name pattern for enabling and disabling tracepoints: `*` matches any run of
/// characters (including none), `?` one character; everything else matches itself, case-sensitively
/// (`HTTP:*` does not match `http:request`). Allowed characters: ASCII letters and digits, `_`, `:`,
/// `*` and `?`. Examples: `http:*`, `*:request`, `db:query`, `*`. The rules built from patterns are
/// described on `TraceRuntime`.
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

    /// Whether every name this pattern matches is also matched by `other`'s matches, i.e. whether
    /// `other` matches everything `self` does. Conservative: `true` only when `other` matches
    /// `self`'s text with each of `self`'s wildcards taken by a wildcard of `other` (a `*` only by a
    /// `*`), which proves the inclusion; some inclusions are not recognised (then `false`).
    package func isCovered(by other: EventPattern) -> Bool {
        let p = Array(other.text.unicodeScalars)
        let n = Array(text.unicodeScalars)
        // The matching of `matches`, where a name character that is a wildcard of `self` is matched
        // by a `*` of `other`, or (a `?`) by its `?`, never by a literal.
        return EventPattern.glob(p, n) { pc, nc in
            if nc == "*" { return false }            // only a star of `other` takes a star
            if pc == "?" { return true }             // `?` takes one literal or one `?`
            return nc != "?" && pc == nc
        }
    }

    /// Whether `name` matches the whole pattern.
    package func matches(_ name: String) -> Bool {
        EventPattern.matches(text, name, questionMarkMatchesOne: true)
    }

    /// Glob matching without validating the pattern (e.g. `rseqtrace view --event`, whose patterns
    /// may name any event of a foreign trace): `*` matches any run of characters (also empty), `?`
    /// one character when `questionMarkMatchesOne`, anything else itself. Compares Unicode scalars.
    package static func matches(_ pattern: String, _ name: String, questionMarkMatchesOne: Bool) -> Bool {
        glob(Array(pattern.unicodeScalars), Array(name.unicodeScalars)) { pc, nc in
            pc == nc || (questionMarkMatchesOne && pc == "?")
        }
    }

    /// Whether `p` matches the whole of `n`, where a `*` of `p` matches any run of `n` (also empty)
    /// and any other character `pc` of `p` matches one character `nc` of `n` when `accepts(pc, nc)`.
    /// Greedy matching with backtracking to the last `*`: linear for patterns with one star.
    private static func glob(_ p: [Unicode.Scalar], _ n: [Unicode.Scalar],
                             accepts: (Unicode.Scalar, Unicode.Scalar) -> Bool) -> Bool {
        var (pi, ni) = (0, 0)
        var star: Int?
        var resume = 0
        while ni < n.count {
            if pi < p.count && p[pi] == "*" {
                star = pi
                resume = ni
                pi += 1
            } else if pi < p.count && accepts(p[pi], n[ni]) {
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

/// An ordered list of enable/disable rules with its starting state: the whole model of which events
/// are enabled (documented once, on `TraceRuntime`).
package struct EventRules: Sendable, Equatable {
    /// One rule: the events matching `pattern` are enabled (`enabled`) or disabled.
    package struct Rule: Sendable, Equatable {
        package var pattern: EventPattern
        package var enabled: Bool
        package init(_ pattern: EventPattern, enabled: Bool) {
            self.pattern = pattern
            self.enabled = enabled
        }
    }

    /// The state of an event that no rule matches.
    package var startsEnabled: Bool
    /// In order: the last rule that matches an event decides its state.
    package private(set) var rules: [Rule]

    /// Every event enabled, no rule.
    package static let enablingEverything = EventRules(startsEnabled: true, rules: [])
    /// Every event disabled, no rule (what a malformed `RSEQTRACE_EVENTS` leaves).
    package static let disablingEverything = EventRules(startsEnabled: false, rules: [])

    package init(startsEnabled: Bool, rules: [Rule]) {
        self.startsEnabled = startsEnabled
        self.rules = []
        for rule in rules { append(rule) }
    }

    /// A rule list as written (`RSEQTRACE_EVENTS`, `TraceRuntime.setRules`): comma-separated
    /// patterns, each optionally preceded by `-` (disable) or `+` (enable); blanks around a pattern
    /// and empty items are ignored. Events start disabled when the first rule enables (an
    /// allow-list such as `http:*`), enabled otherwise (including for an empty list).
    /// - Throws: `.invalidConfiguration` naming the first bad item exactly as written.
    package init(parsing specification: String) throws(TraceError) {
        var rules: [Rule] = []
        for item in specification.split(separator: ",", omittingEmptySubsequences: false) {
            var text = String(item.drop(while: \.isWhitespace))
            while text.last?.isWhitespace == true { text.removeLast() }
            guard !text.isEmpty else { continue }
            let enabled = text.first != "-"
            if text.first == "-" || text.first == "+" { text.removeFirst() }
            do throws(TraceError) {
                rules.append(Rule(try EventPattern(text), enabled: enabled))
            } catch {
                throw TraceError(.invalidConfiguration, "rule '\(String(item))': \(error.message)")
            }
        }
        self.init(startsEnabled: rules.first.map { !$0.enabled } ?? true, rules: rules)
    }

    /// Whether the event named `name` is enabled: the last matching rule decides, else the start.
    package func isEnabled(_ name: String) -> Bool {
        rules.last { $0.pattern.matches(name) }?.enabled ?? startsEnabled
    }

    /// Adds `rule` last (it overrides every earlier rule for the events it matches, and changes no
    /// other event) and removes the earlier rules it shadows entirely, so repeated enabling and
    /// disabling does not grow the list.
    package mutating func append(_ rule: Rule) {
        rules.removeAll { $0.pattern.isCovered(by: rule.pattern) }
        rules.append(rule)
    }
}
