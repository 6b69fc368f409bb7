import CRseqTrace
import Synchronization
import SystemPackage

/// A counter in a trace buffer, incremented without any atomic read-modify-write: each increment
/// is one restartable add to the running CPU's own slot of the counter (docs/BufferProtocol.md §8),
/// so threads on different CPUs never contend for a cache line. The consumer sums the slots and
/// writes the sums into the trace as `metrics:counter` events, at each drain round where a sum
/// changed and at the end of the recording.
///
/// ```swift
/// let requests = try buffer.makeCounter(named: "http.requests")
/// requests.increment()
/// ```
///
/// A counter is registered once per name in its buffer (by any process attached to it); making the
/// same name again, in this or another process, gives the same counter. A process that cannot use
/// rseq (`ProducerMode.fallback`), and a thread on a CPU the buffer has no block for, adds to the
/// counter's shared slot with an atomic add instead. The counter keeps its buffer mapped.
@safe
public final class TraceCounter: @unchecked Sendable {
    /// The name the counter is registered under.
    public let name: String
    /// The counter's slot in its buffer's counter area.
    package let slot: Int
    /// The buffer the counter lives in (kept mapped by this reference).
    package let buffer: SharedTraceBuffer
    /// The counter's word in block 0; the word of block `b` is `b * counterLineSize` bytes after it.
    @usableFromInline package let perCPUWords: UnsafeMutablePointer<UInt64>
    /// The counter's word in the block updated with atomic adds.
    @usableFromInline let atomicWord: UnsafeMutablePointer<Atomic<UInt64>>
    /// Blocks indexed by `cpu_id` (the buffer's CPU ring count).
    @usableFromInline let cpuBlocks: UInt32
    /// Whether this process runs rseq sequences (else every increment is an atomic add).
    @usableFromInline let usesRseq: Bool

    /// ## Safety
    /// - `slot` must be a registered counter slot of `buffer`.
    @unsafe
    init(name: String, slot: Int, buffer: SharedTraceBuffer) {
        self.name = name
        self.slot = slot
        self.buffer = buffer
        let layout = buffer.layout
        // SAFETY: the slot's words lie in the counter area of the mapping `buffer` owns, which
        // this object keeps alive; per-CPU words are only updated by rseq sequences.
        unsafe perCPUWords = buffer.base.advanced(by: layout.counterOffset(slot: slot, block: 0))
            .assumingMemoryBound(to: UInt64.self)
        // SAFETY: as above; the atomic block's words are only accessed atomically.
        unsafe atomicWord = buffer.base.sharedWord64(at: layout.counterOffset(slot: slot, block: layout.atomicCounterBlock))
        cpuBlocks = UInt32(layout.cpuRingCount)
        usesRseq = RseqRuntime.mode.usesRseq
    }

    /// Adds `amount` to the counter. Never throws, never allocates, never waits: one restartable
    /// add to the running CPU's slot (an atomic add when the thread cannot use rseq).
    @inlinable
    @inline(__always)
    public func increment(by amount: Int64 = 1) {
        if usesRseq {
            // SAFETY: the sequence adds to `perCPUWords + cpu * 16` words for a `cpu` below
            // `cpuBlocks`, the running CPU's word of this counter inside the live mapping.
            let outcome = unsafe rseqtrace_load_cbgeu_addv__cpu_id(
                perCPUWords, UInt64(TraceLayout.counterLineSize), cpuBlocks, UInt64(bitPattern: amount))
            if outcome == 0 { return }
        }
        incrementSlow(amount)
    }

    /// An aborted add (retried), a thread not registered yet (registered here in self-registration
    /// mode), or no rseq: the atomic block.
    @inline(never)
    @usableFromInline
    func incrementSlow(_ amount: Int64) {
        if usesRseq {
            for _ in 0..<RingWriter.maximumAttempts {
                // SAFETY: as in `increment(by:)`.
                let outcome = unsafe rseqtrace_load_cbgeu_addv__cpu_id(
                    perCPUWords, UInt64(TraceLayout.counterLineSize), cpuBlocks, UInt64(bitPattern: amount))
                if outcome == 0 { return }
                if outcome == 1 {
                    guard RseqRuntime.prepareCurrentThreadSlow(), rseqtrace_current_cpu_id() < cpuBlocks else { break }
                }
            }
        }
        // SAFETY: a word of the live mapping, only ever accessed atomically.
        _ = unsafe atomicWord.pointee.wrappingAdd(UInt64(bitPattern: amount), ordering: .relaxed)
    }

    /// The counter's current value: the sum of its slots (each read once; concurrent increments may
    /// or may not be included).
    public var value: Int64 { buffer.counterValue(slot: slot) }

    /// Brings the value back to zero: subtracts the value read from the atomic block. Increments
    /// made while the slots are being read may survive the reset.
    public func reset() {
        let current = value
        // SAFETY: a word of the live mapping, only ever accessed atomically.
        _ = unsafe atomicWord.pointee.wrappingSubtract(UInt64(bitPattern: current), ordering: .relaxed)
    }
}

extension SharedTraceBuffer {
    /// The event the consumer writes a counter's value as: `value` (signed 64-bit) then `name`.
    public static let counterSampleSchema = EventSchema(name: "metrics:counter", fields: [
        EventField("value", .signed(bits: 64)), EventField("name", .string(maxBytes: TraceLayout.maximumCounterNameSize)),
    ])

    private var counterCountWord: UnsafeMutablePointer<Atomic<UInt32>> {
        // SAFETY: a 4-aligned word of the mapped header.
        unsafe base.sharedWord32(at: HeaderField.counterCount.rawValue)
    }

