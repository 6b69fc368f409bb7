import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import SystemPackage

/// Memory in proportion to what is written: rings get pages when producers first open their
/// sub-buffers (docs/BufferProtocol.md §1, "Population").
@Suite("Buffer memory: populated as written, never SIGBUS", .serialized)
struct BufferMemoryTests {
    /// A buffer in a fresh anonymous memory file, and that file (for its allocated size).
    static func makeBuffer(cpus: Int, ringSize: Int, subbufferSize: Int = 64 << 10,
                           mode: BufferMode = .discard) throws -> (SharedTraceBuffer, FileDescriptor) {
        let file = try MemoryFile.create(label: "rseqtrace-memory-test")
        let buffer = try SharedTraceBuffer.create(
            TraceConfiguration(name: "memory-test", ringSize: ringSize, subbufferSize: subbufferSize, mode: mode,
                               cpuRingCount: cpus), in: file)
        return (buffer, file)
    }

    @Test("a buffer for 384 CPUs with nothing written stays under 1 MiB, also after a drain round")
    func manyPossibleCPUs() throws {
        let (buffer, file) = try Self.makeBuffer(cpus: 384, ringSize: 16 << 20)
        defer { try? file.close() }
        #expect(buffer.populatesLazily)
        #expect(buffer.layout.totalSize > 6_000_000_000)
        let created = try #require(SystemInfo.allocatedBytes(of: file))
        #expect(created < 1 << 20, "\(created) bytes resident after creation")
        let drainer = TraceDrainer(buffer: buffer)
        _ = try drainer.drainOnce(quiescent: true) { _ in }
        let drained = try #require(SystemInfo.allocatedBytes(of: file))
        #expect(drained < 1 << 20, "\(drained) bytes resident after a drain round")
        #expect(drainer.totals.recorded == 0)
    }

    @Test("writing N bytes into a ring makes about N bytes resident, not the ring size", arguments: [BufferMode.discard, .overwrite])
    func growsWithWhatIsWritten(mode: BufferMode) throws {
        let (buffer, file) = try Self.makeBuffer(cpus: 2, ringSize: 16 << 20, subbufferSize: 64 << 10, mode: mode)
        defer { try? file.close() }
        let before = try #require(SystemInfo.allocatedBytes(of: file))
        let producer = buffer.makeProducer()
        // 20 000 records of 48 bytes (32-byte payload): about 960 KB, from one thread (one or two rings).
        var written = 0
        let payload = [UInt8](repeating: 7, count: 32)
        for _ in 0..<20_000 {
            // SAFETY: the array's bytes are readable for the call.
            if unsafe payload.withUnsafeBytes({ unsafe producer.write(eventID: 1, payload: $0) }) { written += 48 }
        }
        #expect(written == 20_000 * 48)
        let after = try #require(SystemInfo.allocatedBytes(of: file))
        let grown = after - before
        // Each ring written to adds its control block and at most one partly filled sub-buffer.
        let slack = 2 * (TraceLayout.controlSize + (64 << 10)) + (64 << 10)
        #expect(grown >= written, "grew \(grown) bytes for \(written) written")
        #expect(grown <= written + slack, "grew \(grown) bytes for \(written) written (ring size \(16 << 20))")
        let drainer = TraceDrainer(buffer: buffer)
        var records = 0
        _ = try drainer.drainOnce(quiescent: true) { _ in records += 1 }
        #expect(records == 20_000)
        #expect(!buffer.memoryWasExhausted)
    }

    @Test("record -- sleep with default options holds at most 1 MiB of buffer, also with 384 possible CPUs",
          .enabled(if: HelperProcess.isExecutable(HelperProcess.rseqtracePath), "the rseqtrace executable is built next to the tests"),
          arguments: [nil, "384"] as [String?])
    func recordIdleProgram(simulatedCPUs: String?) throws {
        let output = CTFEndToEndTests.temporaryDirectory("memory-record-\(simulatedCPUs ?? "machine")")
        CTFEndToEndTests.removeTree(output)
        defer { CTFEndToEndTests.removeTree(output) }
        var setting: [String: String] = [:]
        if let simulatedCPUs { setting[SystemInfo.simulatedCPUsVariable] = simulatedCPUs }
        let run = try HelperProcess.runRseqtrace(["record", "--output", output, "--", "/bin/sleep", "0.2"], setting: setting,
                                                 timeout: .seconds(60))
        #expect(run.exitCode == 0, "\(run)")
        let memory = try #require(run.fields(of: "memory: "), "\(run)")
        let size = try #require(memory["buffer_bytes"].flatMap { Int($0) })
        let resident = try #require(memory["resident_bytes"].flatMap { Int($0) })
        #expect(resident > 0 && resident <= 1 << 20, "\(run)")
        if simulatedCPUs != nil { #expect(size > 6_000_000_000, "385 rings of 16 MiB: \(run)") }
        #expect(memory["exhausted"] == nil)
    }

    @Test("a tmpfs too small for the rings: producers drop and count, the flag is set, nothing faults",
          .enabled(if: geteuid() == 0, "mounting a small tmpfs needs root"))
    func exhaustedMemoryDropsAndCounts() throws {
        let directory = CTFEndToEndTests.temporaryDirectory("small-tmpfs")
        CTFEndToEndTests.removeTree(directory)
        // SAFETY: mkdir takes the path by value.
        #expect(unsafe mkdir(directory, 0o700) == 0)
        defer {
            // SAFETY: the path is passed by value.
            _ = unsafe umount2(directory, 2)   // MNT_DETACH
            // SAFETY: as above.
            _ = unsafe rmdir(directory)
        }
        // SAFETY: the strings are passed as NUL-terminated copies valid for the call.
        let mounted = unsafe "size=256k".withCString { unsafe mount("tmpfs", directory, "tmpfs", 0, $0) }
        try #require(mounted == 0, "cannot mount a tmpfs at \(directory) (errno \(errno))")
        let file = try FileDescriptor.open(FilePath(directory + "/trace"), .readWrite,
                                           options: [.create, .exclusiveCreate, .closeOnExec], permissions: [.ownerReadWrite])
        defer { try? file.close() }
        // The header, registry, lines and counter names (132 KiB) fit; one ring's control block and seven of its
        // sub-buffers fill the rest, well before the ring (256 KiB) is full.
        let buffer = try SharedTraceBuffer.create(
            TraceConfiguration(name: "small-tmpfs", ringSize: 256 << 10, subbufferSize: 16 << 10, cpuRingCount: 2), in: file)
        let producer = buffer.makeProducer()
        var accepted = 0
        let payload = [UInt8](repeating: 1, count: 64)
        for _ in 0..<20_000 {
            // SAFETY: the array's bytes are readable for the call.
            if unsafe payload.withUnsafeBytes({ unsafe producer.write(eventID: 1, payload: $0) }) { accepted += 1 }
        }
        #expect(buffer.memoryWasExhausted)
        let drainer = TraceDrainer(buffer: buffer)
        var records = 0
        _ = try drainer.drainOnce(quiescent: true) { _ in records += 1 }
        let totals = drainer.totals
        #expect(records == accepted)
        #expect(totals.recorded + totals.dropped == 20_000, "\(totals)")
        #expect(totals.dropped > 0)
    }
}
