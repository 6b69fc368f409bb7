import Testing
#if canImport(Glibc)
import Glibc
#endif
import RseqTrace
import RseqTraceSupport

@Suite("Support: clock, sleep and child processes")
struct SupportTests {
    @Test("timespec(nanoseconds:) keeps tv_nsec below one second",
          arguments: [(UInt64(0), 0, 0), (999_999_999, 0, 999_999_999), (1_000_000_000, 1, 0),
                      (1_500_000_000, 1, 500_000_000), (10_000_000_001, 10, 1)])
    func timespecIsNormalised(nanoseconds: UInt64, seconds: Int, rest: Int) {
        let value = SystemClock.timespec(nanoseconds: nanoseconds)
        #expect(value.tv_sec == seconds && value.tv_nsec == rest)
    }

    @Test("sleeping 1.1 s sleeps (wall time passes, the thread's CPU time does not)", .timeLimit(.minutes(1)))
    func longSleepSleeps() {
        let wallStart = SystemClock.monotonic()
        let cpuStart = SystemClock.threadCPUTime()
        SystemClock.sleep(milliseconds: 1100)
        let wall = SystemClock.monotonic() - wallStart
        let cpu = SystemClock.threadCPUTime() - cpuStart
        #expect(wall >= 1_100_000_000, "slept \(wall) ns")
        #expect(cpu < 200_000_000, "the sleeping thread used \(cpu) ns of CPU")
    }

    @Test("waitForExit wakes when the child exits, long before its timeout", .timeLimit(.minutes(1)))
    func waitForExitWakesAtOnce() throws {
        let child = try ChildProcess.spawn(["/bin/sh", "-c", "sleep 0.2; exit 3"], stdout: .null, stderr: .null)
        let start = SystemClock.monotonic()
        let ended = child.waitForExit(milliseconds: 20_000)
        let waited = SystemClock.monotonic() - start
        #expect(ended == .exited(3))
        #expect(waited < 5_000_000_000, "waited \(waited) ns")
        #expect(child.waitForExit(milliseconds: 0) == .exited(3), "the status is kept once reaped")
    }

    @Test("a running child is reported as running after a short wait, and a signal ends it as signaled")
    func signaledChild() throws {
        let child = try ChildProcess.spawn(["/bin/sleep", "30"], stdout: .null, stderr: .null)
        #expect(child.waitForExit(milliseconds: 50) == nil)
        child.signal(SIGTERM)
        let outcome = child.wait(timeout: .seconds(20))
        #expect(outcome.signal == SIGTERM && outcome.exitCode == nil && outcome.status == 128 + SIGTERM, "\(outcome)")
    }

    @Test("run captures both outputs, passes the environment, and kills a child that overruns its timeout")
    func runCapturesAndTimesOut() throws {
        let environment = ProcessEnvironment.current(setting: ["RSEQTRACE_SUPPORT_TEST": "value 1"])
        let run = try ChildProcess.run(["/bin/sh", "-c", "echo out $RSEQTRACE_SUPPORT_TEST; echo err >&2; exit 4"],
                                       environment: environment, timeout: .seconds(30))
        #expect(run.exitCode == 4 && !run.timedOut, "\(run)")
        #expect(run.stdout == "out value 1\n" && run.stderr == "err\n", "\(run)")
        let slow = try ChildProcess.run(["/bin/sleep", "30"], timeout: .milliseconds(300))
        #expect(slow.timedOut && slow.signal == SIGKILL, "\(slow)")
        #expect(slow.duration < .seconds(20), "\(slow)")
    }

    @Test("a program that cannot be started is a systemCallFailed error naming it")
    func missingProgram() {
        #expect {
            _ = try ChildProcess.spawn(["/nonexistent/program"])
        } throws: { error in
            let error = error as? TraceError
            return error?.code == .systemCallFailed && error?.message.hasPrefix("cannot run /nonexistent/program") == true
                && error?.errno == .noSuchFileOrDirectory
        }
    }

    @Test("the environment helper replaces and removes variables")
    func environmentEdits() {
        let edited = ProcessEnvironment.current(removing: ["PATH"], setting: ["RSEQTRACE_SUPPORT_TEST": "1"])
        #expect(!edited.contains { $0.hasPrefix("PATH=") })
        #expect(edited.filter { $0.hasPrefix("RSEQTRACE_SUPPORT_TEST=") } == ["RSEQTRACE_SUPPORT_TEST=1"])
    }
}
