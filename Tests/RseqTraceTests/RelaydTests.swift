import Glibc
import RseqTrace
import RseqTraceFormats
import RseqTraceSupport
import Testing

/// A private `lttng-relayd` on loopback: its own output directory and free ports, started for one
/// test and stopped (or killed) by its PID.
final class RelayDaemon {
    static let path = "/usr/bin/lttng-relayd"
    static var isInstalled: Bool { HelperProcess.isExecutable(path) }

    let output: String
    let controlPort: UInt16
    let dataPort: UInt16
    let livePort: UInt16
    private let process: ChildProcess
    private var stopped = false

    /// `net://127.0.0.1:CONTROL:DATA`.
    var url: String { "net://127.0.0.1:\(controlPort):\(dataPort)" }
    var pid: pid_t { process.pid }

    init(tag: String) throws {
        output = CTFEndToEndTests.temporaryDirectory("relayd-\(tag)")
        CTFEndToEndTests.removeTree(output)
        let ports = try RelayDaemon.freePorts(3)
        (controlPort, dataPort, livePort) = (ports[0], ports[1], ports[2])
        process = try ChildProcess.spawn(
            [RelayDaemon.path, "-o", output, "-C", "tcp://127.0.0.1:\(controlPort)", "-D", "tcp://127.0.0.1:\(dataPort)",
             "-L", "tcp://127.0.0.1:\(livePort)"],
            environment: HelperProcess.childEnvironment(), stdin: .null, stdout: .null, stderr: .null)
        // Ready once its control port accepts a connection (at most 10 s).
        for attempt in 0..<200 {
            do throws(TraceError) {
                let socket = try RelaySocket(host: "127.0.0.1", port: controlPort, role: "readiness check", timeout: .seconds(1))
                socket.close()
                return
            } catch {
                if process.reap(blocking: false) != nil || attempt == 199 {
                    kill()
                    throw TraceError(.systemCallFailed, "lttng-relayd did not start listening on 127.0.0.1:\(controlPort): \(error)")
                }
                SystemClock.sleep(milliseconds: 50)
            }
        }
    }

    deinit {
        stop()
        CTFEndToEndTests.removeTree(output)
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s) and waits for it.
    func stop() {
        guard !stopped else { return }
        stopped = true
        process.signal(SIGTERM)
        if process.waitForExit(milliseconds: 10_000) == nil {
            process.signal(SIGKILL)
            _ = process.waitForExit(milliseconds: 10_000)
        }
    }

    /// Kills it (SIGKILL) and waits for it.
    func kill() {
        guard !stopped else { return }
        stopped = true
        process.signal(SIGKILL)
        _ = process.waitForExit(milliseconds: 10_000)
    }

    /// `count` distinct TCP ports free on 127.0.0.1 now (bound to port 0, then released).
    static func freePorts(_ count: Int) throws -> [UInt16] {
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        var ports: [UInt16] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw TraceError(.systemCallFailed, "socket") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            // SAFETY: bind and getsockname read and write `address` (its size given) during the call.
            let bound = unsafe withUnsafeMutablePointer(to: &address) { pointer in
                // SAFETY: a sockaddr_in viewed as the sockaddr it begins with, for the two calls.
                unsafe pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            guard bound else { throw TraceError(.systemCallFailed, "cannot bind a loopback port") }
            ports.append(UInt16(bigEndian: address.sin_port))
        }
        return ports
    }

    /// The trace directory of the session `record` reported (`relay: ... as HOST/SESSION-DATE ...`).
    func sessionDirectory(_ run: ChildProcess.Outcome) -> String? {
        guard let line = run.lastLine(startingWith: "relay: ") else { return nil }
        let words = line.split(separator: " ")
        guard let at = words.firstIndex(of: "as"), at + 1 < words.count else { return nil }
        return output + "/" + words[at + 1]
    }
}

/// What babeltrace2 reads in a trace: event lines and the discarded events it reports.
struct BabeltraceCount: Equatable, CustomStringConvertible {
    var events: Int
    var discarded: Int
    var description: String { "events=\(events) discarded=\(discarded)" }

