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

    /// The UTC calendar date of realtime nanoseconds since the epoch (proleptic Gregorian).
    static func date(_ realtime: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let day: Int64 = 86_400 * 1_000_000_000
        let days = realtime >= 0 ? realtime / day : (realtime - day + 1) / day
        // Days since 0000-03-01 split into 400-year eras of 146097 days; years start in March so
        // that the leap day is the last day of a year.
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let dayOfMonth = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, dayOfMonth)
    }

    /// `YYYY-MM-DD` (UTC) of realtime nanoseconds since the epoch.
    static func isoDate(_ realtime: Int64) -> String {
        let (year, month, day) = date(realtime)
        return "\(digits(year, 4))-\(digits(month, 2))-\(digits(day, 2))"
    }

    /// `YYYYMMDD-HHMMSS` (UTC) of realtime nanoseconds since the epoch.
    static func compactDateTime(_ realtime: Int64) -> String {
        let (year, month, day) = date(realtime)
        let time = timeOfDay(realtime).prefix(8).filter { $0 != ":" }
        return "\(digits(year, 4))\(digits(month, 2))\(digits(day, 2))-\(time)"
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
