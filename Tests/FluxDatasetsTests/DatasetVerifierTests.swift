import Foundation
import Testing
@testable import FluxDatasets

@Suite struct DatasetVerifierTests {
    @Test func verify_writtenDataset_isClean() throws {
        let (folder, _) = Fixtures.dataset
        let manifest = try Manifest.load(path: folder.appendingPathComponent("val.csv").path)
        let report = DatasetVerifier.verify(manifest)
        #expect(report.checked == Fixtures.classes)
        #expect(report.isClean, "\(report.failures)")
    }

    @Test func verify_truncatedRandomAndMissingFiles_reportsEachByNameWithFFmpegsReason() throws {
        let (dataset, _) = Fixtures.dataset
        let folder = Fixtures.temporaryFolder("verify")
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = try Data(contentsOf: dataset.appendingPathComponent("videos/00000.mp4"))
        try good.write(to: folder.appendingPathComponent("good.mp4"))
        try good.prefix(good.count / 2).write(to: folder.appendingPathComponent("truncated.mp4"))
        var random = SceneRandom(seed: 5, video: 0, purpose: .noise)
        try Data((0..<4096).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            .write(to: folder.appendingPathComponent("random.mp4"))
        let text = "path,label\ngood.mp4,0\ntruncated.mp4,1\nrandom.mp4,2\nmissing.mp4,3\n"
        try text.write(to: folder.appendingPathComponent("all.csv"), atomically: true, encoding: .utf8)

        let report = DatasetVerifier.verify(try Manifest.load(path: folder.appendingPathComponent("all.csv").path))
        #expect(report.checked == 4)
        #expect(report.failures.map(\.entry.path) == ["truncated.mp4", "random.mp4", "missing.mp4"])
        #expect(report.failures.map(\.entry.line) == [3, 4, 5])
        for failure in report.failures {
            #expect(!failure.reason.isEmpty && !failure.call.isEmpty)
            #expect(failure.description.contains(folder.appendingPathComponent(failure.entry.path).path))
        }
        #expect(report.failures[0].reason == "Invalid data found when processing input (moov atom not found)")
        #expect(report.failures[1].reason.hasPrefix("Invalid data found when processing input"))
        #expect(report.failures[2].reason == "No such file or directory")
    }
}
