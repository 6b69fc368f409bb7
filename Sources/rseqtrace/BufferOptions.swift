import ArgumentParser
import RseqTrace

/// The trace-buffer options `demo` and `record` share.
struct BufferOptions: ParsableArguments {
    @Option(help: "Full-buffer policy: discard (drop and count) or overwrite (flight recorder).")
    var mode: BufferMode = .discard

    @Option(name: .customLong("buffer-size"), help: "Ring size per CPU, a power of two (e.g. 256K, 16M).")
    var bufferSize: ByteSize = ByteSize(bytes: 16 << 20)

    @Option(name: .customLong("subbuffer-size"), help: ArgumentHelp("""
        Sub-buffer size, a power of two (e.g. 16K, 64K). Default: 64K, but at most a quarter of \
        --buffer-size and at least 1/256 of it (64K for 256K to 16M buffers, 16K for 64K).
        """, valueName: "subbuffer-size"))
    var explicitSubbufferSize: ByteSize?

    @Flag(help: """
        Give the buffer all its memory at start instead of as it fills, so that producers never pay \
        for a page's first use during each ring's first lap.
        """)
    var preallocate = false

    /// The sub-buffer size: as given, or derived from the buffer size.
    var subbufferSize: ByteSize { explicitSubbufferSize ?? Self.defaultSubbufferSize(forBufferSize: bufferSize) }

    /// `TraceConfiguration.defaultSubbufferSize(forRingSize:)`: 64K clamped to buffer/256 ... buffer/4.
    static func defaultSubbufferSize(forBufferSize buffer: ByteSize) -> ByteSize {
        ByteSize(bytes: TraceConfiguration.defaultSubbufferSize(forRingSize: buffer.bytes))
    }

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
        var configuration = TraceConfiguration(name: name, ringSize: bufferSize.bytes, subbufferSize: subbufferSize.bytes, mode: mode)
        configuration.preallocates = preallocate
        return configuration
    }
}