    /// Registered counter slots, bounded by the table's size (another process can write anything there).
    package var registeredCounterCount: Int {
        // SAFETY: see counterCountWord.
        min(Int(unsafe counterCountWord.pointee.load(ordering: .acquiring)), TraceLayout.counterSlotCount)
    }

    /// The counter named `name` in this buffer, registered now if no process registered it yet.
    ///
    /// - Throws: `.invalidConfiguration` for an empty name, a name longer than 120 UTF-8 bytes or
    ///   containing NUL, or a full table (512 counters); `.systemCallFailed` when the registry lock or
    ///   the memory of the counter's values cannot be had.
    public func makeCounter(named name: String) throws(TraceError) -> TraceCounter {
        let slot = try registerCounter(named: name)
        // Registered once per buffer, so that a consumer can write counter samples.
        _ = try registerEvent(SharedTraceBuffer.counterSampleSchema)
        // SAFETY: `slot` was registered just above.
        return unsafe TraceCounter(name: name, slot: slot, buffer: self)
    }

    /// The slot of counter `name`, allocated (and its group of values populated) when new.
    package func registerCounter(named name: String) throws(TraceError) -> Int {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= TraceLayout.maximumCounterNameSize, !bytes.contains(0) else {
            throw TraceError(.invalidConfiguration, """
                counter name '\(name)' is empty, longer than \(TraceLayout.maximumCounterNameSize) UTF-8 bytes or \
                contains NUL: use a shorter name
                """)
        }
        // SAFETY: the registry mutex lives in the mapped header and was initialised at creation.
        let mutex = unsafe base.advanced(by: HeaderField.registryMutex.rawValue)
        // SAFETY: as above.
        let rc = unsafe rseqtrace_mutex_lock(mutex, 5_000_000_000)
        guard rc == 0 else {
            throw TraceError(.systemCallFailed, "cannot lock the registry of '\(self.name)' to register counter '\(name)'",
                             errno: Errno(rawValue: rc))
        }
        // SAFETY: locked just above.
        defer { unsafe rseqtrace_mutex_unlock(mutex) }
        let count = registeredCounterCount
        for slot in 0..<count where counterName(slot: slot) == name { return slot }
        guard count < TraceLayout.counterSlotCount else {
            throw TraceError(.invalidConfiguration, """
                the counter table of '\(self.name)' is full (\(TraceLayout.counterSlotCount) counters): \
                cannot register counter '\(name)'; use fewer distinct counter names
                """)
        }
        let slot = count
        if populatesLazily && slot % TraceLayout.countersPerLine == 0 {
            let page = TraceLayout.pageSize
            let start = layout.counterOffset(slot: slot, block: 0) & ~(page - 1)
            let end = min((layout.counterOffset(slot: slot, block: 0) + layout.counterGroupSize + page - 1) & ~(page - 1),
                          layout.ringsOffset)
            // SAFETY: the range lies in the counter area of the live mapping.
            let populated = unsafe rseqtrace_populate_write(base.advanced(by: start), end - start)
            guard populated == 0 else {
                throw TraceError(.systemCallFailed, """
                    cannot allocate the shared memory of counter '\(name)' in '\(self.name)' (\(end - start) bytes): \
                    free some memory or room in /dev/shm
                    """, errno: Errno(rawValue: populated))
            }
        }
        let entry = layout.counterNameOffset(slot: slot)
        for (i, byte) in bytes.enumerated() {
            // SAFETY: inside the slot's name entry (at most maximumCounterNameSize bytes after its length word).
            unsafe base.storeBytes(of: byte, toByteOffset: entry + 8 + i, as: UInt8.self)
        }
        // SAFETY: the entry's 8-aligned length word, in the mapped name table.
        unsafe base.storeBytes(of: UInt64(bytes.count), toByteOffset: entry, as: UInt64.self)
        // SAFETY: see counterCountWord; publishes the entry written above.
        unsafe counterCountWord.pointee.store(UInt32(slot + 1), ordering: .releasing)
        return slot
    }

    /// The name of registered counter `slot`; `counter_<slot>` when its entry is damaged.
    package func counterName(slot: Int) -> String {
        let entry = layout.counterNameOffset(slot: slot)
        // SAFETY: the entry's length word, in the mapped name table.
        let length = unsafe base.load(fromByteOffset: entry, as: UInt64.self)
        guard length >= 1, length <= UInt64(TraceLayout.maximumCounterNameSize) else { return "counter_\(slot)" }
        // SAFETY: `length` bytes of the entry, inside the name table.
        return unsafe String(decoding: UnsafeRawBufferPointer(start: base.advanced(by: entry + 8), count: Int(length)),
                             as: UTF8.self)
    }

    /// The value of counter `slot`: the wrapping sum of its words in every block.
    package func counterValue(slot: Int) -> Int64 {
        var sum: UInt64 = 0
        for block in 0..<layout.counterBlockCount {
            // SAFETY: an 8-aligned word of the counter area, read atomically (rseq adds and atomic
            // adds are both single-copy atomic 8-byte stores).
            sum &+= unsafe base.sharedWord64(at: layout.counterOffset(slot: slot, block: block)).pointee.load(ordering: .relaxed)
        }
        return Int64(bitPattern: sum)
    }

    /// The value of counter `slot` in each block (per CPU, then the atomic block).
    package func counterBlockValues(slot: Int) -> [UInt64] {
        (0..<layout.counterBlockCount).map { block in
            // SAFETY: as in `counterValue(slot:)`.
            unsafe base.sharedWord64(at: layout.counterOffset(slot: slot, block: block)).pointee.load(ordering: .relaxed)
        }
    }

    /// Every registered counter, in slot order, with its current value.
    package func counterValues() -> [(name: String, value: Int64)] {
        (0..<registeredCounterCount).map { (counterName(slot: $0), counterValue(slot: $0)) }
    }
}
