// swift-tools-version: 6.2
import PackageDescription

/// Targets that touch raw memory: every unsafe expression must be marked `unsafe` (and, by house rule,
/// carry a `// SAFETY:` line; `Tools/check-unsafe` enforces that).
let auditedUnsafe: [SwiftSetting] = [
    .strictMemorySafety(),
    .treatWarning("StrictMemorySafety", as: .error),
]

let package = Package(
    name: "RseqTrace",
    products: [
        .library(name: "RseqTrace", targets: ["RseqTrace"]),
        .library(name: "RseqTraceConsumer", targets: ["RseqTraceConsumer"]),
        .library(name: "RseqTraceFormats", targets: ["RseqTraceFormats"]),
        .executable(name: "rseqtrace", targets: ["rseqtrace"]),
        .executable(name: "rseqtrace-example", targets: ["rseqtrace-example"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // MARK: C — only the rseq ABI, the asm critical sections and the syscalls Swift cannot call.
        .target(
            name: "CRseqTrace",
            // Debug builds (what `swift test` runs) carry the race-widening injection points;
            // release builds (demo, benchmarks, the fast-path disassembly check) do not. See the
            // `__OPTIMIZE__` guard in CRseqTrace.h: the sections are compiled where imported.
            cSettings: [.define("_GNU_SOURCE")]
        ),

        // MARK: Producer library
        .target(
            name: "RseqTrace",
            dependencies: [
                "CRseqTrace",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Consumer library
        .target(
            name: "RseqTraceConsumer",
            dependencies: [
                "RseqTrace", "CRseqTrace",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Trace formats (CTF writer)
        .target(
            name: "RseqTraceFormats",
            dependencies: [
                "RseqTrace",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Tools
        .executableTarget(
            name: "rseqtrace",
            dependencies: [
                "RseqTrace", "RseqTraceConsumer", "RseqTraceFormats",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/rseqtrace",
            swiftSettings: auditedUnsafe
        ),

        // An instrumented example program that `rseqtrace record` can trace.
        .executableTarget(
            name: "rseqtrace-example",
            dependencies: ["RseqTrace", "RseqTraceConsumer"],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Test support
        .target(
            name: "CRseqTraceTestSupport",
            path: "Tests/CRseqTraceTestSupport",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "RseqTraceTestPayloads",
            dependencies: ["RseqTrace", "RseqTraceConsumer", "CRseqTraceTestSupport"],
            path: "Tests/RseqTraceTestPayloads",
            swiftSettings: auditedUnsafe
        ),
        .executableTarget(
            name: "rseqtrace-testhelper",
            dependencies: ["RseqTrace", "RseqTraceConsumer", "CRseqTraceTestSupport", "RseqTraceTestPayloads"],
            path: "Tests/rseqtrace-testhelper",
            swiftSettings: auditedUnsafe
        ),
        .testTarget(
            name: "RseqTraceTests",
            dependencies: [
                "RseqTrace", "RseqTraceConsumer", "RseqTraceFormats", "CRseqTrace", "CRseqTraceTestSupport",
                "RseqTraceTestPayloads",
                "rseqtrace-testhelper", "rseqtrace", "rseqtrace-example",
            ],
            swiftSettings: auditedUnsafe
        ),
    ],
    swiftLanguageModes: [.v6]
)
