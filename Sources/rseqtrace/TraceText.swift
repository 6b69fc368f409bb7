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

    /// Opens a trace, printing `error: ...` and failing with exit code 1 when that fails. A
    /// directory that is not a trace but holds exactly one below it (at most 4 levels down) is
    /// read in its place, saying so on stderr; one holding several is refused, listing them.
    static func open(_ directory: String) throws -> CTFTraceReader {
        do {
            return try CTFTraceReader(directory: directory)
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
    }

    /// The directories below `root` (not `root` itself, at most `levels` down, hidden ones
    /// skipped) that hold a `metadata` file, sorted.
    static func traceDirectories(below root: String, levels: Int) -> [String] {
        var found: [String] = []
        var level = [root]
        for _ in 0..<levels {
            level = level.flatMap { directory in
                (SystemInfo.directoryEntries(directory) ?? []).filter { !$0.hasPrefix(".") }.sorted()
                    .map { directory + "/" + $0 }.filter { SystemInfo.directoryEntries($0) != nil }
            }
            for directory in level where SystemInfo.directoryEntries(directory)?.contains("metadata") == true {
                found.append(directory)
            }
            // A trace's own subdirectories (LTTng's index/) hold no further trace.
            level.removeAll { found.contains($0) }
        }
        return found.sorted()
    }
}
