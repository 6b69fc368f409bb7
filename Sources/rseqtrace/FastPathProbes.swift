import RseqTrace

// Out-of-line copies of the producer fast paths, so that `Tools/check-fastpath` can disassemble
// exactly what an instrumented call site compiles to and prove it makes no call into the Swift
// runtime or libc (no retain/release, exclusivity check, allocation, lock or system call). The
// demo runs them, so they are real code, not dead code.

/// Copy-commit of a 24-byte payload.
@inline(never)
func fastPathProbeCopyCommit(_ producer: Producer, _ thread: UInt32, _ sequence: UInt64) -> Bool {
    producer.write(eventID: DemoEvent.tick, value: DemoTick(thread: thread, sequence: sequence))
}

/// Reserve, fill in place, commit.
@inline(never)
func fastPathProbeReserveCommit(_ producer: Producer, _ thread: UInt32, _ sequence: UInt64) -> Bool {
    guard let reservation = producer.reserve(eventID: DemoEvent.tick, payloadSize: MemoryLayout<DemoTick>.size) else {
        return false
    }
    reservation.store(DemoTick(thread: thread, sequence: sequence), at: 0)
    producer.commit(reservation)
    return true
}

/// The typed API: one `Tracepoint.emit` (state load, size, reserve, three stores, commit).
@inline(never)
func fastPathProbeTypedEmit(_ thread: UInt32, _ sequence: UInt64) {
    demoTickTracepoint.emit(sequence, DemoTick.check(thread: thread, sequence: sequence), thread)
}

/// A disabled typed tracepoint: one load and a branch (the demo disables `demo:disabled`).
@inline(never)
func fastPathProbeDisabled(_ thread: UInt32, _ sequence: UInt64) {
    demoDisabledTracepoint.emit(sequence, thread)
}

/// A typed tracepoint with a text field: the String's UTF-8 bytes are copied straight into the
/// record (no formatting, no allocation, no retain/release).
@inline(never)
func fastPathProbeTypedText(_ text: String, _ sequence: UInt64) {
    demoTextTracepoint.emit(sequence, TraceString(text))
}

/// A per-CPU counter increment: one restartable add on the running CPU's slot.
@inline(never)
func fastPathProbeCounterIncrement(_ counter: TraceCounter, _ amount: Int64) {
    counter.increment(by: amount)
}