    init(_ directory: String) throws {
        let read = try HelperProcess.run(CTFEndToEndTests.babeltrace, [directory], environment: HelperProcess.childEnvironment(),
                                         timeout: .seconds(120))
        #expect(read.exitCode == 0, "babeltrace2 \(directory): \(read.stderr)")
        events = read.stdoutLines.count
        discarded = 0
        for line in read.stderr.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard line.hasPrefix("WARNING: Tracer discarded "), words.count > 4, let count = Int(words[3]) else {
                Issue.record("unexpected babeltrace2 message on \(directory): \(line)")
                continue
            }
            discarded += count
        }
    }
}

@Suite("record --relayd and attach --relayd: traces sent to a stock lttng-relayd on loopback",
       .serialized,
       .enabled(if: RelayDaemon.isInstalled, "lttng-relayd is not installed (apt-get install lttng-tools)"),
       .enabled(if: HelperProcess.isExecutable(CTFEndToEndTests.babeltrace), "babeltrace2 is not installed"),
       .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"))
struct RelaydTests {
    static var example: String { HelperProcess.buildDirectory + "/rseqtrace-example" }

    /// The size of the file at `path`, or -1 when it does not exist.
    static func fileSize(_ path: String) -> Int {
        var info = stat()
        // SAFETY: stat writes the local struct during the call.
        return unsafe stat(path, &info) == 0 ? Int(info.st_size) : -1
    }

    @Test("the relay's copy has the same bytes, event count and discarded count as the local trace and the summary",
          .timeLimit(.minutes(3)))
    func relayCopyMatchesLocal() throws {
        let relay = try RelayDaemon(tag: "copy")
        let local = CTFEndToEndTests.temporaryDirectory("relayd-copy-local")
        CTFEndToEndTests.removeTree(local)
        defer { CTFEndToEndTests.removeTree(local) }
        // Small rings drained rarely: the run usually loses events, which both copies must report.
        // Not live: a live session's metadata on the relay only grows (a thread named after the
        // first packet is added in an env block of its own), so its bytes may differ from the
        // local metadata's.
        let run = try HelperProcess.runRseqtrace(["record", "--relayd", relay.url, "--live-timer-ms", "0", "--output", local,
                                                  "--buffer-size", "16K", "--subbuffer-size", "1K", "--interval-ms", "50",
                                                  "--", Self.example, "2", "20000"], timeout: .seconds(120))
        #expect(run.exitCode == 0, "\(run)")
        let summary = try #require(run.stdoutLines.last.flatMap(RecordSummary.init), "\(run)")
        let session = try #require(relay.sessionDirectory(run), "\(run)")
        #expect(session.contains("/rseqtrace-rseqtrace-example-"), "\(session)")
        // The relay writes the same stream and index files (the metadata too), except that it
        // creates no index file for a stream that never had a packet (a CPU no worker ran on),
        // where the local trace has one holding only its header.
        var files = ["metadata", "channel0_0", "channel0_1"]   // record returns once the relay wrote them (data pending)
        for stream in ["channel0_0", "channel0_1"] where Self.fileSize(local + "/" + stream) > 0 {
            files.append("index/\(stream).idx")
        }
        relay.stop()
        let relayed = try BabeltraceCount(session)
        let written = try BabeltraceCount(local)
        #expect(relayed == written)
        #expect(written.events == summary.number("recorded"), "\(run)")
        #expect(written.discarded == summary.number("lost"), "\(run)")
        let stream = HelperProcess.isExecutable("/usr/bin/cmp") ? "/usr/bin/cmp" : "/bin/cmp"
        for file in files {
            let compare = try HelperProcess.run(stream, [local + "/" + file, session + "/" + file],
                                                environment: HelperProcess.childEnvironment(), timeout: .seconds(30))
            #expect(compare.exitCode == 0, "\(file): \(compare)")
        }
    }

    @Test("--relayd alone writes no local trace; the relay's copy holds every event", .timeLimit(.minutes(2)))
    func relayOnly() throws {
        let relay = try RelayDaemon(tag: "only")
        let workdir = CTFEndToEndTests.temporaryDirectory("relayd-only-cwd")
        CTFEndToEndTests.removeTree(workdir)
        defer { CTFEndToEndTests.removeTree(workdir) }
        // SAFETY: mkdir takes the path by value.
        let made = unsafe mkdir(workdir, 0o755)
        #expect(made == 0)
        let run = try HelperProcess.run("/bin/sh", ["-c", "cd \"$1\" && exec \"$2\" record --relayd \"$3\" -- \"$4\" 2 500", "sh",
                                                    workdir, HelperProcess.rseqtracePath, relay.url, Self.example],
                                        environment: HelperProcess.environment(), timeout: .seconds(90))
        #expect(run.exitCode == 0, "\(run)")
        #expect(!run.stdout.contains("read it with"), "\(run)")
        #expect(SystemInfo.directoryEntries(workdir) == [], "no local trace is written")
        let session = try #require(relay.sessionDirectory(run), "\(run)")
        relay.stop()
        #expect(try BabeltraceCount(session) == BabeltraceCount(events: 1000, discarded: 0))
    }

    @Test("an unreachable relay is an error before the program starts; --relayd-optional records locally instead",
          .timeLimit(.minutes(2)))
    func unreachableRelay() throws {
        let port = try RelayDaemon.freePorts(2)
        let marker = CTFEndToEndTests.temporaryDirectory("relayd-unreachable-marker")
        let local = CTFEndToEndTests.temporaryDirectory("relayd-unreachable-local")
        for path in [marker, local] { CTFEndToEndTests.removeTree(path) }
        defer { for path in [marker, local] { CTFEndToEndTests.removeTree(path) } }
        let url = "net://127.0.0.1:\(port[0]):\(port[1])"
        let failed = try HelperProcess.runRseqtrace(["record", "--relayd", url, "--output", local, "--",
                                                     "/bin/sh", "-c", "touch \"$0\"", marker], timeout: .seconds(60))
        #expect(failed.exitCode == 1, "\(failed)")
        #expect(failed.stderr.contains("error: cannot connect to the relay daemon at 127.0.0.1:\(port[0]) (control port)"), "\(failed)")
        #expect(failed.stderr.contains("--relayd-optional"), "\(failed)")
        // SAFETY: access takes the path by value.
        let ran = unsafe access(marker, F_OK) == 0
        #expect(!ran, "the program must not run")
        #expect(SystemInfo.directoryEntries(local) == nil, "the output directory it created is removed")

        let optional = try HelperProcess.runRseqtrace(["record", "--relayd", url, "--relayd-optional", "--output", local, "--",
                                                       Self.example, "2", "500"], timeout: .seconds(60))
        #expect(optional.exitCode == 0, "\(optional)")
        #expect(optional.stderr.contains("recording to \(local) instead (--relayd-optional)"), "\(optional)")
        #expect(try BabeltraceCount(local) == BabeltraceCount(events: 1000, discarded: 0))
    }

    @Test("a relay killed while recording: record says so, keeps the local trace complete, and ends without hanging",
          .timeLimit(.minutes(2)))
    func relayKilledMidRun() throws {
        let relay = try RelayDaemon(tag: "killed")
        let local = CTFEndToEndTests.temporaryDirectory("relayd-killed-local")
        CTFEndToEndTests.removeTree(local)
        defer { CTFEndToEndTests.removeTree(local) }
        // The program kills the relay between two batches of events: the second batch (at least)
        // is sent to a dead relay.
        let script = "\"$0\" 2 1000 && kill -KILL \"$1\" && sleep 0.2 && \"$0\" 2 1000"
        let run = try HelperProcess.runRseqtrace(["record", "--relayd", relay.url, "--output", local, "--",
                                                  "/bin/sh", "-c", script, Self.example, "\(relay.pid)"], timeout: .seconds(90))
        #expect(run.exitCode == 0, "the local trace kept everything: \(run)")
        #expect(run.stderr.contains("error: the relay daemon at \(relay.url) was lost during the recording"), "\(run)")
        #expect(run.stderr.contains("the local trace \(local) is complete"), "\(run)")
        #expect(run.duration < .seconds(30), "no hang on the dead connection: \(run)")
        #expect(try BabeltraceCount(local) == BabeltraceCount(events: 4000, discarded: 0))
        relay.kill()
    }

    @Test("a relay killed while recording without --output: record exits with status 1 and says nothing kept the trace",
          .timeLimit(.minutes(2)))
    func relayKilledWithoutLocalCopy() throws {
        let relay = try RelayDaemon(tag: "killed-only")
        let script = "\"$0\" 2 1000 && kill -KILL \"$1\" && sleep 0.2 && \"$0\" 2 1000"
        let run = try HelperProcess.runRseqtrace(["record", "--relayd", relay.url, "--",
                                                  "/bin/sh", "-c", script, Self.example, "\(relay.pid)"], timeout: .seconds(90))
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stderr.contains("was lost during the recording"), "\(run)")
        #expect(run.stderr.contains("no local trace kept them"), "\(run)")
        let summary = try #require(run.stdoutLines.last.flatMap(RecordSummary.init), "\(run)")
        #expect(summary.number("recorded") == 4000 && summary.number("exit_status") == 0, "\(run)")
        relay.kill()
    }

    @Test("attach --relayd sends a running program's trace to the relay: its copy holds what the summary recorded",
          .timeLimit(.minutes(2)))
    func attachToRelay() throws {
        let relay = try RelayDaemon(tag: "attach")
        let target = try HelperProcess.start(Self.example, ["2", "--duration", "20", "--rate", "2000"],
                                             environment: HelperProcess.childEnvironment())
        defer {
            target.signal(SIGKILL)
            _ = target.wait(timeout: .seconds(10))
        }
        // The program is traceable once it has reached its tracepoint (at most 10 s).
        var found = false
        for _ in 0..<200 where !found {
            found = ControlClient.endpoint(of: target.pid) != nil
            if !found { SystemClock.sleep(milliseconds: 50) }
        }
        #expect(found, "the example program never opened its control socket")
        let run = try HelperProcess.runRseqtrace(["attach", "\(target.pid)", "--duration", "1", "--relayd", relay.url],
                                                 timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        let summary = try #require(run.fields(of: "summary: "), "\(run)")
        #expect(summary["processes"] == "1", "\(run)")
        let recorded = try #require(summary["recorded"].flatMap { Int($0) }, "\(run)")
        #expect(recorded > 0, "\(run)")
        // rseqtrace: process PID is sent to URL as HOST/SESSION-DATE-TIME (under the relay's output directory)
        let line = try #require(run.stderr.split(separator: "\n").first { $0.contains(" is sent to ") }, "\(run)")
        let words = line.split(separator: " ")
        let at = try #require(words.firstIndex(of: "as"))
        let session = relay.output + "/" + words[at + 1]
        #expect(session.contains("/rseqtrace-rseqtrace-example-\(target.pid)-"), "\(session)")
        #expect(!run.stdout.contains("read it with"), "no local trace without --output: \(run)")
        relay.stop()
        #expect(try BabeltraceCount(session) == BabeltraceCount(events: recorded, discarded: Int(summary["lost"] ?? "") ?? -1))
    }

    @Test("relay URLs: defaults, ports, IPv6, and clear errors")
    func endpointParsing() throws {
        #expect(try RelayEndpoint(parsing: "net://collector") == RelayEndpoint.testValue("collector", 5342, 5343))
        #expect(try RelayEndpoint(parsing: "net://10.0.0.2:6000") == RelayEndpoint.testValue("10.0.0.2", 6000, 5343))
        #expect(try RelayEndpoint(parsing: "net://h:6000:6001/") == RelayEndpoint.testValue("h", 6000, 6001))
        #expect(try RelayEndpoint(parsing: "net6://[::1]:7000") == RelayEndpoint.testValue("::1", 7000, 5343))
        #expect(try RelayEndpoint.testValue("::1", 7000, 5343).description == "net://[::1]:7000:5343")
        for bad in ["collector", "net://", "net://h:0", "net://h:1:2:3", "net://h:x", "http://h", "net://[::1"] {
            #expect(throws: TraceError.self, "\(bad)") { try RelayEndpoint(parsing: bad) }
        }
    }
}

extension RelayEndpoint {
    static func testValue(_ host: String, _ control: UInt16, _ data: UInt16) throws -> RelayEndpoint {
        var endpoint = try RelayEndpoint(parsing: "net://x")
        endpoint.host = host
        endpoint.controlPort = control
        endpoint.dataPort = data
        return endpoint
    }
}

extension BabeltraceCount {
    init(events: Int, discarded: Int) {
        self.events = events
        self.discarded = discarded
    }
}
