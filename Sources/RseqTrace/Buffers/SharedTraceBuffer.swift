#if canImport(Glibc)
import Glibc
#endif
import CRseqTrace
import Synchronization
import SystemPackage

/// A trace object in shared memory: per-CPU rings that producers in this and other processes of the
/// same user write, and that a consumer drains.
///
/// Create one with `create(_:)` (owner-only permissions, `O_EXCL`, no symlink following) or attach
/// to an existing one with `open(name:)`, which validates the header and rejects anything it does
/// not understand. The mapping lives as long as this object; every `Producer` made from it keeps
/// it alive.
@safe
public final class SharedTraceBuffer: @unchecked Sendable {
    /// Name of the object under /dev/shm.
    public let name: String
    /// Geometry: ring count, ring and sub-buffer sizes.
    public let layout: TraceLayout
    /// What happens when a ring is full.
    public let mode: BufferMode
    /// How producers update the rings (rseq or lock-free), decided by the creating process.
    package let ringProtocol: RingProtocol
    /// What indexes the per-CPU rings.
    public let indexing: RingIndexing
    /// The cycle-counter clock of the records' timestamps (frequency and reference instant).
    public let clock: CycleClock
    /// The boot id of the machine that created the object (16 bytes).
    package let bootID: [UInt8]
    /// Process id of the creating process.
    package let creatorPID: Int32
    /// Whether producers populate each sub-buffer when they first open it (see `TraceLayout`).
    package let populatesLazily: Bool
    /// True for the object that created the name (and may remove it).
    package let isCreator: Bool

    let base: UnsafeMutableRawPointer
    private let mappedSize: Int
    /// The ring writers `Producer`s use, owned by this object (so a producer reaches its writer
    /// through a stable address without copying it): [0] for the creating process, [1] for others
    /// (they differ only for mm_cid indexing, meaningful in the creating process alone).
    private let producerWriters: UnsafeMutablePointer<RingWriter.State>
    private let removeWhenClosed: Bool
    /// Device and inode of the file this object mapped: the name is only ever removed while it
    /// still designates that file (not a newer object created under the same name).
    private let fileIdentity: (device: UInt64, inode: UInt64)

    /// The environment variable through which `rseqtrace record` hands its trace object to the
    /// program it runs.
    public static let environmentVariable = "RSEQTRACE_BUFFER"

    /// The prefix of an `RSEQTRACE_BUFFER` value that names an inherited descriptor (`fd:<n>`)
    /// rather than a /dev/shm name.
    public static let descriptorPrefix = "fd:"

    /// Attaches to the trace object named by `RSEQTRACE_BUFFER`, or returns nil when it is unset
    /// (the program runs untraced). The value is either `fd:<n>`, a descriptor this process
    /// inherited (`open(descriptor:)`, what `rseqtrace record` passes), or a name under /dev/shm
    /// (`open(name:)`).
    public static func openFromEnvironment() throws(TraceError) -> SharedTraceBuffer? {
        guard let value = SystemInfo.environmentValue(environmentVariable) else { return nil }
        let buffer: SharedTraceBuffer
        if value.hasPrefix(descriptorPrefix) {
            guard let descriptor = Int32(value.dropFirst(descriptorPrefix.count)), descriptor >= 0 else {
                throw TraceError(.invalidName, "\(environmentVariable)=\(value) is not fd:<descriptor number>")
            }
            buffer = try open(descriptor: descriptor)
        } else {
            buffer = try open(name: value)
        }
        buffer.noteAttachedProducer()
        return buffer
    }

    /// /dev/shm path of a trace name.
    package static func path(forName name: String) -> String { "/dev/shm/" + name }

    // MARK: Creating

