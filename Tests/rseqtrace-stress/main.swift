#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport
import RseqTraceTestPayloads

// rseqtrace-stress: the stress matrix over the public API (cells: StressMatrix in
// RseqTraceTestPayloads). Each cell runs in its own process, because the producer mode is chosen
// once per process.
//
//   matrix [--light] [--seconds S] [--only TEXT]   runs the cells, one line per cell, then a summary;
//                                                  exit 1 when a cell FAILs (XFAIL/XPASS do not)
//   cell NAME [--seconds S] [--tamper payload|timestamp|duplicate|count] [--seed N]
//                                                  runs one cell in this process (mode: environment)
//   produce NAME --buffer BUFFER [--seconds S] [--seed N]
//                                                  the producer process of a cross-process cell
//   list                                           the cell names

let usage = """
    usage: rseqtrace-stress matrix [--light] [--seconds S] [--only TEXT]
           rseqtrace-stress cell NAME [--seconds S] [--tamper payload|timestamp|duplicate|count] [--seed N]
           rseqtrace-stress produce NAME --buffer BUFFER [--seconds S] [--seed N]
           rseqtrace-stress list
    """

#if DEBUG
let defaultSeconds = StressMatrix.debugSeconds
#else
let defaultSeconds = StressMatrix.releaseSeconds
#endif

/// This executable's path (for the child processes).
let selfPath: String = {
    var buffer = [CChar](repeating: 0, count: 4096)
    // SAFETY: readlink writes at most count - 1 bytes into the live local buffer.
    let length = unsafe buffer.withUnsafeMutableBufferPointer { unsafe readlink("/proc/self/exe", $0.baseAddress!, $0.count - 1) }
    guard length > 0 else { return CommandLine.arguments[0] }
    return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}()

func fail(_ message: String) -> Never {
    printError("error: \(message)\n\(usage)")
    exit(2)
}

/// `--name value` options and `--flag` switches after the subcommand's positional arguments.
func parseOptions(_ arguments: ArraySlice<String>, flags: Set<String>) -> (positional: [String], values: [String: String], flags: Set<String>) {
    var positional: [String] = []
    var values: [String: String] = [:]
    var seen: Set<String> = []
    var rest = arguments
    while let argument = rest.popFirst() {
        if argument.hasPrefix("--") {
            let name = String(argument.dropFirst(2))
            if flags.contains(name) {
                seen.insert(name)
            } else {
                guard let value = rest.popFirst() else { fail("--\(name) needs a value") }
                values[name] = value
            }
        } else {
            positional.append(argument)
        }
    }
    return (positional, values, seen)
}

func seconds(_ values: [String: String]) -> Double {
    guard let text = values["seconds"] else { return defaultSeconds }
    guard let value = Double(text), value > 0, value <= 60 else { fail("--seconds must be in (0, 60], got '\(text)'") }
    return value
}

func seed(_ values: [String: String]) -> UInt64 {
    guard let text = values["seed"] else { return UInt64(getpid()) }
    guard let value = UInt64(text) else { fail("--seed must be an unsigned integer, got '\(text)'") }
    return value
}

func namedCell(_ positional: [String]) -> StressCell {
    guard positional.count == 1 else { fail("expected one cell name") }
    guard let cell = StressMatrix.cell(named: positional[0]) else {
        fail("no cell named '\(positional[0])' (see `rseqtrace-stress list`)")
    }
    return cell
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail("no command") }
let rest = arguments.dropFirst(2)
switch arguments[1] {
case "list":
    for cell in StressMatrix.allCells { print(cell.name) }
    exit(0)
case "cell":
    let options = parseOptions(rest, flags: [])
    exit(CellCommand.run(namedCell(options.positional), seconds: seconds(options.values),
                         tamper: options.values["tamper"], seed: seed(options.values)))
case "produce":
    let options = parseOptions(rest, flags: [])
    guard let buffer = options.values["buffer"] else { fail("produce needs --buffer") }
    exit(ProduceCommand.run(namedCell(options.positional), bufferName: buffer, seconds: seconds(options.values),
                            seed: seed(options.values)))
case "matrix":
    let options = parseOptions(rest, flags: ["light"])
    var cells = options.flags.contains("light") ? StressMatrix.lightCells : StressMatrix.allCells
    if let only = options.values["only"] { cells = cells.filter { $0.name.contains(only) } }
    let duration = seconds(options.values)
    let start = ContinuousClock.now
    var counts: [CellVerdict: Int] = [:]
    print("matrix: \(cells.count) cells, \(duration) s of production each; known-failing modes: \(StressMatrix.knownFailingModes.map(\.rawValue).sorted().joined(separator: ","))")
    for cell in cells {
        let outcome = StressCellRunner.run(cell, executable: selfPath, seconds: duration)
        counts[outcome.verdict, default: 0] += 1
        print(outcome.line)
        if outcome.verdict == .fail, !outcome.diagnostics.isEmpty {
            print(outcome.diagnostics.split(separator: "\n").prefix(5).map { "      | \($0)" }.joined(separator: "\n"))
        }
        // fflush(NULL) flushes every C stream, so that progress shows line by line.
        fflush(nil)
    }
    let (wall, _) = (ContinuousClock.now - start).components
    print("matrix: cells=\(cells.count) pass=\(counts[.pass] ?? 0) fail=\(counts[.fail] ?? 0) xfail=\(counts[.expectedFailure] ?? 0) xpass=\(counts[.unexpectedPass] ?? 0) seconds=\(wall)")
    exit((counts[.fail] ?? 0) > 0 ? 1 : 0)
case "help", "--help", "-h":
    print(usage)
    exit(0)
default:
    fail("unknown command '\(arguments[1])'")
}
