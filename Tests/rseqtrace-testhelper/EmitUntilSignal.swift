#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

/// A typed event that `emit-until-signal` starts emitting once it is ready: its schema is
/// registered while the recording runs.
let emitLateTracepoint = Tracepoint1<UInt64>("helper:late", fields: "n")

/// `emit-until-signal`: a traced program that runs until SIGTERM or SIGHUP (as under `rseqtrace
/// record`, attached through RSEQTRACE_BUFFER). It writes records of event 7 (payload = sequence
/// number), 64 at a time with a 1 ms pause; after `--ready-after` of them it writes its pid to
/// `--ready-file` (whole, by rename) and from then on also emits one typed `helper:late` event per
/// 64 records. `emitted` counts both. On SIGTERM or SIGHUP it prints
/// `emit-until-signal: emitted=<n> signal=<s>` and dies of that signal. With `--ignore` it
/// ignores both and runs until killed. Either way it gives up after `--time-limit` seconds.
enum EmitUntilSignalCommand {
    static let usage = "emit-until-signal --ready-file PATH [--ready-after N] [--ignore] [--time-limit SECONDS]"

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try Options(arguments, flagNames: ["ignore"], valueNames: ["ready-file", "ready-after", "time-limit"])
        let readyFile = try options.string("ready-file")
        let readyAfter = try options.int("ready-after", default: 1000, in: 0...10_000_000)
        let timeLimit = try options.int("time-limit", default: 120, in: 1...3600)
        let receiver: SignalReceiver?
        if options.has("ignore") {
            receiver = nil
            signal(SIGTERM, SIG_IGN)
            signal(SIGHUP, SIG_IGN)
        } else {
            do {
                receiver = try SignalReceiver([SIGTERM, SIGHUP])
            } catch {
                printError("error: \(error)")
                return 3
            }
        }
        guard let buffer = attachAsProducer(name: nil) else { return 3 }
        let producer = buffer.makeProducer()
        let deadline = ContinuousClock.now.advanced(by: .seconds(timeLimit))
        var emitted: UInt64 = 0
        var ready = false
        while ContinuousClock.now < deadline {
            for _ in 0..<64 {
                _ = producer.write(eventID: 7, value: emitted)
                emitted += 1
            }
            if ready {
                emitLateTracepoint.emit(emitted)
                emitted += 1
            } else if emitted >= UInt64(readyAfter) {
                ready = true
                guard writeWhole(readyFile, "\(getpid())\n") else { return 3 }
            }
            if let signal = receiver?.next() {
                // Written with write(2): the process dies of the signal next, without flushing stdio.
                var line = "emit-until-signal: emitted=\(emitted) signal=\(signal)\n"
                // SAFETY: writing the string's own UTF-8 buffer, valid for the closure.
                line.withUTF8 { bytes in _ = unsafe write(1, bytes.baseAddress, bytes.count) }
                Glibc.signal(signal, SIG_DFL)
                receiver?.unblock()
                raise(signal)
                return 1         // not reached
            }
            usleep(1000)
        }
        printError("error: no SIGTERM or SIGHUP within \(timeLimit) s")
        return 1
    }

    /// Writes `text` to `path` through a temporary file renamed over it: a reader sees all of it or nothing.
    static func writeWhole(_ path: String, _ text: String) -> Bool {
        let temporary = path + ".tmp"
        // SAFETY: fopen and fputs take their strings by value for the call; the FILE is closed below.
        guard let file = unsafe fopen(temporary, "w") else {
            printError("error: cannot create \(temporary)")
            return false
        }
        // SAFETY: as above.
        unsafe fputs(text, file)
        // SAFETY: as above.
        unsafe fclose(file)
        // SAFETY: rename takes both paths by value.
        return unsafe rename(temporary, path) == 0
    }
}
