import ArgumentParser
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

/// The options of `view` and `stats` that choose which records they read: event names, CPUs,
/// processes, field conditions and a time range.
struct EventSelection: ParsableArguments {
    @Option(name: .customLong("event"), help: "Only events whose name matches this pattern (`*` matches any text, e.g. demo:*). Repeatable.")
    var events: [String] = []

    @Option(name: .customLong("cpu"), help: "Only this CPU's events and losses (the packets' cpu_id). Repeatable.")
    var cpus: [Int] = []

    @Option(name: .customLong("pid"), help: """
        Only this process's events and losses (the pid its trace names; for a directory holding one \
        trace per process, as attach writes). Repeatable.
        """)
    var pids: [Int64] = []

    @Option(name: .customLong("tid"), help: """
        Only events written by this thread (its vtid, which traces of rseqtrace and LTTng traces with \
        the vtid context record). Repeatable. Losses are not a thread's and stay listed.
        """)
    var tids: [Int64] = []

    @Option(name: .customLong("filter"), help: ArgumentHelp("""
        Only events whose field satisfies 'FIELD OP VALUE', OP one of == != < <= > >=, VALUE a number \
        or a string ('GET' or "GET" or GET; an enumeration compares its label, or its number when \
        VALUE is a number), e.g. 'status >= 500'. Events without FIELD do not match. Repeatable: \
        all must hold.
        """, valueName: "CONDITION"))
    var filters: [String] = []

    @Option(help: ArgumentHelp("""
        Only records at or after TIME: HH:MM:SS[.fraction] (UTC, on the day of the trace's first \
        event), YYYY-MM-DD HH:MM:SS[.fraction] or YYYY-MM-DDTHH:MM:SS[.fraction] (UTC), or +SECONDS \
        after the trace's first record.
        """, valueName: "TIME"))
    var from: String?

    @Option(help: ArgumentHelp("Only records at or before TIME (written as for --from).", valueName: "TIME"))
    var to: String?

    func validate() throws {
        if let bad = cpus.first(where: { $0 < 0 || $0 > Int(UInt32.max) }) {
            throw ValidationError("--cpu must be a CPU number (0 or more), got \(bad)")
        }
        if let bad = pids.first(where: { $0 <= 0 }) { throw ValidationError("--pid must be a process id (1 or more), got \(bad)") }
        if let bad = tids.first(where: { $0 <= 0 }) { throw ValidationError("--tid must be a thread id (1 or more), got \(bad)") }
        if let bad = events.first(where: \.isEmpty) { throw ValidationError("--event needs a non-empty pattern, got '\(bad)'") }
        _ = try conditions()
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, TimeBound(value) == nil {
                throw ValidationError("""
                    \(name) '\(value)' is not a time: write HH:MM:SS[.fraction], YYYY-MM-DD HH:MM:SS[.fraction] or +SECONDS
                    """)
            }
        }
    }

    /// The parsed --filter conditions.
    func conditions() throws(ValidationError) -> [FieldCondition] {
        var parsed: [FieldCondition] = []
        for text in filters {
            guard let condition = FieldCondition(text) else {
                throw ValidationError("""
                    --filter '\(text)' is not 'FIELD OP VALUE' with OP one of == != < <= > >= (e.g. 'status >= 500')
                    """)
            }
            parsed.append(condition)
        }
        return parsed
    }

    /// Decides record by record; built once per command from the options.
    struct Matcher {
        let events: [String]
        let cpus: Set<UInt32>
        let pids: Set<Int64>
        let tids: Set<Int64>
        let conditions: [FieldCondition]
        let from: TimeBound?
        let to: TimeBound?
        /// Realtime of the first record read, which relative and time-of-day bounds refer to.
        private var origin: Int64?
        /// The realtime range selected (known from the first record on).
        private var lower = Int64.min
        private var upper = Int64.max

        init(_ selection: EventSelection) throws {
            events = selection.events
            cpus = Set(selection.cpus.map { UInt32($0) })
            pids = Set(selection.pids)
            tids = Set(selection.tids)
            conditions = try selection.conditions()
            from = selection.from.flatMap(TimeBound.init)
            to = selection.to.flatMap(TimeBound.init)
        }

        /// Whether `record`, of the process whose id is `pid` (nil: unknown), is selected. Call for
        /// every record in time order (the first one fixes the origin of relative times).
        mutating func matches(_ record: CTFRecord, pid: Int64?) -> Bool {
            let realtime: Int64
            switch record {
            case .event(let event): realtime = event.realtime
            case .discarded(let loss): realtime = loss.realtimeBegin
            }
            if origin == nil {
                origin = realtime
                lower = from?.resolve(origin: realtime) ?? Int64.min
                upper = to?.resolve(origin: realtime) ?? Int64.max
            }
            guard realtime >= lower, realtime <= upper else { return false }
            if !cpus.isEmpty && !cpus.contains(record.cpuID) { return false }
            guard case .event(let event) = record else {
                return pids.isEmpty || (pid.map { pids.contains($0) } ?? false)
            }
            let thread = TraceTimeline.thread(of: event)
            if !pids.isEmpty {
                // The process that wrote the event (its vpid: a forked child's events are its own), or the trace's.
                guard let writer = thread?.pid ?? pid, pids.contains(writer) else { return false }
            }
            if !tids.isEmpty && !(thread.map { tids.contains($0.tid) } ?? false) { return false }
            if !events.isEmpty && !events.contains(where: { EventPattern.matches($0, event.name, questionMarkMatchesOne: false) }) {
                return false
            }
            return conditions.allSatisfy { $0.holds(for: event) }
        }
    }

    /// The --cpu values that are not CPUs of the traces of `set` (whose stream files are
    /// `channel0_<cpu>`), and the --pid values that are not the process of any of its traces,
    /// each with a warning line.
    func missingWarnings(_ set: CTFTraceSet) -> [String] {
        var warnings: [String] = []
        let known = set.processes
        if !known.isEmpty {
            let list = known.map(\.label).joined(separator: ", ")
            for pid in pids where !known.contains(where: { $0.pid == pid }) {
                warnings.append("warning: --pid \(pid): the trace has no process \(pid) (its processes: \(list)); nothing is shown for it")
            }
        }
        return missingCPUWarnings(set.members.flatMap(\.reader.streamNames)) + warnings
    }

    /// The --cpu values that are not CPUs of stream files `streamNames` (`channel0_<cpu>`), each
    /// with a warning line.
    func missingCPUWarnings(_ streamNames: [String]) -> [String] {
        let present = Set(streamNames.compactMap { name -> Int? in
            let digits = name.reversed().prefix { $0.isASCII && $0.isNumber }
            return digits.isEmpty || digits.count > 9 ? nil : Int(String(digits.reversed()))
        })
        guard !present.isEmpty else { return [] }
        let list = present.sorted().map(String.init).joined(separator: ", ")
        return cpus.filter { !present.contains($0) }.map {
            "warning: --cpu \($0): the trace has no CPU \($0) (its CPUs: \(list)); nothing is shown for it"
        }
    }
}

