import Foundation
import FluxData
import FluxTensor
import FluxTraining
import FluxVideo
import FluxViT
import Testing

/// `VideoEvaluator` on real encoded videos and a tiny seeded model: each row is the mean of its views' softmax,
/// the views are spec §6's clips and crops, a video's row does not depend on the other videos scored with it, and
/// an unreadable video is reported with its manifest line while the others are scored.
@Suite struct VideoEvaluatorTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// `count` landscape videos (48×32, so the three crops differ) of 10 frames of moving texture, labels 0, 1, 2, …
    /// modulo 5, listed in DIR/eval.csv after a header (video i on line i + 2); `corrupt` entries are garbage bytes.
    static func dataset(count: Int = 4, corrupt: Set<Int> = []) throws -> (folder: URL, manifest: Manifest) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-evaluator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("videos"), withIntermediateDirectories: true)
        var text = "path,label\n"
        for v in 0..<count {
            let relative = "videos/v\(v).mp4"
            let path = folder.appendingPathComponent(relative).path
            if corrupt.contains(v) {
                try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ v) }).write(to: URL(fileURLWithPath: path))
            } else {
                let writer = try MP4VideoWriter(path: path, width: 48, height: 32)
                for t in 0..<10 {
                    var rgb = [UInt8](repeating: 0, count: 48 * 32 * 3)
                    for y in 0..<32 {
                        for x in 0..<48 {
                            let shifted = x + t * (v + 1)
                            let i = (y * 48 + x) * 3
                            rgb[i] = UInt8(truncatingIfNeeded: (shifted * 13) ^ (y * 7 + v * 40))
                            rgb[i + 1] = UInt8(truncatingIfNeeded: (shifted / 6 + y / 6) % 2 == 0 ? 230 : 20)
                            rgb[i + 2] = UInt8(truncatingIfNeeded: x * 5 + y * 3 + t * 17)
                        }
                    }
                    try writer.append(rgb: rgb)
                }
                try writer.finish()
            }
            text += "\(relative),\(v % 5)\n"
        }
        let manifestPath = folder.appendingPathComponent("eval.csv").path
        try text.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        return (folder, try Manifest.load(path: manifestPath))
    }

    /// The tiny test model (patch 4, 5 classes, budgets 24/16/8), seeded and then perturbed so that its logits
    /// differ clearly between views (a fresh init's LayerScale 1e-5 makes every clip look almost alike).
    static func model() throws -> FluxViTModel {
        let config = try FluxViTConfig.load(path: repository.appendingPathComponent("configs/models/tiny-test.yaml").path)
        let model = try FluxViTModel(config: config, threads: 2)
        Initialization.initialize(model.parameters, seed: 11)
        var random = KeyedRandom(seed: 11, key: "evaluator-test")
        for i in 0..<model.parameters.count { model.parameters.values[i] += 0.3 * random.normal() }
        model.parametersChanged()
        return model
    }

    /// The softmax of each row of `logits` [B, K], in Double.
    static func softmax(_ logits: Tensor) -> [[Double]] {
        let K = logits.shape[1]
        return (0..<logits.shape[0]).map { b in
            let row = logits.scalars[(b * K)..<((b + 1) * K)].map(Double.init)
            let top = row.max()!
            let exps = row.map { exp($0 - top) }
            let sum = exps.reduce(0, +)
            return exps.map { $0 / sum }
        }
    }

    static func expectRow(_ scores: VideoScores, _ i: Int, equals expected: [Double], tolerance: Double = 1e-6,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        let K = scores.classes
        let row = scores.probabilities[(i * K)..<((i + 1) * K)].map(Double.init)
        let worst = zip(row, expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= tolerance, "video \(scores.videos[i]): \(row) vs \(expected)", sourceLocation: sourceLocation)
    }

    @Test func scores_twoClipsThreeCrops_rowsSumToOne() throws {
        let (folder, manifest) = try Self.dataset()
        defer { try? FileManager.default.removeItem(at: folder) }
        let setting = ViewSetting(frames: 4, size: 16, clips: 2, crops: 3)
        var calls: [Int] = []
        let scores = try VideoEvaluator.scores(model: try Self.model(), manifest: manifest, videos: [3, 1, 0, 2],
                                               setting: setting) { done, total in
            #expect(total == 4)
            calls.append(done)
        }
        #expect(scores.videos == [0, 1, 2, 3] && scores.labels == [0, 1, 2, 3] && scores.unreadable.isEmpty)
        #expect(calls == [1, 2, 3, 4])
        for i in 0..<4 {
            let sum = scores.probabilities[(i * 5)..<((i + 1) * 5)].reduce(0, +)
            #expect(abs(sum - 1) < 1e-5, "row \(i) sums to \(sum)")
        }
    }

    @Test func scores_oneView_equalsSoftmaxOfDirectForwardOfCentreClip() throws {
        let (folder, manifest) = try Self.dataset(count: 2)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try Self.model()
        let scores = try VideoEvaluator.scores(model: model, manifest: manifest, videos: [0, 1],
                                               setting: ViewSetting(frames: 4, size: 16))
        for (i, entry) in manifest.entries.enumerated() {
            let reader = try VideoReader(path: entry.url.path, threads: 1)
            let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: 4)
            let clip = try reader.testClip(at: indices, size: 16, position: .centre)
            let logits = try model.forward(video: clip.reshaped([1] + clip.shape)).logits
            Self.expectRow(scores, i, equals: Self.softmax(logits)[0])
        }
    }

    @Test func scores_twoClipsThreeCrops_equalMeanOfSixIndependentViews() throws {
        let (folder, manifest) = try Self.dataset(count: 2)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try Self.model()
        let setting = ViewSetting(frames: 4, size: 16, clips: 2, crops: 3)
        let scores = try VideoEvaluator.scores(model: model, manifest: manifest, videos: [0, 1], setting: setting)
        for (i, entry) in manifest.entries.enumerated() {
            var views: [Tensor] = []
            var mean = [Double](repeating: 0, count: 5)
            for clip in 0..<2 {
                for position in [CropPosition.start, .centre, .end] {
                    let reader = try VideoReader(path: entry.url.path, threads: 1)
                    let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: 4, clip: clip, clips: 2)
                    let view = try reader.testClip(at: indices, size: 16, position: position)
                    views.append(view)
                    let probabilities = Self.softmax(try model.forward(video: view.reshaped([1] + view.shape)).logits)[0]
                    for k in 0..<5 { mean[k] += probabilities[k] / 6 }
                }
            }
            #expect(Set(views.map(\.scalars)).count == 6, "six distinct views, or the test proves little")
            // The evaluator's batch is the six views exactly, in clip-major order.
            #expect(try VideoEvaluator.views(path: entry.url.path, setting: setting) == Tensor.stacked(views))
            // A batch of six and six batches of one may round differently in the GEMMs.
            Self.expectRow(scores, i, equals: mean, tolerance: 1e-5)
        }
    }

    @Test func scores_shardsMerged_equalWholeListBitForBit() throws {
        let (folder, manifest) = try Self.dataset()
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try Self.model()
        let setting = ViewSetting(frames: 4, size: 16, budget: 40, clips: 2, crops: 3)
        let whole = try VideoEvaluator.scores(model: model, manifest: manifest, videos: [0, 1, 2, 3], setting: setting)
        let later = try VideoEvaluator.scores(model: model, manifest: manifest, videos: [2, 3], setting: setting)
        let earlier = try VideoEvaluator.scores(model: model, manifest: manifest, videos: [0, 1], setting: setting)
        let merged = VideoScores.merged([later, earlier])
        #expect(merged == whole)
        #expect(merged.probabilities.map(\.bitPattern) == whole.probabilities.map(\.bitPattern))
    }

    @Test func scores_corruptVideo_reportedWithItsLineWhileOthersAreScored() throws {
        let (folder, manifest) = try Self.dataset(count: 4, corrupt: [2])
        defer { try? FileManager.default.removeItem(at: folder) }
        var last = (0, 0)
        let scores = try VideoEvaluator.scores(model: try Self.model(), manifest: manifest, videos: [0, 1, 2, 3],
                                               setting: ViewSetting(frames: 4, size: 16, clips: 2, crops: 3)) { last = ($0, $1) }
        #expect(scores.videos == [0, 1, 3])
        #expect(scores.labels == [0, 1, 3])
        #expect(scores.probabilities.count == 3 * 5)
        #expect(last == (4, 4), "progress counts the unreadable video too")
        let unreadable = try #require(scores.unreadable.first)
        #expect(scores.unreadable.count == 1)
        #expect(unreadable.index == 2 && unreadable.line == 4 && unreadable.path == "videos/v2.mp4")
        #expect(unreadable.reason.contains("v2.mp4"), "\(unreadable.reason)")
    }

    @Test func scores_budgetBelowSampledTokens_keepsTheModelsSelection() throws {
        let (folder, manifest) = try Self.dataset(count: 2)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try Self.model()
        // 4 frames of (16/4)² = 16 tokens: N = 64; 2 groups of 2 frames keep int(16/64 · 32) = 8 each.
        let setting = ViewSetting(frames: 4, size: 16, budget: 16)
        let tokens = try VideoEvaluator.tokens(model: model, setting: setting)
        #expect(tokens == TokenCount(sampled: 64, kept: 16, head: 1), "head 1 trains at 16 tokens")
        let reader = try VideoReader(path: manifest.entries[1].url.path, threads: 1)
        let clip = try reader.testClip(at: FrameSampling.testIndices(frameCount: reader.frameCount, count: 4), size: 16)
        let direct = try model.forward(video: clip.reshaped([1] + clip.shape), budget: 16)
        #expect(direct.keptTokens == tokens.kept && direct.sampledTokens == tokens.sampled && direct.head == tokens.head)
        let scores = try VideoEvaluator.scores(model: model, manifest: manifest, videos: [1], setting: setting)
        Self.expectRow(scores, 0, equals: Self.softmax(direct.logits)[0])
        // Without a budget every token is kept, and the head nearest 64 tokens (head 0, 24) is used.
        #expect(try VideoEvaluator.tokens(model: model, setting: ViewSetting(frames: 4, size: 16))
            == TokenCount(sampled: 64, kept: 64, head: 0))
    }

    @Test func scores_labelOutsideModelClasses_throwsNamingTheLine() throws {
        let (folder, manifest) = try Self.dataset(count: 1)
        defer { try? FileManager.default.removeItem(at: folder) }
        var wrong = manifest
        wrong.entries[0].label = 7
        let error = try #require(throws: EvaluationError.self) {
            try VideoEvaluator.scores(model: try Self.model(), manifest: wrong, videos: [0],
                                      setting: ViewSetting(frames: 4, size: 16))
        }
        #expect("\(error)".contains("eval.csv:2: label 7 is outside the model's 5 classes"), "\(error)")
    }

    @Test func scores_settingTheModelCannotTake_throwsNamingTheSettingBeforeReadingVideos() throws {
        let (folder, manifest) = try Self.dataset(count: 1, corrupt: [0])
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try Self.model()
        let odd = try #require(throws: EvaluationError.self) {
            try VideoEvaluator.scores(model: model, manifest: manifest, videos: [0],
                                      setting: ViewSetting(frames: 4, size: 18))
        }
        #expect("\(odd)".contains("4×18², budget all, head auto, 1×1 views") && "\(odd)".contains("patch_size 4"), "\(odd)")
        let crops = try #require(throws: EvaluationError.self) {
            try VideoEvaluator.scores(model: model, manifest: manifest, videos: [0],
                                      setting: ViewSetting(frames: 4, size: 16, crops: 2))
        }
        #expect("\(crops)".contains("take 1 (centre) or 3"), "\(crops)")
        #expect(throws: EvaluationError.self) {
            try VideoEvaluator.scores(model: model, manifest: manifest, videos: [1], setting: ViewSetting(frames: 4, size: 16))
        }
    }
}
