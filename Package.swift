// swift-tools-version: 6.2
import CompilerPluginSupport
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
        // Opt-in: `@TraceEvent` / `#trace`. Only targets that import RseqTraceMacros build swift-syntax.
        .library(name: "RseqTraceMacros", targets: ["RseqTraceMacros"]),
        // Forwards typed events to LTTng-UST; links liblttng-ust only with `--traits LTTng`.
        .library(name: "RseqTraceLTTng", targets: ["RseqTraceLTTng"]),
        // Opt-in backends for the Swift server ecosystem's APIs (swift-log, swift-distributed-tracing, swift-metrics),
        // and one bootstrap for all of them. Only targets that import them build those packages.
        .library(name: "RseqTraceLogging", targets: ["RseqTraceLogging"]),
        .library(name: "RseqTraceTracing", targets: ["RseqTraceTracing"]),
        .library(name: "RseqTraceMetrics", targets: ["RseqTraceMetrics"]),
        .library(name: "RseqTraceEcosystem", targets: ["RseqTraceEcosystem"]),
        .executable(name: "rseqtrace-example-server", targets: ["rseqtrace-example-server"]),
        // Test support: a shared object with tracepoints that rseqtrace-testhelper loads with dlopen.
        .library(name: "RseqTraceTestPlugin", type: .dynamic, targets: ["RseqTraceTestPlugin"]),
    ],
    traits: [
        .trait(
            name: "LTTng",
            description: "Build the LTTng-UST bridge (RseqTraceLTTng, `rseqtrace demo --backend lttng`). Needs liblttng-ust-dev and pkg-config."
        ),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-syntax.git", from: "603.0.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
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

        // MARK: Producer library (and the whole ring protocol, Sources/RseqTrace/Protocol)
        .target(
            name: "RseqTrace",
            dependencies: [
                "CRseqTrace",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            // `Reservation` is ~Escapable: its lifetime depends on the `Producer` that made it.
            swiftSettings: auditedUnsafe + [.enableExperimentalFeature("Lifetimes")]
        ),

        // MARK: Consumer library
        .target(
            name: "RseqTraceConsumer",
            dependencies: ["RseqTrace"],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Trace formats (CTF writer)
        .target(
            name: "RseqTraceFormats",
            dependencies: [
                "RseqTrace", "RseqTraceConsumer",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Support for the executables and tests (not a product)
        // One child-process spawner, one stderr printer, one clock/sleep helper and the pthread
        // launcher, shared by the CLI, the example, the benchmarks and the tests.
        .target(
            name: "CRseqTraceSupport",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "RseqTraceSupport",
            dependencies: [
                "RseqTrace", "CRseqTraceSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Executables
        .executableTarget(
            name: "rseqtrace",
            dependencies: [
                "RseqTrace", "RseqTraceConsumer", "RseqTraceFormats", "RseqTraceSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .target(name: "RseqTraceLTTng", condition: .when(traits: ["LTTng"])),
            ],
            swiftSettings: auditedUnsafe
        ),

        // An instrumented example program that `rseqtrace record` can trace.
        .executableTarget(
            name: "rseqtrace-example",
            dependencies: ["RseqTrace", "RseqTraceSupport"],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Macros (opt-in; swift-syntax stays out of the producer library and the release demo)
        .macro(
            name: "RseqTraceMacroPlugin",
            dependencies: [
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
                .product(name: "SwiftDiagnostics", package: "swift-syntax"),
            ],
            path: "Sources/RseqTraceMacroPlugin"
        ),
        .target(
            name: "RseqTraceMacros",
            dependencies: ["RseqTrace", "RseqTraceMacroPlugin"],
            swiftSettings: auditedUnsafe
        ),

        // MARK: LTTng bridge (trait LTTng)
        // liblttng-ust 2.13 through pkg-config; only targets built with the trait link it.
        .systemLibrary(
            name: "CLTTngUST",
            pkgConfig: "lttng-ust",
            providers: [.apt(["liblttng-ust-dev"])]
        ),
        // The tracepoint provider (C only because LTTng-UST's provider API is C). Without the trait it
        // compiles to stubs, so `swift build` needs no liblttng-ust (SwiftPM still compiles it).
        .target(
            name: "CRseqTraceLTTng",
            dependencies: [.target(name: "CLTTngUST", condition: .when(traits: ["LTTng"]))],
            cSettings: [
                .define("_GNU_SOURCE"),
                .define("RSEQTRACE_WITH_LTTNG", to: "1", .when(traits: ["LTTng"])),
                .headerSearchPath("provider"),
            ]
        ),
        .target(
            name: "RseqTraceLTTng",
            dependencies: ["RseqTrace", "CRseqTraceLTTng"],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Swift server ecosystem backends (opt-in products)
        // A swift-log LogHandler, a swift-distributed-tracing Tracer, a swift-metrics MetricsFactory
        // (per-CPU counters), and the bootstrap of all three. The RseqTrace product itself never
        // depends on these packages.
        .target(
            name: "RseqTraceLogging",
            dependencies: ["RseqTrace", .product(name: "Logging", package: "swift-log")],
            swiftSettings: auditedUnsafe
        ),
        .target(
            name: "RseqTraceTracing",
            dependencies: ["RseqTrace", .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: auditedUnsafe
        ),
        .target(
            name: "RseqTraceMetrics",
            dependencies: ["RseqTrace", .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: auditedUnsafe
        ),
        .target(
            name: "RseqTraceEcosystem",
            dependencies: [
                "RseqTraceLogging", "RseqTraceTracing", "RseqTraceMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: auditedUnsafe
        ),
        // A small server-like program that uses only the ecosystem APIs, traced by `rseqtrace record`.
        .executableTarget(
            name: "rseqtrace-example-server",
            dependencies: [
                "RseqTraceEcosystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: auditedUnsafe
        ),

        // MARK: Benchmarks (Tools/bench)
        // Not a product: built and run by Tools/bench (release). The C part holds the baselines and
        // the malloc interposer that counts allocations; the LTTng-UST workload is a separate C
        // program Tools/bench compiles with gcc (Benchmarks/lttng), so liblttng-ust is optional.
        .target(
            name: "CRseqTraceBench",
            path: "Benchmarks/CRseqTraceBench",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .executableTarget(
            name: "rseqtrace-bench",
            dependencies: [
                "RseqTrace", "RseqTraceConsumer", "RseqTraceFormats", "RseqTraceSupport", "CRseqTraceBench",
                // Forwards to LTTng-UST only when built with --traits LTTng (stubs otherwise).
                "RseqTraceLTTng",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Benchmarks/rseqtrace-bench",
            swiftSettings: auditedUnsafe
        ),

        // The ecosystem backends next to swift-log's and swift-distributed-tracing's own handlers
        // (not part of Tools/bench, so that its build needs neither package).
        .executableTarget(
            name: "rseqtrace-ecosystem-bench",
            dependencies: [
                "RseqTrace", "RseqTraceConsumer", "RseqTraceLogging", "RseqTraceTracing", "RseqTraceMetrics",
                "RseqTraceSupport", "CRseqTraceBench",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Benchmarks/rseqtrace-ecosystem-bench",
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
            dependencies: ["RseqTrace", "RseqTraceConsumer", "RseqTraceSupport", "CRseqTraceTestSupport"],
            path: "Tests/RseqTraceTestPayloads",
            swiftSettings: auditedUnsafe
        ),
        // Loaded with dlopen by rseqtrace-testhelper (never linked into it): its own copy of RseqTrace.
        .target(
            name: "RseqTraceTestPlugin",
            dependencies: ["RseqTrace", "CRseqTraceTestSupport"],
            path: "Tests/RseqTraceTestPlugin",
            swiftSettings: auditedUnsafe
        ),
        .executableTarget(
            name: "rseqtrace-testhelper",
            dependencies: ["RseqTrace", "RseqTraceConsumer", "RseqTraceFormats", "RseqTraceMacros", "RseqTraceSupport",
                           "CRseqTraceTestSupport", "RseqTraceTestPayloads"],
            path: "Tests/rseqtrace-testhelper",
            swiftSettings: auditedUnsafe
        ),
        // The stress matrix over the public API (Tools/test runs it in a release build; the test
        // suite runs a light subset). No swift-syntax, so its release build stays small.
        .executableTarget(
            name: "rseqtrace-stress",
            dependencies: ["RseqTrace", "RseqTraceConsumer", "RseqTraceSupport", "CRseqTraceTestSupport",
                           "RseqTraceTestPayloads"],
            path: "Tests/rseqtrace-stress",
            swiftSettings: auditedUnsafe
        ),
        .testTarget(
            name: "RseqTraceTests",
            dependencies: [
                "RseqTrace", "RseqTraceConsumer", "RseqTraceFormats", "RseqTraceSupport", "CRseqTrace",
                "CRseqTraceLTTng", "CRseqTraceTestSupport", "RseqTraceTestPayloads",
                "rseqtrace-testhelper", "rseqtrace-stress", "rseqtrace", "rseqtrace-example",
            ],
            swiftSettings: auditedUnsafe
        ),
        // Scenarios of the ecosystem backends that RseqTraceEcosystemTests record and check.
        .executableTarget(
            name: "rseqtrace-ecosystem-testhelper",
            dependencies: [
                "RseqTraceLogging", "RseqTraceTracing", "RseqTraceMetrics", "RseqTraceEcosystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Tests/rseqtrace-ecosystem-testhelper",
            swiftSettings: auditedUnsafe
        ),
        .testTarget(
            name: "RseqTraceEcosystemTests",
            dependencies: [
                "RseqTraceLogging", "RseqTraceTracing", "RseqTraceMetrics", "RseqTraceEcosystem", "RseqTraceFormats",
                "RseqTraceSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                "RseqTrace", "rseqtrace", "rseqtrace-example-server", "rseqtrace-ecosystem-testhelper",
            ],
            swiftSettings: auditedUnsafe
        ),
        .testTarget(
            name: "RseqTraceMacroTests",
            dependencies: [
                "RseqTraceMacroPlugin", "RseqTraceMacros", "RseqTrace", "RseqTraceConsumer",
                .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacroExpansion", package: "swift-syntax"),
            ],
            swiftSettings: auditedUnsafe
        ),
    ],
    swiftLanguageModes: [.v6]
)
