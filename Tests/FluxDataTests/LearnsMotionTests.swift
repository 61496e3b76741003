import Foundation
import FluxTestKit
import Testing

/// The end-to-end bar of the video pipeline: `fluxctl dataset synth` writes real encoded videos whose classes
/// differ only by motion, and `fluxctl train --local` learns them well above chance (25% for 4 classes).
///
/// A shorter run than the figure in docs/benchmarks.md ("Learning the synthetic motion task": 500 steps):
/// 400 steps of 32 clips on 400 videos a class, about 3 minutes on 2 idle cores. Learning leaves a plateau at a
/// seed-dependent moment: over seeds 1, 2, 4 and 7 this run ended at 61–98% with 1 thread, and seed 7 at 57.2%
/// with the 2 threads used here (that section has the table). The seed is fixed, so the run is the same on every
/// machine with the same thread count.
@Suite struct LearnsMotionTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test(.timeLimit(.minutes(10)))
    func trainLocal_onSyntheticMotion_reachesAtLeast45PercentTop1() throws {
        try #require(BuiltTool.exists("fluxctl"), "build fluxctl first (make test does)")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-learns-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("motion").path
        let synth = try BuiltTool.run("fluxctl", ["dataset", "synth", "--out", data, "--classes", "4",
                                                  "--videos-per-class", "500", "--frames", "16", "--size", "64",
                                                  "--seed", "7"])
        try #require(synth.status == 0, "\(synth.stderr)")

        let train = try BuiltTool.run("fluxctl", [
            "train", "--local", "--model", Self.repository.appendingPathComponent("configs/models/tiny-motion.yaml").path,
            "--train", data + "/train.csv", "--val", data + "/val.csv", "--out", folder.appendingPathComponent("run").path,
            "--batch", "32", "--epochs", "8", "--lr", "3e-3", "--warmup", "20", "--layer-decay", "1",
            "--no-flip", "--crop-scale", "1", "--seed", "7", "--threads", "2",
        ])
        try #require(train.status == 0, "\(train.stderr)")
        #expect(train.stderr.contains("on 1600 videos: 400 steps of 32 clips"), "\(train.stderr)")
        // "  budget 128    head 0  top-1  72.2%  top-5 100.0%": one line per training budget.
        let top1 = train.stdout.split(separator: "\n").filter { $0.contains("top-1") }.compactMap { line -> Double? in
            let fields = line.split(separator: " ")
            guard let i = fields.firstIndex(of: "top-1"), i + 1 < fields.count else { return nil }
            return Double(fields[i + 1].dropLast())
        }
        #expect(top1.count == 3, "\(train.stdout)")
        #expect((top1.first ?? 0) >= 45, "validation top-1 at the full budget: \(train.stdout)")
    }
}
