import RseqTraceTestPayloads
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RseqTrace
import RseqTraceConsumer
import RseqTraceSupport
import SystemPackage

/// The error a throwing call produced, or nil.
private func openError<R>(_ body: () throws(TraceError) -> R) -> TraceError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// Writes `bytes` at `offset` of the open file `fd` (as another process scribbling on the object would).
private func pwriteAll(_ fd: Int32, offset: Int, _ bytes: [UInt8]) -> Bool {
    // SAFETY: the array's storage is readable for the duration of the closure; pwrite reads count bytes.
    unsafe bytes.withUnsafeBytes { unsafe pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) } == bytes.count
}

/// Reads `count` bytes at `offset` of the open file `fd`.
private func preadAll(_ fd: Int32, offset: Int, count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    // SAFETY: the array's storage is writable for the duration of the closure; pread writes at most count bytes.
    let read = unsafe bytes.withUnsafeMutableBytes { unsafe pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
    return read == count ? bytes : []
}


/// The header fields a mutation targets, with their widths.
private let headerFields: [(field: HeaderField, width: Int)] = [
    (HeaderField.magic, 8), (HeaderField.version, 4), (HeaderField.headerSize, 4), (HeaderField.totalSize, 8),
    (HeaderField.cpuRingCount, 4), (HeaderField.ringCount, 4), (HeaderField.ringStride, 8),
    (HeaderField.ringsOffset, 8), (HeaderField.ringSize, 8), (HeaderField.subbufferSize, 8),
    (HeaderField.controlSize, 8), (HeaderField.ringProtocol, 4), (HeaderField.bufferMode, 4),
    (HeaderField.indexing, 4), (HeaderField.state, 4), (HeaderField.creatorPID, 4), (HeaderField.creatorUID, 4),
    (HeaderField.cycleFrequency, 8), (HeaderField.cycleReference, 8), (HeaderField.monotonicReference, 8),
    (HeaderField.realtimeReference, 8), (HeaderField.bootID, 8), (HeaderField.clockSource, 8),
]

/// Bytes of the header that hold the geometry (magic up to and including controlSize) except the
/// sub-buffer size: another valid sub-buffer size describes a consistent object of the same size,
/// every other change of these bytes makes the header inconsistent.
private let geometryBytes = Array(0..<56) + Array(64..<72)

/// A value for a mutated field: an extreme, a near miss of the current value, or random bits.
private func mutatedValue(current: UInt64, width: Int, _ random: inout SeededRandom) -> UInt64 {
    let extremes: [UInt64] = [0, 1, UInt64.max, UInt64(Int.max) + 1, UInt64(Int.max), UInt64(UInt32.max),
                              UInt64(UInt32.max) + 1, 4096, 8192, 65536, 1 << 30, 1 << 31, 1 << 62]
    switch random.next() % 6 {
    case 0: return extremes[Int(random.next() % UInt64(extremes.count))]
    case 1: return current &+ 1
    case 2: return current &- 1
    case 3: return current &<< (random.next() % 4 + 1)
    case 4: return UInt64(1) &<< (random.next() % UInt64(width * 8))
    default: return random.next()
    }
}

/// Opens the object in `fd` and checks the outcome against the header as it is: refused with a
/// typed error naming the object, or accepted only when the geometry bytes are the pristine ones.
/// Returns whether it was accepted.
private func checkOpen(_ fd: Int32, pristine: [UInt8], layout: TraceLayout, context: String) -> Bool {
    do {
        let opened = try SharedTraceBuffer.open(descriptor: fd)
        let now = preadAll(fd, offset: 0, count: pristine.count)
        #expect(geometryBytes.map { now[$0] } == geometryBytes.map { pristine[$0] }, "accepted an altered geometry: \(context)")
        let subbufferSize = UnitTrace.sequence(of: Array(now[HeaderField.subbufferSize.rawValue..<HeaderField.subbufferSize.rawValue + 8]))
        #expect(opened.layout == TraceLayout(cpuRingCount: layout.cpuRingCount, ringSize: layout.ringSize,
                                             subbufferSize: Int(truncatingIfNeeded: subbufferSize)), "\(context)")
        return true
    } catch {
        #expect([.notATraceObject, .unsupportedVersion, .corrupted].contains(error.code), "\(context): \(error)")
        #expect(error.message.hasPrefix("descriptor \(fd)"), "\(context): \(error.message)")
        return false
    }
}

