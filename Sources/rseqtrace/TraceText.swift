import ArgumentParser
import RseqTraceFormats
import RseqTraceSupport

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
