import RseqTrace
import RseqTraceSupport
import RseqTraceTestPayloads
import Testing

// The stress matrix (StressMatrix in RseqTraceTestPayloads), each cell run by `rseqtrace-stress
// cell NAME` in its own process: debug builds run the light subset, RSEQTRACE_STRESS=full runs
// every cell. Cells of `StressMatrix.knownFailingModes` report XFAIL/XPASS and do not fail.

/// Whether RSEQTRACE_STRESS=full asks for every cell.
let fullStressMatrix = SystemInfo.environmentValue("RSEQTRACE_STRESS") == "full"

/// Where the stress executable is built (next to this test bundle).
var stressExecutable: String { HelperProcess.buildDirectory + "/rseqtrace-stress" }

@Suite(.serialized)
struct StressMatrixTests {
    static var cells: [StressCell] { fullStressMatrix ? StressMatrix.allCells : StressMatrix.lightCells }

    #if DEBUG
    static let seconds = StressMatrix.debugSeconds
    #else
    static let seconds = StressMatrix.releaseSeconds
    #endif

    @Test("stress cell", arguments: cells)
    func cell(_ cell: StressCell) {
        let outcome = StressCellRunner.run(cell, executable: stressExecutable, seconds: Self.seconds)
        print("StressMatrix: \(outcome.line)")
        #expect(!outcome.verdict.failsRun,
                "\(cell.name) failed: \(outcome.failures.joined(separator: "; "))\n\(outcome.diagnostics.prefix(2000))")
    }

    /// The checks bite: the cell fails when the verifier's input is tampered with (one payload
    /// byte flipped, one timestamp moved back, one record seen twice) or when one emitted record
    /// is unaccounted for.
    @Test("a tampered record fails its cell", arguments: ["payload", "timestamp", "duplicate", "count"])
    func tampered(_ tamper: String) throws {
        let cell = try #require(StressMatrix.cell(named: "rseq/discard/inproc/paced/nosig/t6"))
        let outcome = StressCellRunner.run(cell, executable: stressExecutable, seconds: 0.5, tamper: tamper)
        print("StressMatrix (tamper \(tamper)): \(outcome.line)")
        #expect(outcome.verdict == .fail)
        let expected = ["payload": "damaged: 1 ", "timestamp": "timestamps: 1 ", "duplicate": "duplicates: 1 ",
                        "count": "accounting: "][tamper]!
        #expect(outcome.failures.count == 1 && outcome.failures[0].hasPrefix(expected), "\(outcome.failures)")
    }

    @Test func cellNamesAreUniqueAndTheLightSubsetCoversEveryDimension() {
        let names = StressMatrix.allCells.map(\.name)
        #expect(names.count == 48)
        #expect(Set(names).count == names.count)
        let light = StressMatrix.lightCells
        #expect(light.count == 12)
        #expect(Set(light.map(\.mode)) == Set(ProcessMode.allCases))
        #expect(Set(light.map(\.buffer)) == [.discard, .overwrite])
        #expect(Set(light.map(\.drainer)) == Set(DrainerPlacement.allCases))
        #expect(Set(light.map(\.pacing)) == Set(Pacing.allCases))
        #expect(Set(light.map(\.signals)) == Set(SignalLoad.allCases))
        #expect(Set(light.map(\.threads)) == [6, 16])
    }

    @Test func verdicts() {
        let parsed = CellReport.parse("cell: name=x emitted=3 failures=damaged: 1 | stalled: a, b")
        #expect(parsed.fields == ["name": "x", "emitted": "3"])
        #expect(parsed.failures == ["damaged: 1", "stalled: a, b"])
        #expect(CellReport.parse("cell: name=x failures=none").failures == [])
    }
}

extension StressCell: CustomTestStringConvertible {
    public var testDescription: String { name }
}