@Suite("HostileObject: opening foreign, damaged or scribbled trace objects never traps")
struct HostileObjectTests {
    /// A trace object in a fresh anonymous memory file (whose descriptor the caller closes).
    static func memoryObject(_ tag: String) throws -> (FileDescriptor, SharedTraceBuffer) {
        let fd = try MemoryFile.create(label: tag)
        let buffer = try SharedTraceBuffer.create(
            TraceConfiguration(name: UnitTrace.name(tag), ringSize: 8192, subbufferSize: 1024, cpuRingCount: 2), in: fd)
        return (fd, buffer)
    }

    @Test("a few thousand seeded mutations of a valid header, opened by descriptor, are refused or accepted only when consistent",
          .timeLimit(.minutes(2)))
    func fuzzHeaderByDescriptor() throws {
        let (fd, creator) = try Self.memoryObject("fuzz")
        defer { try? fd.close() }
        let pristine = preadAll(fd.rawValue, offset: 0, count: 192)
        try #require(pristine.count == 192)
        var random = SeededRandom(state: 0x5EED_0001)
        var accepted = 0, refused = 0
        for round in 0..<3000 {
            #expect(pwriteAll(fd.rawValue, offset: 0, pristine))
            var applied: [String] = []
            for _ in 0...(random.next() % 3) {
                if random.next() % 4 == 0 {
                    // A random byte anywhere in the fields, so values straddle field boundaries too.
                    let offset = Int(random.next() % 192)
                    let byte = UInt8(truncatingIfNeeded: random.next())
                    #expect(pwriteAll(fd.rawValue, offset: offset, [byte]))
                    applied.append("byte \(offset)=\(byte)")
                } else {
                    let (field, width) = headerFields[Int(random.next() % UInt64(headerFields.count))]
                    let current = UnitTrace.sequence(of: Array(pristine[field.rawValue..<field.rawValue + width]))
                    let value = mutatedValue(current: current, width: width, &random)
                    #expect(pwriteAll(fd.rawValue, offset: field.rawValue, UnitTrace.littleEndian(value, count: width)))
                    applied.append("offset \(field.rawValue)=\(value)")
                }
            }
            if checkOpen(fd.rawValue, pristine: pristine, layout: creator.layout, context: "round \(round): \(applied)") {
                accepted += 1
            } else {
                refused += 1
            }
        }
        // Both outcomes occur: mutations of the clock references or the identity are harmless.
        #expect(refused > 2000 && accepted > 50, "refused \(refused), accepted \(accepted)")
        #expect(pwriteAll(fd.rawValue, offset: 0, pristine))
        #expect(checkOpen(fd.rawValue, pristine: pristine, layout: creator.layout, context: "restored"))
    }

