import Foundation
import Testing
@testable import FluxVideo

@Suite struct DatasetVerifierTests {
    @Test func verify_writtenDataset_isClean() throws {
        let (folder, _) = try Fixtures.dataset()
        let manifest = try Manifest.load(path: folder.appendingPathComponent("val.csv").path)
        let report = DatasetVerifier.verify(manifest)
        #expect(report.checked == Fixtures.classes)
        #expect(report.isClean, "\(report.failures)")
    }

    @Test func verify_truncatedRandomAndMissingFiles_reportsEachByNameWithFFmpegsReason() throws {
        let (dataset, _) = try Fixtures.dataset()
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

    @Test func verify_zeroedMediaData_reportsTheDecodeFailure() throws {
        let (dataset, summary) = try Fixtures.dataset()
        let folder = Fixtures.temporaryFolder("zeroed")
        defer { try? FileManager.default.removeItem(at: folder) }
        // Keep the container intact (the moov box opens) and blank the coded frames in the mdat box.
        var bytes = [UInt8](try Data(contentsOf: dataset.appendingPathComponent("videos/00000.mp4")))
        let tag = Array("mdat".utf8)
        let at = try #require((4..<(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == tag })
        let size = bytes[(at - 4)..<at].reduce(0) { $0 << 8 | Int($1) }
        for i in (at + 4)..<(at - 4 + size) { bytes[i] = 0 }
        try Data(bytes).write(to: folder.appendingPathComponent("zeroed.mp4"))
        try "zeroed.mp4 0\n".write(to: folder.appendingPathComponent("list.txt"), atomically: true, encoding: .utf8)

        let report = DatasetVerifier.verify(try Manifest.load(path: folder.appendingPathComponent("list.txt").path))
        let failure = try #require(report.failures.first)
        #expect(failure.entry.path == "zeroed.mp4")
        #expect(!failure.call.isEmpty && !failure.reason.isEmpty, "\(failure)")
        #expect(failure.description.contains(folder.appendingPathComponent("zeroed.mp4").path))
        // The moov box opens, but zeroed H.264 holds no IDR picture: the reader's packet index finds no keyframe
        // before anything is decoded.
        if summary.encoder == "libx264" {
            #expect(failure.call == "av_read_frame" && failure.reason == "the video stream has no keyframe", "\(failure)")
        }
    }
}
