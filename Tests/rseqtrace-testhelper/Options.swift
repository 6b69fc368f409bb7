#if canImport(Glibc)
import Glibc
import RseqTraceSupport
#endif
import RseqTrace

/// `--key value` options and `--flag` switches, parsed by hand (no dependencies).
struct Options {
    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []

    /// Parses `arguments` (without the subcommand). `flagNames` take no value.
    init(_ arguments: ArraySlice<String>, flagNames: Set<String>, valueNames: Set<String>) throws(UsageError) {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else { throw UsageError("unexpected argument '\(argument)'") }
            let name = String(argument.dropFirst(2))
            if flagNames.contains(name) {
                flags.insert(name)
            } else if valueNames.contains(name) {
                guard let value = rest.popFirst() else { throw UsageError("--\(name) needs a value") }
                values[name] = value
            } else {
                throw UsageError("unknown option --\(name)")
            }
        }
    }

    func has(_ flag: String) -> Bool { flags.contains(flag) }

    /// The required `--mode discard|overwrite`.
    func bufferMode() throws(UsageError) -> BufferMode {
        switch try string("mode") {
        case "discard": return .discard
        case "overwrite": return .overwrite
        case let other: throw UsageError("--mode must be discard or overwrite, got '\(other)'")
        }
    }

    func string(_ name: String) throws(UsageError) -> String {
        guard let value = values[name] else { throw UsageError("--\(name) is required") }
        return value
    }

    /// An integer option (accepts K/M suffixes: 16K = 16384), within `range`.
    func int(_ name: String, default fallback: Int? = nil, in range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let text = values[name] else {
            guard let fallback else { throw UsageError("--\(name) is required") }
            return fallback
        }
        var digits = Substring(text)
        var scale = 1
        if let last = digits.last, last == "K" || last == "k" { scale = 1 << 10; digits = digits.dropLast() }
        else if let last = digits.last, last == "M" || last == "m" { scale = 1 << 20; digits = digits.dropLast() }
        guard let number = Int(digits), range.contains(number * scale) else {
            throw UsageError("--\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return number * scale
    }
}

struct UsageError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Flushes stdio and ends the process.
func finish(_ code: Int32) -> Never {
    exit(code)
}
