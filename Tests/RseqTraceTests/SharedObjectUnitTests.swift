import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import RseqTrace
import RseqTraceConsumer

/// The error a throwing call produced, or nil.
private func traceError<R>(_ body: () throws(TraceError) -> R) -> TraceError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// Overwrites `bytes` at `offset` of a file (as another process damaging the object would).
private func patchFile(_ path: String, offset: Int, _ bytes: [UInt8]) -> Bool {
    // SAFETY: `path` is converted to a NUL-terminated C string for the call.
    let fd = unsafe open(path, O_RDWR | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    // SAFETY: the array's storage is readable for the duration of the closure; pwrite reads count bytes.
    let written = unsafe bytes.withUnsafeBytes { unsafe pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
    return written == bytes.count
}

private func patchFile(_ path: String, offset: Int, uint32 value: UInt32) -> Bool {
    patchFile(path, offset: offset, UnitTrace.littleEndian(UInt64(value), count: 4))
}

private func patchFile(_ path: String, offset: Int, uint64 value: UInt64) -> Bool {
    patchFile(path, offset: offset, UnitTrace.littleEndian(value))
}

/// Creates a regular file with exactly `mode` and `bytes` as content.
private func makeFile(_ path: String, mode: mode_t, _ bytes: [UInt8]) -> Bool {
    // SAFETY: `path` is converted to a NUL-terminated C string for the call.
    let fd = unsafe open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    guard fchmod(fd, mode) == 0 else { return false }
    // SAFETY: the array's storage is readable for the duration of the closure; write reads count bytes.
    let written = unsafe bytes.withUnsafeBytes { unsafe write(fd, $0.baseAddress, $0.count) }
    return written == bytes.count
}

private struct FileFacts {
    var isRegular: Bool
    var permissions: UInt32
    var uid: UInt32
    var size: Int
}

private func facts(_ path: String) -> FileFacts? {
    var info = stat()
    // SAFETY: `path` is converted to a NUL-terminated C string for the call; `info` is a local.
    guard unsafe lstat(path, &info) == 0 else { return nil }
    return FileFacts(isRegular: info.st_mode & S_IFMT == S_IFREG, permissions: UInt32(info.st_mode & 0o7777),
                     uid: UInt32(info.st_uid), size: Int(info.st_size))
}

private func configuration(_ name: String, mode: BufferMode = .discard, removeWhenClosed: Bool = true) -> TraceConfiguration {
    TraceConfiguration(name: name, ringSize: 8192, subbufferSize: 1024, mode: mode, removeWhenClosed: removeWhenClosed)
}

@Suite("SharedObject: creating, opening and validating /dev/shm objects")
struct SharedObjectUnitTests {
    // MARK: Creating

    @Test("a created object is a regular file of exactly the described size, mode 0600, owned by the caller")
    func createdFileIsOwnerOnly() throws {
        let name = UnitTrace.name("perm")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        #expect(path == "/dev/shm/" + name)
        let f = try #require(facts(path))
        #expect(f.isRegular)
        #expect(f.permissions == 0o600)
        #expect(f.uid == UInt32(geteuid()))
        #expect(f.size == buffer.layout.totalSize)
        #expect(buffer.isCreator)
        #expect(buffer.creatorPID == getpid())
        #expect(buffer.name == name)
        #expect(buffer.mode == .discard)
        #expect(buffer.ringProtocol == (RseqRuntime.mode.usesRseq ? .rseq : .lockFree))
        #expect(buffer.layout.cpuRingCount == SystemInfo.possibleCPUCount)
        #expect(buffer.isFinished == false)
    }

    @Test("removeWhenClosed: true removes /dev/shm/NAME when the creator is released")
    func removeWhenClosedRemovesTheName() throws {
        let name = UnitTrace.name("autoremove")
        let path = SharedTraceBuffer.path(forName: name)
        do {
            let buffer = try SharedTraceBuffer.create(configuration(name, removeWhenClosed: true))
            #expect(UnitTrace.exists(path))
            #expect(buffer.makeProducer().write(eventID: 1, value: UInt64(1)))
        }
        #expect(UnitTrace.exists(path) == false)
    }

    @Test("removeWhenClosed: false keeps the object, and its records, after the creator is released")
    func keptObjectOutlivesItsCreator() throws {
        let name = UnitTrace.name("keep")
        let path = SharedTraceBuffer.path(forName: name)
        defer { UnitTrace.remove(path) }
        do {
            let buffer = try SharedTraceBuffer.create(configuration(name, removeWhenClosed: false))
            let producer = buffer.makeProducer()
            for seq in UInt64(0)..<20 { #expect(producer.write(eventID: 3, value: seq)) }
            buffer.markFinished()
            withExtendedLifetime(buffer) {}
        }
        #expect(UnitTrace.exists(path))
        let reopened = try SharedTraceBuffer.open(name: name)
        #expect(reopened.isCreator == false)
        #expect(reopened.isFinished)
        let drainer = TraceDrainer(buffer: reopened)
        var sequences: [UInt64] = []
        try drainer.drainOnce(quiescent: true) { sequences.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        #expect(sequences.sorted() == Array(0..<20))
    }

    @Test("an opener never removes the name, even when the creator asked for removal on close")
    func openerDoesNotRemove() throws {
        let name = UnitTrace.name("opener")
        let path = SharedTraceBuffer.path(forName: name)
        let creator = try SharedTraceBuffer.create(configuration(name, removeWhenClosed: true))
        do {
            let opened = try SharedTraceBuffer.open(name: name)
            #expect(opened.isCreator == false)
        }
        #expect(UnitTrace.exists(path))
        withExtendedLifetime(creator) {}
    }

    @Test("releasing a creator after its name was removed and re-created leaves the new object's name alone")
    func releaseDoesNotRemoveASuccessor() throws {
        let name = UnitTrace.name("successor")
        let path = SharedTraceBuffer.path(forName: name)
        defer { UnitTrace.remove(path) }
        var old: SharedTraceBuffer? = try SharedTraceBuffer.create(configuration(name, removeWhenClosed: true))
        old?.removeName()
        let successor = try SharedTraceBuffer.create(configuration(name, removeWhenClosed: true))
        old = nil
        #expect(UnitTrace.exists(path), "the successor's name was removed by the old object's release")
        #expect(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) } == nil)
        withExtendedLifetime(successor) {}
    }

    @Test("removeName() and release leave alone whatever replaced the object's name (foreign file, symlink to it, directory)",
          arguments: [0, 1, 2])
    func removeNameLeavesAReplacementAlone(replacement: Int) throws {
        let name = UnitTrace.name("replaced\(replacement)")
        let path = SharedTraceBuffer.path(forName: name)
        let aside = SharedTraceBuffer.path(forName: UnitTrace.name("aside\(replacement)"))
        defer {
            UnitTrace.remove(path)
            UnitTrace.remove(aside)
            // SAFETY: `path` is converted to a NUL-terminated C string for the call.
            _ = unsafe rmdir(path)
        }
        var buffer: SharedTraceBuffer? = try SharedTraceBuffer.create(configuration(name, removeWhenClosed: true))
        // Someone else moves the object aside and puts something else at its name.
        // SAFETY: both strings are converted to NUL-terminated C strings for the call.
        #expect(unsafe rename(path, aside) == 0)
        switch replacement {
        case 0:
            #expect(makeFile(path, mode: 0o600, UnitTrace.pattern(4, count: 64)))
        case 1:
            // A symlink to the very file the object created is still not that file at the name.
            // SAFETY: both strings are converted to NUL-terminated C strings for the call.
            #expect(unsafe symlink(aside, path) == 0)
        default:
            // SAFETY: `path` is converted to a NUL-terminated C string for the call.
            #expect(unsafe mkdir(path, 0o700) == 0)
        }
        buffer?.removeName()
        #expect(UnitTrace.exists(path), "removeName() removed a replacement")
        buffer = nil
        #expect(UnitTrace.exists(path), "release with removeWhenClosed removed a replacement")
        if replacement == 0 { #expect(facts(path)?.size == 64) }
        // The object's own file, moved aside, is not removed by a name it no longer has either.
        #expect(UnitTrace.exists(aside))
    }

    @Test("removeName() twice, then release, is harmless once the name is gone")
    func removeNameIsIdempotent() throws {
        let name = UnitTrace.name("removetwice")
        let path = SharedTraceBuffer.path(forName: name)
        do {
            let buffer = try SharedTraceBuffer.create(configuration(name, removeWhenClosed: true))
            buffer.removeName()
            #expect(UnitTrace.exists(path) == false)
            buffer.removeName()
            #expect(UnitTrace.exists(path) == false)
            #expect(buffer.makeProducer().write(eventID: 1, value: UInt64(9)))
        }
        #expect(UnitTrace.exists(path) == false)
    }

    @Test("removeName() unlinks the name while both mappings keep working")
    func removeNameKeepsMappings() throws {
        let fixture = try UnitTraceFixture("removename")
        fixture.buffer.removeName()
        #expect(UnitTrace.exists(fixture.path) == false)
        #expect(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: fixture.buffer.name) }?.code == .notFound)
        #expect(fixture.producer.write(eventID: 8, value: UInt64(77)))
        #expect(try fixture.drain(quiescent: true).map(\.sequence) == [77])
    }

    @Test("creating an existing name fails with .alreadyExists, says how to fix it, and leaves the existing file alone")
    func duplicateName() throws {
        let name = UnitTrace.name("dup")
        let path = SharedTraceBuffer.path(forName: name)
        let first = try SharedTraceBuffer.create(configuration(name))
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.create(configuration(name)) })
        #expect(error.code == .alreadyExists)
        #expect(error.errno?.rawValue == EEXIST)
        #expect(error.message == """
            a trace object named '\(name)' already exists at \(path): remove it (rm \(path)) if no process uses \
            it, or choose another name
            """)
        // The first object is untouched and still usable.
        #expect(facts(path)?.size == first.layout.totalSize)
        #expect(first.makeProducer().write(eventID: 1, value: UInt64(5)))
        #expect(try SharedTraceBuffer.open(name: name).layout == first.layout)
    }

    @Test("creating over a foreign file fails with .alreadyExists and does not remove or modify it")
    func duplicateOfForeignFile() throws {
        let name = UnitTrace.name("foreign")
        let path = SharedTraceBuffer.path(forName: name)
        defer { UnitTrace.remove(path) }
        let content = UnitTrace.pattern(3, count: 100)
        #expect(makeFile(path, mode: 0o600, content))
        #expect(traceError { () throws(TraceError) in try SharedTraceBuffer.create(configuration(name)) }?.code == .alreadyExists)
        #expect(facts(path)?.size == 100)
    }

    @Test("a symlink at the name is neither followed nor replaced by create")
    func createDoesNotFollowSymlinks() throws {
        let name = UnitTrace.name("createlink")
        let target = UnitTrace.name("createlink-target")
        let path = SharedTraceBuffer.path(forName: name)
        let targetPath = SharedTraceBuffer.path(forName: target)
        defer {
            UnitTrace.remove(path)
            UnitTrace.remove(targetPath)
        }
        // SAFETY: both strings are converted to NUL-terminated C strings for the call.
        #expect(unsafe symlink(targetPath, path) == 0)
        let error = traceError { () throws(TraceError) in try SharedTraceBuffer.create(configuration(name)) }
        #expect(error?.code == .alreadyExists)
        #expect(UnitTrace.exists(targetPath) == false)
    }

    @Test("invalid names are refused by create and open with .invalidName and the name check's message",
          arguments: ["", ".hidden", "a/b", "../../etc/passwd", "with space", "ünï"])
    func invalidNames(name: String) throws {
        let expected = try #require(TraceConfiguration.problem(withName: name))
        let created = traceError { () throws(TraceError) in try SharedTraceBuffer.create(configuration(name)) }
        #expect(created?.code == .invalidName)
        #expect(created?.message == expected)
        let opened = traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) }
        #expect(opened?.code == .invalidName)
        #expect(opened?.message == expected)
    }

    @Test("bad geometry fails with .invalidConfiguration, explains the rules, and creates no file",
          arguments: [(3000, 1024, 2), (8192, 8192, 2), (4096, 256, 2), (1 << 31, 1 << 16, 2), (8192, 100, 2), (8192, 1024, 0),
                      (1 << 20, 256, 2)])
    func badGeometry(ringSize: Int, subbufferSize: Int, cpus: Int) throws {
        let name = UnitTrace.name("geometry")
        let config = TraceConfiguration(name: name, ringSize: ringSize, subbufferSize: subbufferSize, cpuRingCount: cpus)
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.create(config) })
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.hasPrefix("invalid ring geometry: ringSize \(ringSize) and subbufferSize \(subbufferSize) must be powers of two"),
                "\(error.message)")
        #expect(error.message.contains("8 KiB <= ringSize <= 1 GiB"))
        #expect(error.message.hasSuffix("cpu rings \(cpus) must be 1...4096"))
        #expect(UnitTrace.exists(SharedTraceBuffer.path(forName: name)) == false)
    }

    @Test("overwrite mode with mm_cid indexing is refused with .invalidConfiguration and creates no file")
    func overwriteNeedsCPUIndexing() throws {
        let name = UnitTrace.name("mmcid")
        var config = configuration(name, mode: .overwrite)
        config.indexing = .concurrencyID
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.create(config) })
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.contains("cpu_id indexing"), "\(error.message)")
        #expect(UnitTrace.exists(SharedTraceBuffer.path(forName: name)) == false)
    }

    // MARK: Opening

    @Test("opening a missing name fails with .notFound, names the path and suggests a cause")
    func openMissing() throws {
        let name = UnitTrace.name("missing")
        let path = SharedTraceBuffer.path(forName: name)
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .notFound)
        #expect(error.errno?.rawValue == ENOENT)
        #expect(error.message == "no trace object named '\(name)' (\(path) does not exist): is the traced program running?")
    }

    @Test("opening a symbolic link in /dev/shm fails with .permissionDenied, whether it points to a trace or nowhere",
          arguments: [true, false])
    func openSymlink(toValidTrace: Bool) throws {
        let linkName = UnitTrace.name("link")
        let linkPath = SharedTraceBuffer.path(forName: linkName)
        let targetName = UnitTrace.name("link-target")
        let target = toValidTrace ? try SharedTraceBuffer.create(configuration(targetName)) : nil
        defer { UnitTrace.remove(linkPath) }
        // SAFETY: both strings are converted to NUL-terminated C strings for the call.
        #expect(unsafe symlink(SharedTraceBuffer.path(forName: targetName), linkPath) == 0)
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: linkName) })
        #expect(error.code == .permissionDenied)
        #expect(error.errno?.rawValue == ELOOP)
        #expect(error.message == "\(linkPath) is a symbolic link: refusing to follow it")
        #expect(error.message.contains("symbolic link"))
        withExtendedLifetime(target) {}
    }

    @Test("an object accessible to group or others fails with .permissionDenied naming the mode",
          arguments: [0o644, 0o640, 0o604, 0o660, 0o606, 0o666, 0o610, 0o601])
    func openWithLoosePermissions(mode: Int) throws {
        let name = UnitTrace.name("mode")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        #expect(unsafe chmod(path, mode_t(mode)) == 0)
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .permissionDenied)
        #expect(error.message == "\(path) is accessible by other users (mode \(String(mode, radix: 8))): refusing to use it")
        withExtendedLifetime(buffer) {}
    }

    @Test("owner-only modes other than 0600 are accepted (0700)")
    func openWithOwnerExecuteBit() throws {
        let name = UnitTrace.name("mode700")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        // SAFETY: the path is converted to a NUL-terminated C string for the call.
        #expect(unsafe chmod(SharedTraceBuffer.path(forName: name), 0o700) == 0)
        #expect(try SharedTraceBuffer.open(name: name).layout == buffer.layout)
    }

    @Test("a regular file without the magic fails with .notATraceObject",
          arguments: [0, 1])
    func openGarbage(kind: Int) throws {
        let name = UnitTrace.name("garbage")
        let path = SharedTraceBuffer.path(forName: name)
        defer { UnitTrace.remove(path) }
        let content = kind == 0 ? UnitTrace.pattern(9, count: 3 * 4096) : [UInt8](repeating: 0, count: 3 * 4096)
        #expect(makeFile(path, mode: 0o600, content))
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .notATraceObject)
        #expect(error.message == "\(path) does not start with the RseqTrace magic: not a trace object (or not initialised yet)")
    }

    @Test("a FIFO at the name fails with .notATraceObject: not a regular file")
    func openFIFO() throws {
        let name = UnitTrace.name("fifo")
        let path = SharedTraceBuffer.path(forName: name)
        defer { UnitTrace.remove(path) }
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        #expect(unsafe mkfifo(path, 0o600) == 0)
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .notATraceObject)
        #expect(error.message == """
            \(path) is a FIFO (named pipe), not a regular file: a trace object is a file under /dev/shm or an \
            anonymous memory file; check the name given to open it
            """)
    }

    @Test("a directory at the name fails with .notATraceObject, one of the errors open(name:) documents")
    func openDirectory() throws {
        let name = UnitTrace.name("dir")
        let path = SharedTraceBuffer.path(forName: name)
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        #expect(unsafe mkdir(path, 0o700) == 0)
        // SAFETY: as above.
        defer { _ = unsafe rmdir(path) }
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .notATraceObject, "\(error.code): \(error.description)")
        #expect(error.errno?.rawValue == EISDIR)
        #expect(error.message == "\(path) is a directory, not a trace object")
        // Still there: open never removes anything.
        #expect(UnitTrace.exists(path))
    }

    @Test("an object owned by another uid fails with .permissionDenied naming both uids", .enabled(if: geteuid() == 0))
    func openForeignOwner() throws {
        let name = UnitTrace.name("owner")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        #expect(unsafe chown(path, 12345, 12345) == 0)
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .permissionDenied)
        #expect(error.message == "\(path) belongs to uid 12345, not to you (uid \(geteuid())): refusing to use it")
        withExtendedLifetime(buffer) {}
    }

    @Test("a file smaller than the header fails with .notATraceObject and its size", arguments: [0, 7, 4095])
    func openTooSmall(size: Int) throws {
        let name = UnitTrace.name("small")
        let path = SharedTraceBuffer.path(forName: name)
        defer { UnitTrace.remove(path) }
        #expect(makeFile(path, mode: 0o600, UnitTrace.pattern(1, count: size)))
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .notATraceObject)
        #expect(error.message == "\(path) is \(size) bytes, too small to be a trace object")
    }

    @Test("a valid object with one wrong magic byte fails with .notATraceObject", arguments: [0, 6, 7])
    func openWrongMagic(byte: Int) throws {
        let name = UnitTrace.name("magic")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        let original = UnitTrace.littleEndian(TraceLayout.magic)[byte]
        #expect(patchFile(path, offset: HeaderField.magic.rawValue + byte, [original ^ 0x02]))
        let error = traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) }
        #expect(error?.code == .notATraceObject)
        #expect(error?.message.hasPrefix(path) == true)
        withExtendedLifetime(buffer) {}
    }

    @Test("a truncated (or extended) object fails with .corrupted and says the sizes", arguments: [-4096, -1, 4096])
    func openTruncated(delta: Int) throws {
        let name = UnitTrace.name("truncated")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        let total = buffer.layout.totalSize
        // SAFETY: `path` is converted to a NUL-terminated C string for the call.
        #expect(unsafe truncate(path, off_t(total + delta)) == 0)
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .corrupted)
        #expect(error.message == """
            \(path): the file is \(total + delta) bytes but the header describes \(total) (truncated?); the header \
            is inconsistent, refusing to use it: the object is damaged or was written by another program; record \
            into a new trace object
            """)
        #expect(error.message.contains("truncated"))
        withExtendedLifetime(buffer) {}
    }

    @Test("a header with another version fails with .unsupportedVersion and says to use a matching tool",
          arguments: [UInt32(0), 1, 2, 3, 4, 6, 0xFFFF_FFFF])
    func openOtherVersion(version: UInt32) throws {
        let name = UnitTrace.name("version")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        #expect(patchFile(path, offset: HeaderField.version.rawValue, uint32: version))
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .unsupportedVersion)
        #expect(error.message == "\(path) has layout version \(version); this build reads version 5: use a matching rseqtrace")
        withExtendedLifetime(buffer) {}
    }

    @Test("a corrupted ring size fails with .corrupted naming the inconsistency")
    func openCorruptedRingSize() throws {
        let name = UnitTrace.name("ringsize")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        func openError() -> TraceError? { traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) } }

        #expect(patchFile(path, offset: HeaderField.ringSize.rawValue, uint64: 12345))
        #expect(openError()?.code == .corrupted)
        #expect(openError()?.message == """
            \(path): header field ringSize (offset 48) is 12345, expected a power of two in 8192...1073741824; the \
            header is inconsistent, refusing to use it: the object is damaged or was written by another program; \
            record into a new trace object
            """)

        #expect(patchFile(path, offset: HeaderField.ringSize.rawValue, uint64: UInt64.max))
        #expect(openError()?.code == .corrupted)
        #expect(openError()?.message.hasPrefix("\(path): header field ringSize (offset 48) is \(UInt64.max), expected ") == true)

        // A valid but different power of two: geometry fine, derived sizes no longer match.
        #expect(patchFile(path, offset: HeaderField.ringSize.rawValue, uint64: 16384))
        #expect(openError()?.code == .corrupted)
        #expect(openError()?.message.hasPrefix("""
            \(path): header field ringStride (offset 32) is 16384, expected 24576 (controlSize + ringSize); the header \
            is inconsistent
            """) == true, "\(openError()?.message ?? "")")

        // Repaired: opens again.
        #expect(patchFile(path, offset: HeaderField.ringSize.rawValue, uint64: 8192))
        #expect(openError() == nil)
        withExtendedLifetime(buffer) {}
    }

    @Test("other damaged header fields fail with .corrupted",
          arguments: [(HeaderField.headerSize.rawValue, 4, UInt64(8192), "header field headerSize (offset 12) is 8192, expected 4096;"),
                      (HeaderField.controlSize.rawValue, 8, 0, "header field controlSize (offset 64) is 0, expected 8192;"),
                      (HeaderField.ringsOffset.rawValue, 8, 0, "header field ringsOffset (offset 40) is 0, expected 147456 (registry, lines table and counters of"),
                      (HeaderField.cpuRingCount.rawValue, 4, 0, "header field cpuRingCount (offset 24) is 0, expected 1...4096;"),
                      (HeaderField.lazyPopulation.rawValue, 4, 2, "header field lazyPopulation (offset 176) is 2, expected 0 or 1;"),
                      (HeaderField.subbufferSize.rawValue, 8, 768,
                       "header field subbufferSize (offset 56) is 768, expected a power of two in 256...16777216;"),
                      (HeaderField.subbufferSize.rawValue, 8, 16, "header field subbufferSize (offset 56) is 16, expected a power of two"),
                      (HeaderField.subbufferSize.rawValue, 8, 8192,
                       "ringSize 8192 holds 1 sub-buffers of subbufferSize 8192, expected 2...256;"),
                      (HeaderField.ringCount.rawValue, 4, 99, "header field ringCount (offset 28) is 99, expected "),
                      (HeaderField.ringStride.rawValue, 8, 1, "header field ringStride (offset 32) is 1, expected 16384 (controlSize + ringSize);"),
                      (HeaderField.totalSize.rawValue, 8, 4096, "header field totalSize (offset 16) is 4096, expected "),
                      (HeaderField.ringProtocol.rawValue, 4, 2, "header field ringProtocol (offset 72) is 2, expected 1 (rseq) or 3 (lock-free);"),
                      (HeaderField.bufferMode.rawValue, 4, 2, "header field bufferMode (offset 76) is 2, expected 0 (discard) or 1 (overwrite);"),
                      (HeaderField.indexing.rawValue, 4, 5, "header field indexing (offset 80) is 5, expected 0 (cpu_id) or 1 (mm_cid);"),
                      (HeaderField.state.rawValue, 4, 0, "header field state (offset 84) is 0, expected 1 (ready) or 2 (finished);"),
                      (HeaderField.state.rawValue, 4, 3, "header field state (offset 84) is 3, expected 1 (ready) or 2 (finished);"),
                      (HeaderField.cycleFrequency.rawValue, 8, 999_999,
                       "header field cycleFrequency (offset 96) is 999999, expected at least 1000000 (Hz);")])
    func openDamagedHeaderField(offset: Int, width: Int, value: UInt64, reason: String) throws {
        let name = UnitTrace.name("field\(offset)")
        let buffer = try SharedTraceBuffer.create(configuration(name))
        let path = SharedTraceBuffer.path(forName: name)
        #expect(patchFile(path, offset: offset, UnitTrace.littleEndian(value, count: width)))
        let error = try #require(traceError { () throws(TraceError) in try SharedTraceBuffer.open(name: name) })
        #expect(error.code == .corrupted)
        #expect(error.message.hasPrefix("\(path): \(reason)"), "\(error.message)")
        #expect(error.message.hasSuffix("""
            ; the header is inconsistent, refusing to use it: the object is damaged or was written by another \
            program; record into a new trace object
            """))
        withExtendedLifetime(buffer) {}
    }

    // MARK: Two mappings of one object

    @Test("open() in the same process sees the creator's header and records, and the creator sees the opener's")
    func twoMappingsShareRecords() throws {
        let name = UnitTrace.name("twomaps")
        let creator = try SharedTraceBuffer.create(configuration(name, mode: .overwrite))
        let opened = try SharedTraceBuffer.open(name: name)
        #expect(opened.name == name)
        #expect(opened.layout == creator.layout)
        #expect(opened.mode == .overwrite)
        #expect(opened.ringProtocol == creator.ringProtocol)
        #expect(opened.indexing == creator.indexing)
        #expect(opened.creatorPID == getpid())
        #expect(opened.bootID == creator.bootID)
        #expect(opened.clock.frequency == creator.clock.frequency)
        #expect(opened.isCreator == false)
        #expect(opened.isFinished == false)

        let creatorProducer = creator.makeProducer()
        let openedProducer = opened.makeProducer()
        for seq in UInt64(0)..<50 {
            #expect((seq % 2 == 0 ? creatorProducer : openedProducer).write(eventID: UInt16(seq), value: seq))
        }
        creator.markFinished()
        #expect(opened.isFinished)

        // Read through the opener's mapping...
        var viaOpened: [UInt64] = []
        let openedDrainer = TraceDrainer(buffer: opened)
        try openedDrainer.drainOnce(quiescent: true) { viaOpened.append($0.load(fromByteOffset: 0, as: UInt64.self)) }
        #expect(viaOpened.sorted() == Array(0..<50))
        // ...and the consumed positions it published are visible through the creator's.
        for ring in 0..<creator.layout.ringCount {
            let head = creator.ring(ring).load(ControlField.head, ordering: .acquiring)
            #expect(creator.ring(ring).load(ControlField.consumed, ordering: .acquiring) == head)
        }
        #expect(openedDrainer.totals.recorded == 50)
        #expect(openedDrainer.totals.lost == 0)
        withExtendedLifetime(creator) {}
        withExtendedLifetime(opened) {}
    }
}
