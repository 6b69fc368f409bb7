/// How to create a shared trace object.
public struct TraceConfiguration: Sendable, Hashable {
    /// Name of the object under /dev/shm: 1 to 200 bytes from `A-Z a-z 0-9 . _ -`, not
    /// starting with a dot.
    public var name: String
    /// Bytes of ring per CPU (a power of two, 8 KiB ... 1 GiB).
    public var ringSize: Int
    /// Bytes per sub-buffer (a power of two, at least 256; a ring holds 2 to 256 of them). A record's payload
    /// can be at most `subbufferSize - 64` bytes.
    public var subbufferSize: Int
    /// What happens when a ring is full.
    public var mode: BufferMode
    /// What indexes the rings.
    public var indexing: RingIndexing
    /// Number of per-CPU rings; defaults to the number of possible CPUs.
    public var cpuRingCount: Int?
    /// Remove the name from /dev/shm when the creating `SharedTraceBuffer` is released.
    public var removeWhenClosed: Bool
    /// Populate every ring at creation instead of sub-buffer by sub-buffer as producers first fill
    /// them: the whole size is then held from the start, and producers never pay for a page's first
    /// use (about 20 ns per event during a ring's first lap on a 2-vCPU EPYC VM, 2026-12-06). Off
    /// by default: memory then grows with what is written.
    public var preallocates: Bool = false

    /// A configuration with 1 MiB rings of 64 KiB sub-buffers, discard mode and cpu_id indexing
    /// unless told otherwise.
    public init(name: String, ringSize: Int = 1 << 20, subbufferSize: Int = 1 << 16,
                mode: BufferMode = .discard, indexing: RingIndexing = .cpuID,
                cpuRingCount: Int? = nil, removeWhenClosed: Bool = true) {
        self.name = name
        self.ringSize = ringSize
        self.subbufferSize = subbufferSize
        self.mode = mode
        self.indexing = indexing
        self.cpuRingCount = cpuRingCount
        self.removeWhenClosed = removeWhenClosed
    }

    /// The sub-buffer size used when none is given: 64 KiB, but at most a quarter of `ringSize`
    /// and at least 1/256 of it (64 KiB for 256 KiB to 16 MiB rings, 16 KiB for 64 KiB). For a
    /// ring size that is not a power of two within the layout's limits: 64 KiB (creation then
    /// reports the ring size).
    package static func defaultSubbufferSize(forRingSize size: Int) -> Int {
        let preferred = 64 << 10
        guard size > 0, size & (size - 1) == 0, (8 << 10)...(1 << 30) ~= size else { return preferred }
        return max(size / 256, min(preferred, size / 4))
    }

    /// Checks a shared-object name; returns a message saying what is wrong, or nil.
    package static func problem(withName name: String) -> String? {
        if name.isEmpty || name.utf8.count > 200 {
            return "trace name '\(name)' must be 1 to 200 bytes long"
        }
        if name.hasPrefix(".") { return "trace name '\(name)' must not start with a dot" }
        for c in name.utf8 {
            let ok = (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
            if !ok { return "trace name '\(name)' may only contain letters, digits, '.', '_' and '-'" }
        }
        return nil
    }
}
