import ArgumentParser
import RseqTrace

/// The trace-buffer options `demo` and `record` share.
struct BufferOptions: ParsableArguments {
    @Option(help: "Full-buffer policy: discard (drop and count) or overwrite (flight recorder).")
    var mode: BufferMode = .discard

    @Option(name: .customLong("buffer-size"), help: "Ring size per CPU, a power of two (e.g. 256K, 16M).")
    var bufferSize: ByteSize = ByteSize(argument: "16M")!

    @Option(name: .customLong("subbuffer-size"), help: "Sub-buffer size, a power of two (e.g. 16K, 64K).")
    var subbufferSize: ByteSize = ByteSize(argument: "64K")!

    func validate() throws {
        guard TraceLayout(cpuRingCount: 1, ringSize: bufferSize.bytes, subbufferSize: subbufferSize.bytes) != nil else {
            throw ValidationError("""
                --buffer-size \(bufferSize.bytes) and --subbuffer-size \(subbufferSize.bytes) must be powers of two \
                with 8K <= buffer-size <= 1G, 256 <= subbuffer-size <= 16M, and 2 to 256 sub-buffers per buffer
                """)
        }
    }

    /// A configuration for a new trace object named `name`.
    func configuration(name: String) -> TraceConfiguration {
        TraceConfiguration(name: name, ringSize: bufferSize.bytes, subbufferSize: subbufferSize.bytes, mode: mode)
    }
}