    @Test("every header field set to each extreme value is refused with the field, the value and what was expected",
          arguments: [UInt64(0), UInt64.max, UInt64(Int.max) + 1, 3, 8193])
    func extremeValues(value: UInt64) throws {
        let (fd, creator) = try Self.memoryObject("extreme")
        defer { try? fd.close() }
        let pristine = preadAll(fd.rawValue, offset: 0, count: 192)
        let names: [(HeaderField, Int, String)] = [
            (HeaderField.headerSize, 4, "headerSize"), (HeaderField.totalSize, 8, "totalSize"),
            (HeaderField.cpuRingCount, 4, "cpuRingCount"), (HeaderField.ringCount, 4, "ringCount"),
            (HeaderField.ringStride, 8, "ringStride"), (HeaderField.ringsOffset, 8, "ringsOffset"),
            (HeaderField.ringSize, 8, "ringSize"), (HeaderField.subbufferSize, 8, "subbufferSize"),
            (HeaderField.controlSize, 8, "controlSize"), (HeaderField.ringProtocol, 4, "ringProtocol"),
            (HeaderField.bufferMode, 4, "bufferMode"), (HeaderField.indexing, 4, "indexing"),
            (HeaderField.state, 4, "state"), (HeaderField.cycleFrequency, 8, "cycleFrequency"),
        ]
        for (field, width, name) in names {
            #expect(pwriteAll(fd.rawValue, offset: 0, pristine))
            let stored = width == 4 ? value & 0xFFFF_FFFF : value
            // Values a field may hold in a consistent header (the rest of this header is unchanged).
            let valid: Set<UInt64> = ["bufferMode": [0, 1], "indexing": [0, 1], "ringProtocol": [1, 3]][name] ?? []
            if stored == UnitTrace.sequence(of: Array(pristine[field.rawValue..<field.rawValue + width]))
                || valid.contains(stored) || (name == "cycleFrequency" && stored >= 1_000_000) {
                #expect(openError { () throws(TraceError) in try SharedTraceBuffer.open(descriptor: fd.rawValue) } == nil,
                        "\(name)=\(stored) refused")
                continue
            }
            #expect(pwriteAll(fd.rawValue, offset: field.rawValue, UnitTrace.littleEndian(stored, count: width)))
            let error = try #require(openError { () throws(TraceError) in try SharedTraceBuffer.open(descriptor: fd.rawValue) },
                                     "\(name)=\(stored) accepted")
            #expect(error.code == .corrupted, "\(name): \(error)")
            if name == "cpuRingCount" && (1...UInt64(TraceLayout.maximumCPURingCount)).contains(stored) {
                // A valid count on its own: the ring count that follows it no longer matches.
                #expect(error.message.hasPrefix("""
                    descriptor \(fd.rawValue): header field ringCount (offset \(HeaderField.ringCount.rawValue)) is \
                    \(creator.layout.ringCount), expected \(stored + 1) (cpuRingCount + 1)
                    """), "\(error.message)")
            } else {
                #expect(error.message.hasPrefix("descriptor \(fd.rawValue): header field \(name) (offset \(field.rawValue)) is \(stored), expected "),
                        "\(error.message)")
            }
            #expect(error.message.hasSuffix("record into a new trace object"), "\(error.message)")
        }
        withExtendedLifetime(creator) {}
    }

    @Test("an object truncated or extended to any size is refused, without mapping what it does not describe",
          arguments: [(0, false), (1, false), (4095, false), (4096, false), (65536, false), (-1, true), (1, true), (4096, true)])
    func truncatedByDescriptor(size: Int, relativeToTotal: Bool) throws {
        let (fd, creator) = try Self.memoryObject("trunc")
        defer { try? fd.close() }
        let total = creator.layout.totalSize
        let target = relativeToTotal ? total + size : size
        #expect(ftruncate(fd.rawValue, off_t(target)) == 0)
        let error = try #require(openError { () throws(TraceError) in try SharedTraceBuffer.open(descriptor: fd.rawValue) })
        if target < TraceLayout.headerSize {
            #expect(error.code == .notATraceObject)
            #expect(error.message == "descriptor \(fd.rawValue) is \(target) bytes, too small to be a trace object")
        } else {
            #expect(error.code == .corrupted)
            #expect(error.message.hasPrefix("descriptor \(fd.rawValue): the file is \(target) bytes but the header describes \(total) (truncated?)"),
                    "\(error.message)")
        }
    }

    @Test("a file larger than any trace object is refused before it is mapped")
    func hugeFileByDescriptor() throws {
        let (fd, creator) = try Self.memoryObject("huge")
        defer { try? fd.close() }
        let size = TraceLayout.maximumTotalSize + 1
        try #require(ftruncate(fd.rawValue, off_t(size)) == 0, "the system refuses a sparse file of \(size) bytes")
        let error = try #require(openError { () throws(TraceError) in try SharedTraceBuffer.open(descriptor: fd.rawValue) })
        #expect(error.code == .corrupted)
        #expect(error.message.hasPrefix("descriptor \(fd.rawValue) is \(size) bytes, larger than any trace object"), "\(error.message)")
        withExtendedLifetime(creator) {}
    }

    @Test("a pipe, a FIFO or a device given by descriptor is refused at once, naming its type")
    func nonRegularDescriptors() throws {
        let pipe = try HelperProcess.makePipe()
        defer { close(pipe.read); close(pipe.write) }
        let fifoPath = "/tmp/" + UnitTrace.name("fifo")
        // SAFETY: `fifoPath` is converted to a NUL-terminated C string for the call.
        try #require(unsafe mkfifo(fifoPath, 0o600) == 0)
        defer { UnitTrace.remove(fifoPath) }
        // SAFETY: as above; O_RDWR on a FIFO does not wait for a peer.
        let fifo = unsafe open(fifoPath, O_RDWR | O_CLOEXEC)
        try #require(fifo >= 0)
        defer { close(fifo) }
        // SAFETY: a constant path, converted to a C string for the call.
        let device = unsafe open("/dev/null", O_RDWR | O_CLOEXEC)
        try #require(device >= 0)
        defer { close(device) }
        for (fd, kind) in [(pipe.read, "a FIFO (named pipe)"), (fifo, "a FIFO (named pipe)"), (device, "a character device")] {
            let error = try #require(openError { () throws(TraceError) in try SharedTraceBuffer.open(descriptor: fd) })
            #expect(error.code == .notATraceObject)
            #expect(error.message == """
                descriptor \(fd) is \(kind), not a regular file: a trace object is a file under /dev/shm or an \
                anonymous memory file; check the descriptor number in RSEQTRACE_BUFFER
                """)
        }
    }

    @Test("a FIFO at a /dev/shm name is refused without waiting for a writer")
    func fifoByName() throws {
        let name = UnitTrace.name("fifo")
        let path = SharedTraceBuffer.path(forName: name)
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        try #require(unsafe mkfifo(path, 0o600) == 0)
        defer { UnitTrace.remove(path) }
        let error = try #require(openError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .notATraceObject)
        #expect(error.message == """
            \(path) is a FIFO (named pipe), not a regular file: a trace object is a file under /dev/shm or an \
            anonymous memory file; check the name given to open it
            """)
    }

    @Test("geometry scribbled into the header after validation does not change the layout producers and consumers use")
    func scribbleAfterValidation() throws {
        let fixture = try UnitTraceFixture("scribble")
        let opened = try SharedTraceBuffer.open(name: fixture.buffer.name)
        let layout = opened.layout
        let path = fixture.path
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        let fd = unsafe open(path, O_RDWR | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        for (field, width) in [(HeaderField.cpuRingCount, 4), (HeaderField.ringCount, 4), (HeaderField.ringSize, 8),
                               (HeaderField.subbufferSize, 8), (HeaderField.ringStride, 8), (HeaderField.totalSize, 8),
                               (HeaderField.ringsOffset, 8), (HeaderField.controlSize, 8)] {
            #expect(pwriteAll(fd, offset: field.rawValue, UnitTrace.littleEndian(UInt64.max, count: width)))
        }
        // A new opener refuses the object; the validated ones go on with their copy of the geometry.
        #expect(openError { () throws(TraceError) in try SharedTraceBuffer.open(name: fixture.buffer.name) }?.code == .corrupted)
        #expect(opened.layout == layout && fixture.buffer.layout == layout)
        let producer = opened.makeProducer()
        for i in 0..<20 { #expect(producer.write(eventID: 3, value: UInt64(i))) }
        let records = try TraceDrainer(buffer: opened).drainOnce(quiescent: true) { record in
            #expect(record.payloadSize == 8)
            #expect(record.loadIfInBounds(fromByteOffset: 1, as: UInt64.self) == nil)
            #expect(record.loadIfInBounds(fromByteOffset: Int.max, as: UInt8.self) == nil)
            #expect(record.loadIfInBounds(fromByteOffset: -1, as: UInt8.self) == nil)
        }
        #expect(records == 20)
    }

    @Test("an instrumented program started with RSEQTRACE_BUFFER naming a bad object runs untraced and says why, once",
          .timeLimit(.minutes(2)), arguments: ["garbage", "truncated", "symlink", "fifo-name", "fifo-fd", "closed-fd"])
    func instrumentedProgramSurvives(kind: String) throws {
        let name = UnitTrace.name("env-" + kind)
        let path = SharedTraceBuffer.path(forName: name)
        defer { UnitTrace.remove(path) }
        var creator: SharedTraceBuffer?
        var value = name
        var shell: String?
        let fifoPath = "/tmp/" + name
        defer { UnitTrace.remove(fifoPath) }
        let expected: String
        switch kind {
        case "garbage":
            // SAFETY: `path` is converted to a NUL-terminated C string for the call.
            let file = unsafe open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            try #require(file >= 0)
            #expect(pwriteAll(file, offset: 0, UnitTrace.pattern(5, count: 3 * 4096)))
            close(file)
            expected = "\(path) does not start with the RseqTrace magic"
        case "truncated":
            let buffer = try SharedTraceBuffer.create(TraceConfiguration(name: name, ringSize: 8192, subbufferSize: 1024, removeWhenClosed: true))
            creator = buffer
            // SAFETY: `path` is converted to a NUL-terminated C string for the call.
            #expect(unsafe truncate(path, off_t(buffer.layout.totalSize - 4096)) == 0)
            expected = "\(path): the file is \(buffer.layout.totalSize - 4096) bytes"
        case "symlink":
            // SAFETY: both paths are converted to NUL-terminated C strings for the call.
            try #require(unsafe symlink("/dev/zero", path) == 0)
            expected = "\(path) is a symbolic link: refusing to follow it"
        case "fifo-name":
            // SAFETY: `path` is converted to a NUL-terminated C string for the call.
            try #require(unsafe mkfifo(path, 0o600) == 0)
            expected = "\(path) is a FIFO (named pipe), not a regular file"
        case "fifo-fd":
            // SAFETY: `fifoPath` is converted to a NUL-terminated C string for the call.
            try #require(unsafe mkfifo(fifoPath, 0o600) == 0)
            value = "fd:7"
            shell = "exec \"$0\" instrumented --scenario env --events 10 7<>\"$1\""
            expected = "descriptor 7 is a FIFO (named pipe), not a regular file"
        default:
            value = "fd:987"
            expected = "RSEQTRACE_BUFFER names descriptor 987, which is not open in this process"
        }
        let outcome: ChildProcess.Outcome
        if let shell {
            outcome = try HelperProcess.run("/bin/sh", ["-c", shell, HelperProcess.helperPath, fifoPath],
                                            environment: HelperProcess.childEnvironment(["RSEQTRACE_BUFFER": value]),
                                            timeout: .seconds(60))
        } else {
            outcome = try HelperProcess.runHelper(["instrumented", "--scenario", "env", "--events", "10"],
                                                  setting: ["RSEQTRACE_BUFFER": value], timeout: .seconds(60))
        }
        #expect(outcome.exitCode == 0, "\(outcome)")
        let fields = try #require(outcome.fields(of: "instrumented:"), "\(outcome)")
        #expect(fields["attached"] == "0" && fields["problems"] == "1", "\(outcome)")
        let lines = outcome.stderr.split(separator: "\n").filter { $0.hasPrefix("rseqtrace: ") }
        #expect(lines.count == 1, "\(outcome.stderr)")
        #expect(lines.first?.hasPrefix("rseqtrace: cannot attach the buffer named by RSEQTRACE_BUFFER: ") == true, "\(outcome.stderr)")
        #expect(lines.first?.contains(expected) == true, "expected '\(expected)' in \(outcome.stderr)")
        withExtendedLifetime(creator) {}
    }
}

/// `open(descriptor:expectedOwner:sharedName:)` as root reading another user's object: what a
/// live-tracing consumer does with the descriptor a process of that user passed. The owner can
/// resize its own file under the consumer's mapping unless the file is sealed, so only a
/// size-sealed memory file is accepted, or the named /dev/shm file itself (a flight recorder, which
/// cannot be sealed), on the terms of opening it by name.
@Suite("Another user's trace object passed by descriptor", .enabled(if: geteuid() == 0, "giving a file to another user (fchown) needs root"))
struct ForeignDescriptorTests {
    /// Any uid but root's; it need not exist for fchown.
    static let otherUser: UInt32 = 65534

    static func configuration(_ tag: String) -> TraceConfiguration {
        TraceConfiguration(name: "rseqtrace-test-foreign-\(getpid())-\(tag)", ringSize: 8192, subbufferSize: 1024, cpuRingCount: 2)
    }

    static func giveAway(_ fd: FileDescriptor) -> Bool {
        fchown(fd.rawValue, otherUser, otherUser) == 0
    }

    @Test("a memory file of another user is refused unless sealed against shrinking and growing")
    func memoryFiles() throws {
        for sealed in [false, true] {
            let memory = try MemoryFile.create(label: "rseqtrace-test-foreign")
            defer { try? memory.close() }
            let created = try SharedTraceBuffer.create(Self.configuration("memfd"), in: memory)
            if sealed { try MemoryFile.sealSize(memory) }
            #expect(Self.giveAway(memory))
            let error = openError { () throws(TraceError) in
                try SharedTraceBuffer.open(descriptor: memory.rawValue, expectedOwner: Self.otherUser, sharedName: "rseqtrace-attach-1")
            }
            if sealed {
                #expect(error == nil, "\(String(describing: error))")
            } else {
                #expect(error?.code == .permissionDenied)
                #expect(error?.message == """
                    descriptor \(memory.rawValue) of uid \(Self.otherUser) is neither an anonymous memory file sealed against resizing \
                    nor the file /dev/shm/rseqtrace-attach-1 it was said to be: its owner could truncate it under this process; \
                    refusing to map it
                    """, "\(String(describing: error))")
            }
            withExtendedLifetime(created) {}
        }
    }

    @Test("another user's /dev/shm object is accepted as the file it is named as, and refused under another name, no name, or with group permissions")
    func namedFiles() throws {
        let configuration = Self.configuration("shm")
        let created = try SharedTraceBuffer.create(configuration)
        defer { created.removeName() }
        let decoy = try SharedTraceBuffer.create(Self.configuration("decoy"))
        defer { decoy.removeName() }
        let fd = try FileDescriptor.open(FilePath(SharedTraceBuffer.path(forName: configuration.name)), .readWrite, options: [.closeOnExec])
        defer { try? fd.close() }
        #expect(Self.giveAway(fd))
        func open(_ name: String?) -> TraceError? {
            openError { () throws(TraceError) in
                try SharedTraceBuffer.open(descriptor: fd.rawValue, expectedOwner: Self.otherUser, sharedName: name)
            }
        }
        #expect(open(configuration.name) == nil)
        for name in [nil, decoy.name, "rseqtrace-test-foreign-missing", "../shm/" + configuration.name] {
            let error = open(name)
            #expect(error?.code == .permissionDenied, "\(String(describing: name)): \(String(describing: error))")
            #expect(error?.message.hasPrefix("descriptor \(fd.rawValue) of uid \(Self.otherUser) is neither an anonymous memory file sealed against resizing") == true,
                    "\(String(describing: error))")
        }
        #expect(fchmod(fd.rawValue, 0o640) == 0)
        let error = open(configuration.name)
        #expect(error?.code == .permissionDenied)
        #expect(error?.message == """
            descriptor \(fd.rawValue) (/dev/shm/\(configuration.name)) is accessible by other users (mode 640): refusing to use it
            """, "\(String(describing: error))")
    }

    @Test("another user's regular file outside /dev/shm, which takes no seals, is refused")
    func regularFile() throws {
        let memory = try MemoryFile.create(label: "rseqtrace-test-foreign-source")
        defer { try? memory.close() }
        let created = try SharedTraceBuffer.create(Self.configuration("source"), in: memory)
        let size = created.layout.totalSize
        let path = "/tmp/rseqtrace-test-foreign-\(getpid())"
        let fd = try FileDescriptor.open(FilePath(path), .readWrite, options: [.create, .exclusiveCreate, .closeOnExec],
                                         permissions: [.ownerReadWrite])
        defer {
            try? fd.close()
            // SAFETY: unlink takes the path by value.
            unsafe unlink(path)
        }
        var bytes = [UInt8](repeating: 0, count: size)
        // SAFETY: the array's storage is writable for the duration of the closure; pread writes at most count bytes.
        let read = unsafe bytes.withUnsafeMutableBytes { unsafe pread(memory.rawValue, $0.baseAddress, $0.count, 0) }
        #expect(read == size)
        #expect(pwriteAll(fd.rawValue, offset: 0, bytes))
        // The copy is a valid trace object of this user.
        #expect(openError { () throws(TraceError) in try SharedTraceBuffer.open(descriptor: fd.rawValue) } == nil)
        #expect(Self.giveAway(fd))
        let error = openError { () throws(TraceError) in
            try SharedTraceBuffer.open(descriptor: fd.rawValue, expectedOwner: Self.otherUser)
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message == """
            descriptor \(fd.rawValue) of uid \(Self.otherUser) is neither an anonymous memory file sealed against resizing: \
            its owner could truncate it under this process; refusing to map it
            """, "\(String(describing: error))")
    }
}