/// `FIELD OP VALUE`, one --filter condition.
struct FieldCondition: Equatable {
    enum Operator: String, CaseIterable {
        case equal = "==", notEqual = "!=", lessOrEqual = "<=", greaterOrEqual = ">=", less = "<", greater = ">"
    }

    var field: String
    var op: Operator
    var value: String

    /// Parses `status >= 500`, `path==/index`, `method != "GET"`; nil when it is not of that form.
    init?(_ text: String) {
        // The first operator in the text; two-character operators before their one-character prefixes.
        var found: (range: Range<String.Index>, op: Operator)?
        var index = text.startIndex
        search: while index < text.endIndex {
            for op in Operator.allCases where text[index...].hasPrefix(op.rawValue) {
                found = (index..<text.index(index, offsetBy: op.rawValue.count), op)
                break search
            }
            index = text.index(after: index)
        }
        guard let found else { return nil }
        let field = text[..<found.range.lowerBound].trimmingBlanks()
        var value = text[found.range.upperBound...].trimmingBlanks()
        guard !field.isEmpty, field.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else { return nil }
        if value.count >= 2, let first = value.first, first == "'" || first == "\"", value.last == first {
            value = String(value.dropFirst().dropLast())
        } else if value.isEmpty {
            return nil
        }
        self.field = field
        self.op = found.op
        self.value = value
    }

    /// Whether `event` has the field and its value satisfies the condition.
    func holds(for event: CTFEvent) -> Bool {
        guard let actual = event[field: field] else { return false }
        let order: Int?
        switch actual {
        case .unsigned(let v): order = Self.compare(number: .unsigned(v), value)
        case .signed(let v): order = Self.compare(number: .signed(v), value)
        case .float32(let v): order = Self.compare(number: .float(Double(v)), value)
        case .float64(let v): order = Self.compare(number: .float(v), value)
        case .string(let text): order = text == value ? 0 : (text < value ? -1 : 1)
        case .enumeration(let label, let raw, let isSigned):
            if let number = Self.compare(number: isSigned ? .signed(raw) : .unsigned(UInt64(bitPattern: raw)), value) {
                order = number
            } else if let label {
                order = label == value ? 0 : (label < value ? -1 : 1)
            } else {
                order = nil
            }
        case .bool(let v):
            // `flag == 1` and `flag == true` both hold for a true flag.
            let text = v ? "true" : "false"
            order = Self.compare(number: .unsigned(v ? 1 : 0), value) ?? (text == value ? 0 : (text < value ? -1 : 1))
        case .bytes: order = nil
        }
        guard let order else { return false }
        switch op {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .greater: return order > 0
        case .greaterOrEqual: return order >= 0
        }
    }

