import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a user's build pulls in: the package manifest (`swift package dump-package`), checked target
/// by target.
@Suite("Package manifest")
struct PackageManifestTests {
    /// This source tree's root.
    static let root: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)   // Tests/RseqTraceTests/PackageManifestTests.swift
        return parts.joined(separator: "/")
    }()

    static let swift = "/opt/swift/usr/bin/swift"

    @Test("only RseqTraceMacros builds swift-syntax: no other product reaches the macro plugin or a swift-syntax product",
          .enabled(if: HelperProcess.isExecutable(swift), "needs the swift toolchain at /opt/swift"),
          .timeLimit(.minutes(2)))
    func swiftSyntaxOnlyForMacros() throws {
        // A scratch path of its own: the manifest is read without touching the build directory in use.
        let scratch = "/tmp/rseqtrace-manifest-\(getpid())"
        defer { CTFEndToEndTests.removeTree(scratch) }
        let dump = try HelperProcess.run(Self.swift, ["package", "--package-path", Self.root, "--scratch-path", scratch, "dump-package"],
                                         environment: HelperProcess.childEnvironment(), timeout: .seconds(90))
        #expect(dump.exitCode == 0, "\(dump)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let targets = try #require(json["targets"] as? [[String: Any]])
        let products = try #require(json["products"] as? [[String: Any]])
        // Each target's dependencies: local targets by name, and the packages of product dependencies.
        var localDependencies: [String: [String]] = [:]
        var packageDependencies: [String: [String]] = [:]
        for target in targets {
            let name = try #require(target["name"] as? String)
            for dependency in target["dependencies"] as? [[String: Any]] ?? [] {
                if let entry = (dependency["byName"] ?? dependency["target"]) as? [Any], let other = entry.first as? String {
                    localDependencies[name, default: []].append(other)
                } else if let entry = dependency["product"] as? [Any], entry.count >= 2, let package = entry[1] as? String {
                    packageDependencies[name, default: []].append(package)
                }
            }
        }
        var checked = 0
        for product in products {
            let name = try #require(product["name"] as? String)
            var pending = product["targets"] as? [String] ?? []
            var reached = Set<String>()
            while let target = pending.popLast() {
                guard reached.insert(target).inserted else { continue }
                pending += localDependencies[target] ?? []
            }
            let usesSyntax = reached.contains("RseqTraceMacroPlugin")
                || reached.contains { packageDependencies[$0]?.contains("swift-syntax") == true }
            #expect(usesSyntax == (name == "RseqTraceMacros"), "product \(name) reaches \(reached.sorted())")
            checked += 1
        }
        #expect(checked >= 5)
    }
}
