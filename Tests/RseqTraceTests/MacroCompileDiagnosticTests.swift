import Foundation
import RseqTraceSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the compiler tells a user whose `@TraceEvent` struct has a property of a type that is not a
/// trace field (a struct of theirs): the expansion is type-checked by the real compiler against the
/// modules and macro plugin built next to the tests, as a user's build would.
@Suite("Macro diagnostics from the compiler")
struct MacroCompileDiagnosticTests {
    static let swiftc = "/opt/swift/usr/bin/swiftc"

    /// `swiftc -typecheck` of `source` with the built RseqTrace modules and macro plugin.
    static func typecheck(_ source: String, name: String) throws -> ChildProcess.Outcome {
        let build = HelperProcess.buildDirectory
        let root = PackageManifestTests.root
        let scratch = build + "/../../checkouts"
        let file = "/tmp/rseqtrace-macro-\(getpid())-\(name).swift"
        try Data(source.utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try HelperProcess.run(swiftc, [
            "-typecheck", "-I", build + "/Modules",
            "-Xcc", "-fmodule-map-file=" + root + "/Sources/CRseqTrace/include/module.modulemap",
            "-Xcc", "-fmodule-map-file=" + scratch + "/swift-system/Sources/CSystem/include/module.modulemap",
            "-load-plugin-executable", build + "/RseqTraceMacroPlugin-tool#RseqTraceMacroPlugin",
            file,
        ], environment: HelperProcess.childEnvironment(), timeout: .seconds(120))
    }

    static let preamble = """
        import RseqTrace
        import RseqTraceMacros

        struct Point { var x: Int32; var y: Int32 }
        enum Shape: UInt8, TraceEnum { case circle, square }

        """

    @Test("a struct-typed property is an error that lists the field types and says what to do; a valid event compiles",
          .enabled(if: HelperProcess.isExecutable(swiftc), "needs the swift toolchain at /opt/swift"),
          .timeLimit(.minutes(3)))
    func structPropertyGetsTheMacrosMessage() throws {
        // The same harness accepts a valid event, so a failure below is the diagnostic, not the set-up.
        let valid = try Self.typecheck(Self.preamble + """
            @TraceEvent("app:moved")
            struct Moved { var id: UInt64; var shape: Shape; var x: Int32; var y: Int32 }
            func use() { Moved.emit(id: 1, shape: .circle, x: 2, y: 3) }
            """, name: "valid")
        #expect(valid.exitCode == 0, "\(valid)")

        let invalid = try Self.typecheck(Self.preamble + """
            @TraceEvent("app:moved")
            struct Moved { var id: UInt64; var position: Point }
            """, name: "struct")
        #expect(invalid.exitCode != 0, "\(invalid)")
        let firstError = invalid.stderr.split(separator: "\n").first { $0.contains("error:") }.map(String.init) ?? ""
        #expect(firstError.contains("'fieldType' is unavailable: a @TraceEvent property must be an integer, Bool, Float, "
                                    + "Double, a string, [UInt8], TraceString<N>, TraceBytes<N> or an enum conforming to "
                                    + "TraceEnum; a struct or class is not a field: declare the members you want traced "
                                    + "as properties of the event"), "\(invalid.stderr)")
        #expect(invalid.stderr.contains("RseqTrace.TraceEventFieldCheck.fieldType(Point.self)"), "\(invalid.stderr)")
    }
}
