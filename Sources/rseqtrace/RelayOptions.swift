import ArgumentParser
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport

/// The relay daemon options `record` and `attach` share.
struct RelayOptions: ParsableArguments {
    @Option(name: .customLong("relayd"), help: ArgumentHelp(
        "Also (or, without --output, only) send the trace to the LTTng relay daemon at URL: net://HOST[:CONTROL_PORT[:DATA_PORT]].",
        valueName: "URL"))
    var relayd: String?

    @Flag(name: .customLong("relayd-optional"), help: "When the relay daemon cannot be reached at start, write the trace locally instead of failing.")
    var relaydOptional = false

    @Option(name: .customLong("relayd-timeout-ms"), help: "Longest wait for the relay daemon to connect or to take a message (100-60000; default 5000).")
    var relaydTimeoutOption: Int?

    @Option(name: .customLong("live-timer-ms"), help: ArgumentHelp(
        "Live timer of the relay session: live viewers (babeltrace2 -i lttng-live) see events at most about twice this late; 0: a session live viewers cannot attach to (0 or 100-60000; default 1000).",
        valueName: "ms"))
    var liveTimerOption: Int?

    /// `--live-timer-ms`, 1000 when not given.
    var liveTimerMilliseconds: Int { liveTimerOption ?? 1000 }
    /// `--relayd-timeout-ms`, 5000 when not given.
    var relaydTimeoutMilliseconds: Int { relaydTimeoutOption ?? 5000 }

    func validate() throws {
        if let relayd {
            do { _ = try RelayEndpoint(parsing: relayd) } catch { throw ValidationError(error.message) }
        } else {
            // Relay settings without a relay would be ignored without a word: refuse them.
            for (given, flag) in [(relaydOptional, "--relayd-optional"), (liveTimerOption != nil, "--live-timer-ms"),
                                  (relaydTimeoutOption != nil, "--relayd-timeout-ms")] where given {
                throw ValidationError("\(flag) needs --relayd URL")
            }
        }
        guard liveTimerMilliseconds == 0 || (100...60_000).contains(liveTimerMilliseconds) else {
            throw ValidationError("--live-timer-ms must be 0 (not live) or between 100 and 60000, got \(liveTimerMilliseconds)")
        }
        guard (100...60_000).contains(relaydTimeoutMilliseconds) else {
            throw ValidationError("--relayd-timeout-ms must be between 100 and 60000, got \(relaydTimeoutMilliseconds)")
        }
    }

    /// A relay session named `sessionName` for a trace of `ringCount` CPU rings, or nil without
    /// --relayd. A live session's URL for live viewers is printed on stderr. With --relayd-optional, a relay that cannot be reached is reported on stderr
    /// (naming `fallback`, where the trace goes instead) and gives nil.
    /// - Throws: the connection's error, saying how to record locally instead.
    func connect(sessionName: String, ringCount: Int, fallback: String) throws(TraceError) -> RelayTraceSink? {
        guard let relayd else { return nil }
        let endpoint = try RelayEndpoint(parsing: relayd)
        do throws(TraceError) {
            let relay = try RelayTraceSink(endpoint: endpoint, sessionName: sessionName, hostname: TraceRecorder.hostname(),
                                      ringCount: ringCount, liveTimer: .milliseconds(liveTimerMilliseconds), timeout: .milliseconds(relaydTimeoutMilliseconds))
            if let url = relay.liveURL() {
                printError("rseqtrace: live viewing: rseqtrace view --live \(url) (or babeltrace2 -i lttng-live; \(RelayTraceSink.defaultLivePort) is lttng-relayd's default live port)")
            }
            return relay
        } catch {
            guard relaydOptional else {
                throw TraceError(error.code, "\(error); use --relayd-optional to record locally when the relay cannot be reached")
            }
            printError("rseqtrace: \(error); recording to \(fallback) instead (--relayd-optional)")
            return nil
        }
    }

    /// The longest pause between drain rounds (milliseconds): `intervalMilliseconds`, or the live
    /// timer when a live relay session is recorded (`live`) and its timer is shorter, since its
    /// viewers wait for what no round has read yet.
    func roundIntervalMilliseconds(_ intervalMilliseconds: Int, live: Bool) -> Int {
        live && liveTimerMilliseconds > 0 ? min(intervalMilliseconds, liveTimerMilliseconds) : intervalMilliseconds
    }
}