    enum Number {
        case unsigned(UInt64), signed(Int64), float(Double)
    }

    /// -1, 0 or 1 comparing `number` with `text` read as a number (exactly for integers), nil when
    /// `text` is not a number.
    static func compare(number: Number, _ text: String) -> Int? {
        func sign<T: Comparable>(_ a: T, _ b: T) -> Int { a == b ? 0 : (a < b ? -1 : 1) }
        if let integer = Int64(text) {
            switch number {
            case .signed(let v): return sign(v, integer)
            case .unsigned(let v): return integer < 0 ? 1 : sign(v, UInt64(integer))
            case .float(let v): return v.isNaN ? nil : sign(v, Double(integer))
            }
        }
        if let integer = UInt64(text) {
            switch number {
            case .signed: return -1    // every Int64 is below an integer beyond Int64.max
            case .unsigned(let v): return sign(v, integer)
            case .float(let v): return v.isNaN ? nil : sign(v, Double(integer))
            }
        }
        guard let double = Double(text), !double.isNaN else { return nil }
        switch number {
        case .signed(let v): return sign(Double(v), double)
        case .unsigned(let v): return sign(Double(v), double)
        case .float(let v): return v.isNaN ? nil : sign(v, double)
        }
    }
}

/// A --from/--to time.
enum TimeBound: Equatable {
    /// Realtime nanoseconds since the epoch.
    case absolute(Int64)
    /// Nanoseconds since midnight UTC of the day of the first record.
    case timeOfDay(Int64)
    /// Nanoseconds after the first record.
    case relative(Int64)

    init?(_ text: String) {
        if text.hasPrefix("+") {
            guard let ns = Self.nanoseconds(seconds: text.dropFirst()) else { return nil }
            self = .relative(ns)
            return
        }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "T" })
        if parts.count == 2 {
            let date = parts[0].split(separator: "-", omittingEmptySubsequences: false)
            guard date.count == 3, date[0].count == 4, date[1].count == 2, date[2].count == 2,
                  let year = Int64(date[0]), let month = Int64(date[1]), let day = Int64(date[2]),
                  (1...12).contains(month), (1...31).contains(day),
                  let time = Self.timeOfDay(parts[1]) else { return nil }
            self = .absolute(CivilDate.daysSinceEpoch(year: year, month: month, day: day) * 86_400 * 1_000_000_000 + time)
        } else if parts.count == 1, let time = Self.timeOfDay(parts[0]) {
            self = .timeOfDay(time)
        } else {
            return nil
        }
    }

    /// Realtime nanoseconds of this bound (the instant written) for a trace whose first record is
    /// at `origin`.
    func resolve(origin: Int64) -> Int64 {
        let day: Int64 = 86_400 * 1_000_000_000
        switch self {
        case .absolute(let ns): return ns
        case .relative(let ns): return origin &+ ns
        case .timeOfDay(let ns):
            let midnight = origin - ((origin % day) + day) % day
            return midnight + ns
        }
    }

    /// `HH:MM:SS[.fraction]` as nanoseconds since midnight.
    static func timeOfDay(_ text: Substring) -> Int64? {
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0].count == 2, fields[1].count == 2,
              let hours = Int64(fields[0]), let minutes = Int64(fields[1]), (0..<24).contains(hours), (0..<60).contains(minutes),
              fields[0].allSatisfy(\.isNumber), fields[1].allSatisfy(\.isNumber),
              let seconds = nanoseconds(seconds: fields[2]), seconds < 60 * 1_000_000_000 else { return nil }
        return (hours * 3600 + minutes * 60) * 1_000_000_000 + seconds
    }

    /// `S[.fraction]` (at most 9 decimals) as nanoseconds.
    static func nanoseconds(seconds text: Substring) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts[0].count <= 9, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
              let whole = Int64(parts[0]) else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 9, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                  let digits = Int64(parts[1]) else { return nil }
            fraction = digits
            for _ in parts[1].count..<9 { fraction *= 10 }
        }
        return whole * 1_000_000_000 + fraction
    }
}

extension StringProtocol {
    /// The text without blanks at either end.
    func trimmingBlanks() -> String {
        var text = String(drop(while: { $0 == " " || $0 == "\t" }))
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}
