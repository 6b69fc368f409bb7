import Testing
#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
@testable import RseqTrace
import RseqTraceConsumer

/// The calling thread's allowed CPUs as the kernel reports them (`Cpus_allowed_list` of
/// /proc/thread-self/status), e.g. "0-1".
private func allowedCPUList() -> String? {
    guard let status = SystemInfo.readSmallFile("/proc/thread-self/status", limit: 16384) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
        return String(line.dropFirst("Cpus_allowed_list:".count).trimmingASCIIWhitespace())
    }
    return nil
}

/// The CPU the kernel last ran this thread on: field 39 (`processor`) of /proc/thread-self/stat.
private func kernelReportedCPU() -> Int? {
    guard let stat = SystemInfo.readSmallFile("/proc/thread-self/stat"),
          let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // fields[0] is field 3 (state); field 39 is fields[36].
    return fields.count > 36 ? Int(fields[36]) : nil
}

private struct BodyFailure: Error, Equatable {
    var code: Int
}

@Suite("CPUPinner: running a batch on a given CPU")
struct CPUPinnerUnitTests {
    static var onlineCPUs: [Int] { (0..<64).filter { CPUPinner.isAllowed(cpu: $0) } }

    @Test("run(onCPU:) runs the body on that CPU and restores the previous affinity", arguments: [0, 1])
    func runsOnTheCPUAndRestoresAffinity(cpu: Int) throws {
        try #require(CPUPinner.isAllowed(cpu: cpu), "CPU \(cpu) is not available to this test")
        // The rseq area is located by the process-wide probe: run it before reading cpu_id directly.
        let usesRseq = RseqRuntime.mode.usesRseq
        let before = try #require(allowedCPUList())
        let (getcpu, kernelCPU, rseqCPU, listInside) = try CPUPinner.run(onCPU: cpu) {
            (rseqtrace_getcpu(), kernelReportedCPU(), rseqtrace_current_cpu_id(), allowedCPUList())
        }
        #expect(getcpu == Int32(cpu))           // sched_getcpu()
        #expect(kernelCPU == cpu)
        if usesRseq { #expect(rseqCPU == UInt32(cpu)) }
        #expect(listInside == "\(cpu)")
        #expect(allowedCPUList() == before)
    }

    @Test("realtime: false pins without touching the scheduling policy; the default restores it afterwards")
    func schedulingPolicyIsRestored() throws {
        let policyBefore = sched_getscheduler(0)
        let inside = try CPUPinner.run(onCPU: 0, realtime: false) { sched_getscheduler(0) }
        #expect(inside == policyBefore)
        #expect(sched_getscheduler(0) == policyBefore)
        let raisedInside = try CPUPinner.run(onCPU: 0) { sched_getscheduler(0) }
        // SCHED_FIFO when permitted (root, CAP_SYS_NICE), unchanged otherwise; restored either way.
        #expect(raisedInside == SCHED_FIFO || raisedInside == policyBefore)
        #expect(sched_getscheduler(0) == policyBefore)
    }

    @Test("nested pinning restores the outer pin, then the original affinity", .enabled(if: CPUPinner.isAllowed(cpu: 1)))
    func nestedPinning() throws {
        let before = try #require(allowedCPUList())
        let observed = try CPUPinner.run(onCPU: 0, realtime: false) { () throws(CPUPinner.PinnedError<Never>) -> [String?] in
            let inner = try CPUPinner.run(onCPU: 1, realtime: false) { allowedCPUList() }
            return [inner, allowedCPUList(), "\(rseqtrace_getcpu())"]
        }
        #expect(observed == ["1", "0", "0"])
        #expect(allowedCPUList() == before)
    }

    @Test("an error thrown by the body comes back as .body and the affinity is still restored")
    func bodyErrorIsForwarded() throws {
        let before = try #require(allowedCPUList())
        do {
            try CPUPinner.run(onCPU: 0) { () throws(BodyFailure) in throw BodyFailure(code: 42) }
            Issue.record("no error")
        } catch {
            switch error {
            case .body(let failure): #expect(failure == BodyFailure(code: 42))
            case .pin(let pin): Issue.record("unexpected pin error \(pin)")
            }
        }
        #expect(allowedCPUList() == before)
    }

    @Test("pinning to a CPU the machine does not have throws .pin with EINVAL and an explanation; the body never runs",
          arguments: [4095, 1023, 1024, -1, Int(Int32.max)])
    func impossibleCPU(cpu: Int) throws {
        let before = try #require(allowedCPUList())
        var ran = false
        do {
            try CPUPinner.run(onCPU: cpu) { ran = true }
            Issue.record("pinning to CPU \(cpu) succeeded")
        } catch {
            switch error {
            case .pin(let pin):
                #expect(pin.cpu == cpu)
                #expect(pin.errno.rawValue == EINVAL)
                #expect(pin.description == """
                    CPU \(cpu) is offline or outside this thread's allowed CPUs (taskset/cpuset): no producer in the \
                    same cpuset can run there either; a consumer in a different cpuset than the producers cannot act \
                    on that CPU's ring
                    """)
                #expect(error.description == pin.description)
            case .body:
                Issue.record("unexpected body error")
            }
        }
        #expect(ran == false)
        #expect(allowedCPUList() == before)
    }

    @Test("isAllowed(cpu:) is true exactly for the CPUs in this thread's allowed list")
    func isAllowedMatchesTheKernel() throws {
        let list = try #require(allowedCPUList())
        let upper = try #require(SystemInfo.cpuListUpperBound(list))
        #expect(CPUPinner.isAllowed(cpu: 0) == list.hasPrefix("0"))
        #expect(CPUPinner.isAllowed(cpu: upper - 1))
        #expect(CPUPinner.isAllowed(cpu: upper) == false)
        #expect(CPUPinner.isAllowed(cpu: 4095) == false)
        #expect(CPUPinner.isAllowed(cpu: -1) == false)
        #expect(Self.onlineCPUs.count >= 1)
    }

    @Test("the rseq cpu_id seen by the producer follows the pin")
    func producerWritesToThePinnedCPUsRing() throws {
        for cpu in Self.onlineCPUs.prefix(2) {
            let fixture = try UnitTraceFixture("pin\(cpu)")
            try UnitTrace.onCPU(cpu) { () throws(TraceError) in
                for seq in UInt64(0)..<10 { #expect(fixture.producer.write(eventID: 1, value: seq)) }
            }
            let drained = try fixture.drain(quiescent: true)
            #expect(drained.count == 10)
            if RseqRuntime.mode.usesRseq {
                #expect(drained.allSatisfy { $0.ring == cpu }, "records on rings \(Set(drained.map(\.ring)))")
            }
        }
    }
}
