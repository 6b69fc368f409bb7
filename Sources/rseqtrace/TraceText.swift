import ArgumentParser
import RseqTrace
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
        return CivilDate.date(daysSinceEpoch: realtime >= 0 ? realtime / day : (realtime - day + 1) / day)
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

    /// `given`, or else the newest `rseqtrace-record-*` directory in the current directory (what
    /// `record` writes by default), saying so on stderr.
    /// - Throws: `ExitCode.failure` (with an error line) when there is none.
    static func directory(_ given: String?) throws -> String {
        if let given { return given }
        let newest = (SystemInfo.directoryEntries(".") ?? [])
            .filter { $0.hasPrefix("rseqtrace-record-") && SystemInfo.directoryEntries($0) != nil }
            .max { recordOrder($0, $1) }
        guard let newest else {
            printError("error: no trace given and no rseqtrace-record-* directory here: name the trace directory")
            throw ExitCode.failure
        }
        printError("rseqtrace: reading \(newest)")
        return newest
    }

    /// Whether record directory `a` was created before `b`: `rseqtrace-record-YYYYMMDD-HHMMSS`,
    /// then `-2`, `-3`... for more in the same second.
    static func recordOrder(_ a: String, _ b: String) -> Bool {
        func key(_ name: String) -> (String, Int) {
            let stamp = String(name.dropFirst("rseqtrace-record-".count).prefix(15))
            let suffix = name.dropFirst("rseqtrace-record-".count + 15)
            return (stamp, suffix.hasPrefix("-") ? Int(suffix.dropFirst()) ?? 1 : 1)
        }
        return key(a) < key(b)
    }

    /// Opens a trace or a set of traces (`CTFTraceSet`: a directory holding one trace per
    /// process, as `attach` writes), printing `error: ...` and failing with exit code 1 when that
    /// fails, and a warning for each trace of a set that cannot be read (the others are read). A
    /// directory that is neither but holds exactly one trace below it (at most 4 levels down) is
    /// read in its place, saying so on stderr; one holding several is refused, listing them.
    static func open(_ directory: String) throws -> CTFTraceSet {
        let set: CTFTraceSet
        do {
            set = try CTFTraceSet(directory: directory)
        } catch {
            if error.code == .notFound, SystemInfo.directoryEntries(directory) != nil {
                let found = traceDirectories(below: directory, levels: 4)
                if found.count == 1, let only = found.first {
                    printError("rseqtrace: reading the trace in \(only)")
                    return try open(only)
                }
                if found.count > 1 {
                    printError("error: \(directory) holds \(found.count) traces; read one of them: \(found.joined(separator: ", "))")
                    throw ExitCode.failure
                }
            }
            printError("error: \(error)")
            throw ExitCode.failure
        }
        for problem in set.unreadable { printError("warning: \(problem)") }
        return set
    }

    /// The directories below `root` (not `root` itself, at most `levels` down, hidden ones
    /// skipped) that hold a `metadata` file, sorted.
    static func traceDirectories(below root: String, levels: Int) -> [String] {
        CTFTraceSet.traceDirectories(below: root, levels: levels)
    }

    /// Prints a warning for each problem of `records` not yet reported (the first `reported`),
    /// and returns how many it has reported in all.
    static func reportProblems(_ records: CTFTraceSet.Iterator, reported: Int) -> Int {
        for problem in records.problems.dropFirst(reported) { printError("warning: \(problem)") }
        return records.problems.count
    }
}
