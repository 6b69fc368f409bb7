import ArgumentParser
import RseqTraceFormats

/// Text helpers of `view` and `stats`: times, durations, event-name patterns.
enum TraceText {
    /// `HH:MM:SS.nnnnnnnnn` (UTC) of realtime nanoseconds since the epoch.
    static func timeOfDay(_ realtime: Int64) -> String {
        let day: Int64 = 86_400 * 1_000_000_000
        var ns = realtime % day
        if ns < 0 { ns += day }
        let seconds = ns / 1_000_000_000
        return "\(digits(seconds / 3600, 2)):\(digits(seconds % 3600 / 60, 2)):\(digits(seconds % 60, 2)).\(digits(ns % 1_000_000_000, 9))"
    }

    /// `s.nnnnnnnnn` of a nanosecond count.
    static func seconds(_ ns: UInt64) -> String { "\(ns / 1_000_000_000).\(digits(Int64(ns % 1_000_000_000), 9))" }

    static func digits(_ value: Int64, _ width: Int) -> String {
        let text = "\(value)"
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// `*` matches any run of characters (also empty); everything else matches itself.
    static func matches(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.unicodeScalars)
        let n = Array(name.unicodeScalars)
        var (pi, ni) = (0, 0)
        var star: Int?
        var resume = 0
        while ni < n.count {
            if pi < p.count && p[pi] == "*" {
                star = pi
                resume = ni
                pi += 1
            } else if pi < p.count && p[pi] == n[ni] {
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

    /// Opens a trace, printing `error: ...` and failing with exit code 1 when that fails.
    static func open(_ directory: String) throws -> CTFTraceReader {
        do {
            return try CTFTraceReader(directory: directory)
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