    /// Creates a new trace object.
    ///
    /// - Throws: `TraceError` with `.invalidConfiguration`, `.invalidName`, `.alreadyExists`,
    ///   `.permissionDenied` or `.systemCallFailed` (for example when /dev/shm is too small).
    public static func create(_ configuration: TraceConfiguration) throws(TraceError) -> SharedTraceBuffer {
        if let problem = TraceConfiguration.problem(withName: configuration.name) {
            throw TraceError(.invalidName, problem)
        }
        let (layout, ringProtocol) = try checkedGeometry(configuration)
        let path = SharedTraceBuffer.path(forName: configuration.name)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(
                FilePath(path), .readWrite,
                options: [.create, .exclusiveCreate, .noFollow, .closeOnExec],
                permissions: [.ownerReadWrite])
        } catch let errno as Errno {
            if errno == .fileExists {
                throw TraceError(.alreadyExists, """
                    a trace object named '\(configuration.name)' already exists at \(path): remove it \
                    (rm \(path)) if no process uses it, or choose another name
                    """, errno: errno)
            }
            throw TraceError(.systemCallFailed, "cannot create \(path)", errno: errno)
        } catch {
            throw TraceError(.systemCallFailed, "cannot create \(path): \(error)")
        }
        defer { try? fd.close() }
        return try build(in: fd, location: path, unlinkOnFailure: true, configuration: configuration,
                         layout: layout, ringProtocol: ringProtocol)
    }

    /// Creates a new trace object in `memoryFile`, an empty file this process opened read-write
    /// (typically a `memfd_create` descriptor), without a name under /dev/shm: nothing is left
    /// behind when the last process holding it ends. The descriptor stays the caller's (it is not
    /// closed); hand it to other processes by inheritance, with `RSEQTRACE_BUFFER=fd:<n>`
    /// (see `openFromEnvironment()`). `configuration.name` only labels the object in messages,
    /// and `removeWhenClosed` does not apply.
    ///
    /// - Throws: `TraceError` with `.invalidConfiguration`, `.invalidName`, or `.systemCallFailed`
    ///   (for example when the memory for the buffer cannot be allocated).
    public static func create(_ configuration: TraceConfiguration, in memoryFile: FileDescriptor) throws(TraceError) -> SharedTraceBuffer {
        if let problem = TraceConfiguration.problem(withName: configuration.name) {
            throw TraceError(.invalidName, problem)
        }
        let (layout, ringProtocol) = try checkedGeometry(configuration)
        return try build(in: memoryFile, location: "the anonymous memory file '\(configuration.name)' (descriptor \(memoryFile.rawValue))",
                         unlinkOnFailure: false, configuration: configuration, layout: layout, ringProtocol: ringProtocol)
    }

    /// The layout and ring protocol of a configuration, or the error saying why it is refused.
    private static func checkedGeometry(_ configuration: TraceConfiguration) throws(TraceError) -> (TraceLayout, RingProtocol) {
        let cpus = configuration.cpuRingCount ?? SystemInfo.possibleCPUCount
        guard let layout = TraceLayout(cpuRingCount: cpus, ringSize: configuration.ringSize,
                                       subbufferSize: configuration.subbufferSize) else {
            throw TraceError(.invalidConfiguration, """
                invalid ring geometry: ringSize \(configuration.ringSize) and subbufferSize \
                \(configuration.subbufferSize) must be powers of two with 8 KiB <= ringSize <= 1 GiB, \
                256 B <= subbufferSize <= 16 MiB, 2 to 256 sub-buffers per ring; cpu rings \(cpus) must be 1...4096
                """)
        }
        let status = RseqRuntime.status
        let ringProtocol: RingProtocol = status.mode.usesRseq ? .rseq : .lockFree
        if configuration.indexing == .concurrencyID && !status.supportsConcurrencyID {
            throw TraceError(.invalidConfiguration, """
                mm_cid indexing needs rseq with node_id/mm_cid (Linux 6.3+); this process runs in \
                \(status) mode: use cpu_id indexing
                """)
        }
        if configuration.indexing == .concurrencyID && configuration.mode == .overwrite {
            throw TraceError(.invalidConfiguration, """
                overwrite mode needs cpu_id indexing: a consumer must run on a ring's CPU to read it \
                atomically with its producers, and an mm_cid is not a CPU
                """)
        }
        return (layout, ringProtocol)
    }

    /// Sizes, maps, populates and initialises the trace object in `fd` (empty, read-write, owned
    /// by the caller); `location` names it in messages. On failure the name at `location` is
    /// removed when `unlinkOnFailure`.
    private static func build(in fd: FileDescriptor, location path: String, unlinkOnFailure: Bool,
                              configuration: TraceConfiguration, layout: TraceLayout,
                              ringProtocol: RingProtocol) throws(TraceError) -> SharedTraceBuffer {
        func fail(_ message: String, _ errno: Errno?) -> TraceError {
            if unlinkOnFailure {
                // SAFETY: unlinking the name this call just created, by value (a Swift string).
                _ = unsafe unlink(path)
            }
            return TraceError(.systemCallFailed, message, errno: errno)
        }
        /// The message for memory that could not be reserved or touched (ENOSPC, ENOMEM, or the
        /// EFAULT that MADV_POPULATE_WRITE reports when a page cannot be allocated).
        func outOfMemory(_ errno: Errno) -> TraceError {
            fail("""
                cannot allocate \(layout.totalSize) bytes of shared memory for the trace buffer \
                (\(path)): there is not enough free memory (or room in /dev/shm, or under this \
                cgroup's memory limit); choose smaller rings (--buffer-size) or free some memory
                """, errno == .badAddress ? nil : errno)
        }
        let created: Stat
        do {
            created = try fd.stat()
        } catch {
            throw fail("cannot stat \(path)", error)
        }
        do {
            try fd.resize(to: Int64(layout.totalSize))
        } catch {
            let errno = error as? Errno ?? .ioError
            if errno == .noSpace || errno == .noMemory || errno == .fileTooLarge { throw outOfMemory(errno) }
            throw fail("cannot size \(path) to \(layout.totalSize) bytes", errno)
        }
        // SAFETY: mapping the descriptor opened above with the size just set; the result is checked.
        let mapping = unsafe mmap(nil, layout.totalSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        let mapErrno = Errno(rawValue: Glibc.errno)   // read before anything else can change it
        // SAFETY: comparing the returned address only.
        guard let mapping = unsafe mapping, unsafe mapping != MAP_FAILED else {
            throw fail("cannot map \(path)", mapErrno)
        }
        // SAFETY: mmap succeeded; the mapping is `totalSize` bytes long and owned by this object.
        let base = unsafe UnsafeMutableRawPointer(mapping)
        // Place each CPU's ring on that CPU's NUMA node before its pages are first touched.
        for ring in 0..<layout.cpuRingCount where configuration.indexing == .cpuID {
            if let node = SystemInfo.numaNode(ofCPU: ring) {
                // SAFETY: the range is one ring of the mapping created above.
                _ = unsafe rseqtrace_mbind_preferred(
                    base.advanced(by: layout.ringsOffset + ring * layout.ringStride),
                    UInt(layout.ringStride), Int32(node))
            }
        }
        // Populate the header, the registry, the lines table and the counter names now (a /dev/shm
        // too small then fails here with a clear error). The rings are populated sub-buffer by
        // sub-buffer by the producers that first open them (RingWriter.populateBeforeOpening), which
        // report a page that cannot be allocated as a dropped record instead of taking SIGBUS; a
        // group of counter values by the registration of its first counter (`registerCounter`).
        // SAFETY: the range is the start of our mapping.
        let populated = unsafe rseqtrace_populate_write(base, configuration.preallocates ? layout.totalSize : layout.counterValuesOffset)
        let lazy = populated == 0 && !configuration.preallocates
        if populated != 0 {
            let errno = Errno(rawValue: populated)
            if errno == .invalidArgument {
                // Kernel without MADV_POPULATE_WRITE: reserve every page with fallocate instead.
                let rc = posix_fallocate(fd.rawValue, 0, off_t(layout.totalSize))
                if rc != 0 {
                    // SAFETY: unmapping our own mapping.
                    unsafe munmap(base, layout.totalSize)
                    throw outOfMemory(Errno(rawValue: rc))
                }
            } else {
                // SAFETY: unmapping our own mapping.
                unsafe munmap(base, layout.totalSize)
                throw outOfMemory(errno)
            }
        }

        let clock = CycleClock.reference()
        let bootID = SystemInfo.bootID
        // SAFETY: the header is the first 4 KiB of the mapping created above.
        let header = unsafe HeaderWriter(base: unsafe base)
        header.put(UInt64(TraceLayout.headerSize), at: HeaderField.headerSize, as: UInt32.self)
        header.put(UInt64(TraceLayout.version), at: HeaderField.version, as: UInt32.self)
        header.put(UInt64(layout.totalSize), at: HeaderField.totalSize, as: UInt64.self)
        header.put(UInt64(layout.cpuRingCount), at: HeaderField.cpuRingCount, as: UInt32.self)
        header.put(UInt64(layout.ringCount), at: HeaderField.ringCount, as: UInt32.self)
        header.put(UInt64(layout.ringStride), at: HeaderField.ringStride, as: UInt64.self)
        header.put(UInt64(layout.ringsOffset), at: HeaderField.ringsOffset, as: UInt64.self)
        header.put(UInt64(layout.ringSize), at: HeaderField.ringSize, as: UInt64.self)
        header.put(UInt64(layout.subbufferSize), at: HeaderField.subbufferSize, as: UInt64.self)
        header.put(UInt64(TraceLayout.controlSize), at: HeaderField.controlSize, as: UInt64.self)
        header.put(UInt64(ringProtocol.rawValue), at: HeaderField.ringProtocol, as: UInt32.self)
        header.put(UInt64(configuration.mode.rawValue), at: HeaderField.bufferMode, as: UInt32.self)
        header.put(UInt64(configuration.indexing.rawValue), at: HeaderField.indexing, as: UInt32.self)
        header.put(UInt64(UInt32(bitPattern: getpid())), at: HeaderField.creatorPID, as: UInt32.self)
        header.put(UInt64(geteuid()), at: HeaderField.creatorUID, as: UInt32.self)
        header.put(lazy ? 1 : 0, at: HeaderField.lazyPopulation, as: UInt32.self)
        header.put(clock.frequency, at: HeaderField.cycleFrequency, as: UInt64.self)
        header.put(clock.cycleReference, at: HeaderField.cycleReference, as: UInt64.self)
        header.put(clock.monotonicReference, at: HeaderField.monotonicReference, as: UInt64.self)
        header.put(clock.realtimeReference, at: HeaderField.realtimeReference, as: UInt64.self)
        header.putBytes(bootID, at: HeaderField.bootID, limit: 16)
        header.putBytes(Array(CycleClock.sourceName.utf8), at: HeaderField.clockSource, limit: 16)
        // SAFETY: the registry mutex lives in the header, 64-aligned, 64 bytes reserved.
        let registryMutex = unsafe rseqtrace_mutex_init_shared(base.advanced(by: HeaderField.registryMutex.rawValue))
        if registryMutex != 0 {
            // SAFETY: unmapping our own mapping.
            unsafe munmap(base, layout.totalSize)
            throw fail("cannot initialise the registry mutex", Errno(rawValue: registryMutex))
        }
        // The magic goes last: a reader that sees it sees a complete header.
        header.put(TraceLayout.magic, at: HeaderField.magic, as: UInt64.self)
        header.publishState(1)
        // SAFETY: ownership of the mapping moves to the new object, which unmaps it in deinit.
        return unsafe SharedTraceBuffer(
            name: configuration.name, layout: layout, mode: configuration.mode, ringProtocol: ringProtocol,
            indexing: configuration.indexing, clock: clock, bootID: bootID, creatorPID: getpid(),
            populatesLazily: lazy, isCreator: true, base: base, mappedSize: layout.totalSize,
            removeWhenClosed: configuration.removeWhenClosed,
            fileIdentity: (UInt64(created.deviceID.rawValue), UInt64(created.inode.rawValue)))
    }

    // MARK: Opening

    /// Attaches to an existing trace object, validating everything about it.
    ///
    /// - Throws: `TraceError` with `.invalidName`, `.notFound`, `.permissionDenied` (symlink, other
    ///   owner, group/other permissions), `.notATraceObject`, `.unsupportedVersion` or `.corrupted`.
    public static func open(name: String) throws(TraceError) -> SharedTraceBuffer {
        try open(name: name, expectedOwner: geteuid())
    }

    /// Attaches to an existing trace object owned by `expectedOwner` (root recovering another
    /// user's flight recorder passes the file's owner), validating everything else as
    /// ``open(name:)`` does. Only root may expect another user than itself.
    package static func open(name: String, expectedOwner: UInt32) throws(TraceError) -> SharedTraceBuffer {
        if let problem = TraceConfiguration.problem(withName: name) { throw TraceError(.invalidName, problem) }
        let path = SharedTraceBuffer.path(forName: name)
        let fd: FileDescriptor
        do {
            // Non-blocking: whatever the name designates (a FIFO, a device), opening it never waits.
            fd = try FileDescriptor.open(FilePath(path), .readWrite, options: [.noFollow, .closeOnExec, .nonBlocking])
        } catch let errno as Errno {
            switch errno {
            case .noSuchFileOrDirectory:
                throw TraceError(.notFound, "no trace object named '\(name)' (\(path) does not exist): is the traced program running?", errno: errno)
            case .tooManySymbolicLinkLevels:
                throw TraceError(.permissionDenied, "\(path) is a symbolic link: refusing to follow it", errno: errno)
            case .permissionDenied:
                throw TraceError(.permissionDenied, "cannot open \(path): it belongs to another user", errno: errno)
            case .isDirectory:
                throw TraceError(.notATraceObject, "\(path) is a directory, not a trace object", errno: errno)
            default:
                throw TraceError(.systemCallFailed, "cannot open \(path)", errno: errno)
            }
        } catch {
            throw TraceError(.systemCallFailed, "cannot open \(path): \(error)")
        }
        defer { try? fd.close() }
        let info = try SystemInfo.status(of: fd, path: path)
        guard info.type == .regular else {
            throw TraceError(.notATraceObject, """
                \(path) is \(SystemInfo.describe(info.type)), not a regular file: a trace object is a file under /dev/shm or \
                an anonymous memory file; check the name given to open it
                """)
        }
        guard info.userID.rawValue == expectedOwner, expectedOwner == geteuid() || geteuid() == 0 else {
            throw TraceError(.permissionDenied, "\(path) belongs to uid \(info.userID.rawValue), not to you (uid \(geteuid())): refusing to use it")
        }
        guard info.permissions.isDisjoint(with: [.groupReadWriteExecute, .otherReadWriteExecute]) else {
            throw TraceError(.permissionDenied, "\(path) is accessible by other users (mode \(String(info.permissions.rawValue & 0o777, radix: 8))): refusing to use it")
        }
        return try map(fd, info: info, name: name, path: path)
    }

    /// Attaches to the trace object in `descriptor`, a descriptor this process inherited (see
    /// `create(_:in:)`), validating everything about it. The descriptor is left open, so that
    /// the processes this one starts inherit it too. No name is involved, so no other user can
    /// substitute an object: the descriptor's owner and permission bits are not checked beyond
    /// its being a regular file of this user.
    ///
    /// - Throws: `TraceError` with `.notFound` (not an open descriptor), `.permissionDenied`,
    ///   `.notATraceObject`, `.unsupportedVersion` or `.corrupted`.
    public static func open(descriptor: Int32) throws(TraceError) -> SharedTraceBuffer {
        try open(descriptor: descriptor, expectedOwner: geteuid())
    }

    /// Attaches to the trace object in `descriptor`, owned by `expectedOwner` (a descriptor
    /// another process passed: root attaching to another user's process expects that user),
    /// validating everything else as ``open(descriptor:)`` does. Only root may expect another
    /// user than itself.
    ///
    /// Another user's descriptor must be an anonymous memory file sealed against shrinking and
    /// growing, so that its owner cannot truncate it under this process's mapping, or the file
    /// `/dev/shm/<sharedName>` itself (same device and inode: a flight recorder, which, having a
    /// name, cannot be sealed), accepted on the terms of ``open(name:expectedOwner:)``: no
    /// group or other permissions.
    package static func open(descriptor: Int32, expectedOwner: UInt32, sharedName: String? = nil) throws(TraceError) -> SharedTraceBuffer {
        let path = "descriptor \(descriptor)"
        let info: Stat
        do {
            info = try FileDescriptor(rawValue: descriptor).stat()
        } catch {
            if error == .badFileDescriptor {
                throw TraceError(.notFound, "\(environmentVariable) names \(path), which is not open in this process: was it started by rseqtrace record?", errno: error)
            }
            throw TraceError(.systemCallFailed, "cannot stat \(path)", errno: error)
        }
        guard info.type == .regular else {
            throw TraceError(.notATraceObject, """
                \(path) is \(SystemInfo.describe(info.type)), not a regular file: a trace object is a file under /dev/shm or \
                an anonymous memory file; check the descriptor number in \(environmentVariable)
                """)
        }
        guard info.userID.rawValue == expectedOwner, expectedOwner == geteuid() || geteuid() == 0 else {
            throw TraceError(.permissionDenied, "\(path) belongs to uid \(info.userID.rawValue), not to you (uid \(geteuid())): refusing to use it")
        }
        if expectedOwner != geteuid() {
            if let sharedName, isFile(info, namedInSharedMemory: sharedName) {
                guard info.permissions.isDisjoint(with: [.groupReadWriteExecute, .otherReadWriteExecute]) else {
                    throw TraceError(.permissionDenied, """
                        \(path) (\(SharedTraceBuffer.path(forName: sharedName))) is accessible by other users \
                        (mode \(String(info.permissions.rawValue & 0o777, radix: 8))): refusing to use it
                        """)
                }
            } else {
                let seals = MemoryFile.seals(FileDescriptor(rawValue: descriptor)) ?? 0
                guard seals & MemoryFile.sizeSeals == MemoryFile.sizeSeals else {
                    let named = sharedName.map { " nor the file \(SharedTraceBuffer.path(forName: $0)) it was said to be" } ?? ""
                    throw TraceError(.permissionDenied, """
                        \(path) of uid \(info.userID.rawValue) is neither an anonymous memory file sealed against resizing\(named): \
                        its owner could truncate it under this process; refusing to map it
                        """)
                }
            }
        }
        return try map(FileDescriptor(rawValue: descriptor), info: info, name: "fd:\(descriptor)", path: path)
    }

    /// Whether the file whose `fstat` is `info` is the regular file `/dev/shm/<name>` (same device
    /// and inode; the name is not followed if it is a symbolic link).
    private static func isFile(_ info: Stat, namedInSharedMemory name: String) -> Bool {
        guard TraceConfiguration.problem(withName: name) == nil,
              let named = try? FilePath(path(forName: name)).stat(followTargetSymlink: false) else { return false }
        return named.type == .regular && named.deviceID == info.deviceID && named.inode == info.inode
    }


    /// Maps and validates the trace object open as `fd` (whose `fstat` is `info`).
    private static func map(_ fd: FileDescriptor, info: Stat, name: String, path: String) throws(TraceError) -> SharedTraceBuffer {
        guard let fileSize = Int(exactly: info.size), fileSize >= TraceLayout.headerSize else {
            throw TraceError(.notATraceObject, "\(path) is \(info.size) bytes, too small to be a trace object")
        }
        guard fileSize <= TraceLayout.maximumTotalSize else {
            throw TraceError(.corrupted, """
                \(path) is \(fileSize) bytes, larger than any trace object (at most \(TraceLayout.maximumTotalSize)): \
                refusing to map it; record into a new trace object
                """)
        }
        // The header is validated from a private copy: a process truncating or rewriting the file
        // meanwhile can neither make validation fault (SIGBUS) nor show it two values of one field.
        // A fresh allocation, freed on every path out of this function.
        let snapshot = UnsafeMutableRawPointer.allocate(byteCount: TraceLayout.headerSize, alignment: 64)
        // SAFETY: allocated just above, not used after this function.
        defer { unsafe snapshot.deallocate() }
        // SAFETY: pread writes at most headerSize bytes into the allocation of that size.
        let read = unsafe pread(fd.rawValue, snapshot, TraceLayout.headerSize, 0)
        let readErrno = Errno(rawValue: Glibc.errno)   // read before anything else can change it
        guard read >= 0 else { throw TraceError(.systemCallFailed, "cannot read the header of \(path)", errno: readErrno) }
        guard read == TraceLayout.headerSize else {
            throw TraceError(.corrupted, """
                \(path) was \(fileSize) bytes but only \(read) bytes of its header could be read: it is being truncated \
                by another process; record into a new trace object
                """)
        }
        // SAFETY: the snapshot holds headerSize initialised bytes (the pread above).
        let validated = try unsafe validateHeader(base: snapshot, fileSize: fileSize, path: path)
        let mappedSize = validated.layout.totalSize   // == fileSize, checked by validateHeader
        // SAFETY: mapping the validated descriptor with the validated size; the result is checked.
        let mapping = unsafe mmap(nil, mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        let mapErrno = Errno(rawValue: Glibc.errno)   // read before anything else can change it
        // SAFETY: comparing the returned address only.
        guard let mapping = unsafe mapping, unsafe mapping != MAP_FAILED else {
            throw TraceError(.systemCallFailed, "cannot map \(path)", errno: mapErrno)
        }
        // SAFETY: mmap succeeded for `mappedSize` bytes; ownership of the mapping moves to the new
        // object, which unmaps it in deinit.
        return unsafe SharedTraceBuffer(
            name: name, layout: validated.layout, mode: validated.mode, ringProtocol: validated.ringProtocol,
            indexing: validated.indexing, clock: validated.clock, bootID: validated.bootID,
            creatorPID: validated.creatorPID, populatesLazily: validated.populatesLazily, isCreator: false,
            base: UnsafeMutableRawPointer(mapping),
            mappedSize: mappedSize, removeWhenClosed: false,
            fileIdentity: (UInt64(info.deviceID.rawValue), UInt64(info.inode.rawValue)))
    }

    private struct ValidatedHeader {
        var layout: TraceLayout, mode: BufferMode, ringProtocol: RingProtocol, indexing: RingIndexing
        var clock: CycleClock, bootID: [UInt8], creatorPID: Int32, populatesLazily: Bool
    }

    /// Checks every header field of the private copy at `base` (`TraceLayout.headerSize` bytes) of
    /// the header of a `fileSize`-byte object and returns the values the object is used with from
    /// then on: nothing in the header is read again for the geometry, so a later write into it
    /// cannot change the layout under its users.
    ///
    /// ## Safety
    /// - `base` must point to `TraceLayout.headerSize` initialised bytes, 8-aligned.
    @unsafe
    private static func validateHeader(base: UnsafeMutableRawPointer, fileSize: Int, path: String) throws(TraceError) -> ValidatedHeader {
        // SAFETY: validateHeader only reads header fields inside the first 4 KiB (the caller's obligation).
        let header = unsafe HeaderWriter(base: unsafe base)
        guard header.get(HeaderField.magic, as: UInt64.self) == TraceLayout.magic else {
            throw TraceError(.notATraceObject, "\(path) does not start with the RseqTrace magic: not a trace object (or not initialised yet)")
        }
        let version = UInt32(header.get(HeaderField.version, as: UInt32.self))
        guard version == TraceLayout.version else {
            throw TraceError(.unsupportedVersion, "\(path) has layout version \(version); this build reads version \(TraceLayout.version): use a matching rseqtrace")
        }
        func corrupted(_ what: String) -> TraceError {
            TraceError(.corrupted, """
                \(path): \(what); the header is inconsistent, refusing to use it: the object is damaged or \
                was written by another program; record into a new trace object
                """)
        }
        /// The refusal of a field whose value is not the one expected.
        func badField(_ name: String, _ field: HeaderField, _ found: UInt64, expected: String) -> TraceError {
            corrupted("header field \(name) (offset \(field.rawValue)) is \(found), expected \(expected)")
        }
        func powerOfTwo(_ value: UInt64, in range: ClosedRange<Int>) -> Bool {
            value >= UInt64(range.lowerBound) && value <= UInt64(range.upperBound) && value & (value &- 1) == 0
        }
        let headerSize = header.get(HeaderField.headerSize, as: UInt32.self)
        guard headerSize == UInt64(TraceLayout.headerSize) else {
            throw badField("headerSize", HeaderField.headerSize, headerSize, expected: "\(TraceLayout.headerSize)")
        }
        let controlSize = header.get(HeaderField.controlSize, as: UInt64.self)
        guard controlSize == UInt64(TraceLayout.controlSize) else {
            throw badField("controlSize", HeaderField.controlSize, controlSize, expected: "\(TraceLayout.controlSize)")
        }
        let cpuRings = header.get(HeaderField.cpuRingCount, as: UInt32.self)
        guard cpuRings >= 1 && cpuRings <= UInt64(TraceLayout.maximumCPURingCount) else {
            throw badField("cpuRingCount", HeaderField.cpuRingCount, cpuRings, expected: "1...\(TraceLayout.maximumCPURingCount)")
        }
        let ringSize = header.get(HeaderField.ringSize, as: UInt64.self)
        guard powerOfTwo(ringSize, in: TraceLayout.minimumRingSize...TraceLayout.maximumRingSize) else {
            throw badField("ringSize", HeaderField.ringSize, ringSize, expected: """
                a power of two in \(TraceLayout.minimumRingSize)...\(TraceLayout.maximumRingSize)
                """)
        }
        let subSize = header.get(HeaderField.subbufferSize, as: UInt64.self)
        guard powerOfTwo(subSize, in: TraceLayout.minimumSubbufferSize...TraceLayout.maximumSubbufferSize) else {
            throw badField("subbufferSize", HeaderField.subbufferSize, subSize, expected: """
                a power of two in \(TraceLayout.minimumSubbufferSize)...\(TraceLayout.maximumSubbufferSize)
                """)
        }
        // Both are powers of two within their bounds: the quotient is exact and cannot trap.
        let perRing = ringSize / subSize
        guard let layout = TraceLayout(cpuRingCount: Int(cpuRings), ringSize: Int(ringSize), subbufferSize: Int(subSize)) else {
            throw corrupted("""
                ringSize \(ringSize) holds \(perRing) sub-buffers of subbufferSize \(subSize), expected \
                2...\(TraceLayout.maximumSubbuffersPerRing)
                """)
        }
        let ringCount = header.get(HeaderField.ringCount, as: UInt32.self)
        guard ringCount == UInt64(layout.ringCount) else {
            throw badField("ringCount", HeaderField.ringCount, ringCount, expected: "\(layout.ringCount) (cpuRingCount + 1)")
        }
        let ringsOffset = header.get(HeaderField.ringsOffset, as: UInt64.self)
        guard ringsOffset == UInt64(layout.ringsOffset) else {
            throw badField("ringsOffset", HeaderField.ringsOffset, ringsOffset,
                           expected: "\(layout.ringsOffset) (registry, lines table and counters of \(layout.ringCount) rings)")
        }
        let lazyPopulation = header.get(HeaderField.lazyPopulation, as: UInt32.self)
        guard lazyPopulation <= 1 else {
            throw badField("lazyPopulation", HeaderField.lazyPopulation, lazyPopulation, expected: "0 or 1")
        }
        let ringStride = header.get(HeaderField.ringStride, as: UInt64.self)
        guard ringStride == UInt64(layout.ringStride) else {
            throw badField("ringStride", HeaderField.ringStride, ringStride, expected: "\(layout.ringStride) (controlSize + ringSize)")
        }
        // The bounds checked above keep this far below Int.max; it is computed checked all the same.
        let (rings, ringsOverflow) = layout.ringCount.multipliedReportingOverflow(by: layout.ringStride)
        let (expectedTotal, totalOverflow) = layout.ringsOffset.addingReportingOverflow(rings)
        guard !ringsOverflow && !totalOverflow && expectedTotal == layout.totalSize else {
            throw corrupted("the ring geometry does not fit in memory (\(layout.ringCount) rings of \(layout.ringStride) bytes)")
        }
        let totalSize = header.get(HeaderField.totalSize, as: UInt64.self)
        guard totalSize == UInt64(expectedTotal) else {
            throw badField("totalSize", HeaderField.totalSize, totalSize, expected: "\(expectedTotal) (ringsOffset + ringCount * ringStride)")
        }
        guard expectedTotal == fileSize else {
            throw corrupted("the file is \(fileSize) bytes but the header describes \(expectedTotal) (truncated?)")
        }
        let protocolValue = header.get(HeaderField.ringProtocol, as: UInt32.self)
        guard let ringProtocol = RingProtocol(rawValue: UInt32(truncatingIfNeeded: protocolValue)) else {
            throw badField("ringProtocol", HeaderField.ringProtocol, protocolValue, expected: "1 (rseq) or 3 (lock-free)")
        }
        let modeValue = header.get(HeaderField.bufferMode, as: UInt32.self)
        guard let mode = BufferMode(rawValue: UInt32(truncatingIfNeeded: modeValue)) else {
            throw badField("bufferMode", HeaderField.bufferMode, modeValue, expected: "0 (discard) or 1 (overwrite)")
        }
        let indexingValue = header.get(HeaderField.indexing, as: UInt32.self)
        guard let indexing = RingIndexing(rawValue: UInt32(truncatingIfNeeded: indexingValue)) else {
            throw badField("indexing", HeaderField.indexing, indexingValue, expected: "0 (cpu_id) or 1 (mm_cid)")
        }
        guard !(indexing == .concurrencyID && mode == .overwrite) else {
            throw corrupted("header fields indexing (offset \(HeaderField.indexing.rawValue)) and bufferMode (offset \(HeaderField.bufferMode.rawValue)) combine mm_cid indexing with overwrite mode, which no trace object uses")
        }
        let state = header.loadState()
        guard state == 1 || state == 2 else {
            throw badField("state", HeaderField.state, UInt64(state), expected: "1 (ready) or 2 (finished)")
        }
        let clock = CycleClock(
            frequency: header.get(HeaderField.cycleFrequency, as: UInt64.self),
            cycleReference: header.get(HeaderField.cycleReference, as: UInt64.self),
            monotonicReference: header.get(HeaderField.monotonicReference, as: UInt64.self),
            realtimeReference: header.get(HeaderField.realtimeReference, as: UInt64.self))
        guard clock.frequency >= 1_000_000 else {
            throw badField("cycleFrequency", HeaderField.cycleFrequency, clock.frequency, expected: "at least 1000000 (Hz)")
        }
        return ValidatedHeader(
            layout: layout, mode: mode, ringProtocol: ringProtocol, indexing: indexing, clock: clock,
            bootID: header.getBytes(HeaderField.bootID, count: 16),
            creatorPID: Int32(bitPattern: UInt32(truncatingIfNeeded: header.get(HeaderField.creatorPID, as: UInt32.self))),
            populatesLazily: lazyPopulation == 1)
    }

    @unsafe
    private init(name: String, layout: TraceLayout, mode: BufferMode, ringProtocol: RingProtocol,
                 indexing: RingIndexing, clock: CycleClock, bootID: [UInt8], creatorPID: Int32,
                 populatesLazily: Bool, isCreator: Bool, base: UnsafeMutableRawPointer, mappedSize: Int, removeWhenClosed: Bool,
                 fileIdentity: (device: UInt64, inode: UInt64)) {
        self.name = name
        self.layout = layout
        self.mode = mode
        self.ringProtocol = ringProtocol
        self.indexing = indexing
        self.clock = clock
        self.bootID = bootID
        self.creatorPID = creatorPID
        self.populatesLazily = populatesLazily
        self.isCreator = isCreator
        // SAFETY: the object owns the mapping from here on (unmapped in deinit).
        unsafe self.base = base
        self.mappedSize = mappedSize
        self.removeWhenClosed = removeWhenClosed
        self.fileIdentity = fileIdentity
        // SAFETY: freshly allocated, initialised here, deinitialised and freed in deinit.
        unsafe producerWriters = UnsafeMutablePointer<RingWriter.State>.allocate(capacity: 2)
        // SAFETY: `base` is the mapping this object owns; the writers live no longer than it.
        unsafe producerWriters.initialize(to: makeWriterState(inCreatingProcess: true))
        // SAFETY: as above; slot 1 of the two allocated.
        unsafe (producerWriters + 1).initialize(to: makeWriterState(inCreatingProcess: false))
    }

    deinit {
        // SAFETY: the mapping belongs to this object; Producers keep it alive, RingViews and
        // RingWriters are package-internal and used only while it is.
        unsafe munmap(base, mappedSize)
        // SAFETY: allocated and initialised in init; Producers holding a pointer to them hold this object.
        unsafe producerWriters.deinitialize(count: 2)
        // SAFETY: as above.
        unsafe producerWriters.deallocate()
        if isCreator && removeWhenClosed { removeName() }
    }

    // MARK: Access

    /// Removes the name from /dev/shm (the mappings stay valid), if it still designates this
    /// object's file; a newer object created under the same name is left alone.
    public func removeName() {
        let path = SharedTraceBuffer.path(forName: name)
        // lstat: a symlink at the name is never this object's file.
        guard let current = try? FilePath(path).stat(followTargetSymlink: false),
              UInt64(current.deviceID.rawValue) == fileIdentity.device,
              UInt64(current.inode.rawValue) == fileIdentity.inode else {
            return
        }
        _ = unsafe unlink(path)  // SAFETY: unlink takes the path by value
    }

    /// The view of ring `index` (`0..<layout.ringCount`; the last one is the slow lane). The view
    /// depends on a borrow of this object, which keeps the mapping alive. `index` comes from the
    /// caller's own iteration over the validated `layout`, never from shared memory: an index out
    /// of range is a programming error and traps.
    @_lifetime(borrow self)
    package func ring(_ index: Int) -> RingView {
        precondition(index >= 0 && index < layout.ringCount, "ring index out of range")
        // SAFETY: index checked; the mapping outlives the view by the type's contract.
        let control = unsafe base.advanced(by: layout.ringsOffset + index * layout.ringStride)
        // SAFETY: index checked; the line entry, control block and data lie inside the mapping,
        // which outlives the view.
        return unsafe RingView(lines: base.advanced(by: layout.linesOffset + index * TraceLayout.lineStride),
                               control: control, data: control.advanced(by: TraceLayout.controlSize),
                               ringSize: layout.ringSize, owner: self)
    }

    /// A producer handle for this process (see `Producer`); it keeps this object alive.
    public func makeProducer() -> Producer {
        // SAFETY: the writer's state and the mapping live as long as this object, which the producer holds.
        unsafe Producer(buffer: self, writer: RingWriter(state: producerWriters + (creatorPID == getpid() ? 0 : 1)))
    }

    /// The state of a non-owning writer of this buffer for this process (see `RingWriter`).
    ///
    /// ## Safety
    /// - This object must stay alive for as long as the state, writers using it and their
    ///   reservations are used (the mapping is unmapped in deinit).
    @unsafe
    package func makeWriterState() -> RingWriter.State {
        // SAFETY: forwarded caller obligation (see `## Safety`).
        unsafe makeWriterState(inCreatingProcess: creatorPID == getpid())
    }

    /// The writer state a process uses; `inCreatingProcess` matters for mm_cid indexing only.
    @unsafe
    private func makeWriterState(inCreatingProcess: Bool) -> RingWriter.State {
        let path: RingWriter.Path
        switch ringProtocol {
        case .lockFree: path = .lockFree
        case .rseq:
            if !RseqRuntime.mode.usesRseq {
                path = .slowLaneOnly          // never mix protocols: this process cannot run rseq
            } else if indexing == .cpuID {
                path = .rseqCPU
            } else {
                path = inCreatingProcess ? .rseqConcurrencyID : .slowLaneOnly
            }
        }
        // SAFETY: the rings start inside the mapping this object owns; the caller keeps it alive.
        return unsafe RingWriter.State(base: base, layout: layout, path: path, mode: mode,
                                       populatesLazily: populatesLazily)
    }

    /// Whether a producer could not populate a sub-buffer (shared memory or the memory limit was
    /// exhausted) and dropped its record (counted in `dropped`).
    package var memoryWasExhausted: Bool {
        // SAFETY: a header word inside the live mapping, accessed atomically.
        unsafe base.sharedWord32(at: HeaderField.memoryExhausted.rawValue).pointee.load(ordering: .relaxed) != 0
    }

    /// Marks the trace finished (producers are done); readers may use it to stop waiting.
    public func markFinished() { unsafe HeaderWriter(base: unsafe base).publishState(2) }  // SAFETY: the header is inside the live mapping

    /// Whether `markFinished()` was called.
    public var isFinished: Bool { unsafe HeaderWriter(base: unsafe base).loadState() == 2 }  // SAFETY: the header is inside the live mapping

    /// Registers this process as an additional producer (statistics only).
    package func noteAttachedProducer() {
        // SAFETY: the counter is an 8-aligned word of the mapped header.
        _ = unsafe base.sharedWord64(at: HeaderField.attachedProducers.rawValue).pointee.wrappingAdd(1, ordering: .relaxed)
    }
}

/// Reads and writes header fields of a mapping.
@safe
struct HeaderWriter {
    let base: UnsafeMutableRawPointer

    func put(_ value: UInt64, at field: HeaderField, as type: UInt32.Type) {
        // SAFETY: `offset` is a HeaderField offset inside the 4 KiB header, aligned for the type.
        unsafe base.storeBytes(of: UInt32(truncatingIfNeeded: value), toByteOffset: field.rawValue, as: UInt32.self)
    }
    func put(_ value: UInt64, at field: HeaderField, as type: UInt64.Type) {
        // SAFETY: as above.
        unsafe base.storeBytes(of: value, toByteOffset: field.rawValue, as: UInt64.self)
    }
    func putBytes(_ bytes: [UInt8], at field: HeaderField, limit: Int) {
        for (i, b) in bytes.prefix(limit).enumerated() {
            // SAFETY: at most `limit` bytes into a header field of that size.
            unsafe base.storeBytes(of: b, toByteOffset: field.rawValue + i, as: UInt8.self)
        }
    }
    func get(_ field: HeaderField, as type: UInt32.Type) -> UInt64 {
        // SAFETY: as in `put`.
        UInt64(unsafe base.load(fromByteOffset: field.rawValue, as: UInt32.self))
    }
    func get(_ field: HeaderField, as type: UInt64.Type) -> UInt64 {
        // SAFETY: as in `put`.
        unsafe base.load(fromByteOffset: field.rawValue, as: UInt64.self)
    }
    func getBytes(_ field: HeaderField, count: Int) -> [UInt8] {
        // SAFETY: as in `putBytes`.
        (0..<count).map { unsafe base.load(fromByteOffset: field.rawValue + $0, as: UInt8.self) }
    }
    private var state: UnsafeMutablePointer<Atomic<UInt32>> {
        // SAFETY: the state word is 4-aligned inside the header.
        unsafe base.sharedWord32(at: HeaderField.state.rawValue)
    }
    func publishState(_ value: UInt32) {
        // SAFETY: see `state`.
        unsafe state.pointee.store(value, ordering: .releasing)
    }
    func loadState() -> UInt32 {
        // SAFETY: see `state`.
        unsafe state.pointee.load(ordering: .acquiring)
    }
}
