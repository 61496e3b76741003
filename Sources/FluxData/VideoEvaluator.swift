import Foundation
import FluxTensor
import FluxTraining
import FluxVideo
import FluxViT

/// Per-video multi-view scores of one evaluation setting (spec §6), what `fluxctl eval` and a sweep cell compute.
///
/// Contract: each video is scored alone, as one forward batch of its `clips × crops` views (clip-major, crops in
/// the order start, centre, end), so its row never depends on which other videos are scored with it: scoring a
/// list in shards and merging them (`VideoScores.merged`) gives the same bits as scoring it whole. A row is the
/// mean over views of each view's softmax, computed in Double in a fixed order. A video that cannot be read
/// (FFmpeg's error, no frames) is reported in `unreadable` with its manifest line and FFmpeg's reason, never
/// dropped silently and never fatal; a setting the model cannot take and a label the model has no class for are
/// thrown.
public enum VideoEvaluator {
    /// Scores `videos` (indices into `manifest.entries`; sorted, repeats scored once) under `setting`.
    ///
    /// - Parameters:
    ///   - decoderThreads: FFmpeg frame threads per video.
    ///   - progress: called after each video with (videos done, total), unreadable ones included.
    /// - Throws: `EvaluationError` for a setting the model cannot take (before any video is read), an index
    ///   outside the manifest, or a label outside 0..<numClasses on any line of the manifest.
    public static func scores(
        model: FluxViTModel, manifest: Manifest, videos: [Int], setting: ViewSetting, decoderThreads: Int = 1,
        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) throws -> VideoScores {
        let tokens = try self.tokens(model: model, setting: setting)
        let K = model.config.numClasses
        let order = Array(Set(videos)).sorted()
        // Everything a user must fix in the request fails here, before minutes of decoding.
        if let bad = order.first(where: { !manifest.entries.indices.contains($0) }) {
            throw EvaluationError.videoOutOfRange(index: bad, count: manifest.entries.count, file: manifest.file)
        }
        // The whole manifest, not only these videos: every shard of a list then fails alike, or none does.
        if let bad = manifest.entries.first(where: { !(0..<K).contains($0.label) }) {
            throw EvaluationError.labelOutOfRange(file: manifest.file, line: bad.line, label: bad.label, classes: K)
        }
        var scores = VideoScores(classes: K)
        scores.probabilities.reserveCapacity(order.count * K)
        for (done, index) in order.enumerated() {
            let entry = manifest.entries[index]
            let views: Tensor
            do {
                views = try self.views(path: entry.url.path, setting: setting, decoderThreads: decoderThreads)
            } catch {
                scores.unreadable.append(UnreadableVideo(index: index, path: entry.path, line: entry.line, reason: "\(error)"))
                progress(done + 1, order.count)
                continue
            }
            let output: ForwardOutput
            do {
                output = try model.forward(video: views, budget: setting.budget, head: setting.head)
            } catch {
                throw EvaluationError.modelRejects(setting: setting, error)
            }
            // `tokens` checked the setting as the forward pass does; the two must agree.
            precondition(output.keptTokens == tokens.kept && output.head == tokens.head,
                         "forward kept \(output.keptTokens) tokens with head \(output.head), expected \(tokens)")
            scores.videos.append(index)
            scores.labels.append(entry.label)
            scores.probabilities += meanSoftmax(output.logits, rows: setting.views, classes: K)
            progress(done + 1, order.count)
        }
        return scores
    }

    /// The tokens each view of `setting` gives `model`, and the head it uses, checked as the forward pass checks
    /// them (no video is read).
    /// - Throws: `EvaluationError.invalidSetting` or `.modelRejects` naming the setting.
    public static func tokens(model: FluxViTModel, setting: ViewSetting) throws -> TokenCount {
        if setting.clips < 1 {
            throw EvaluationError.invalidSetting(setting: setting, reason: "clips is \(setting.clips); take at least 1 temporal clip")
        }
        if setting.crops != 1 && setting.crops != 3 {
            throw EvaluationError.invalidSetting(
                setting: setting, reason: "crops is \(setting.crops); take 1 (centre) or 3 (start, centre, end)")
        }
        do {
            return try model.tokens(frames: setting.frames, size: setting.size, budget: setting.budget, head: setting.head)
        } catch {
            throw EvaluationError.modelRejects(setting: setting, error)
        }
    }

    /// The crop positions of `crops` spatial crops: the centre alone, or start, centre and end.
    public static func positions(crops: Int) -> [CropPosition] {
        crops == 1 ? [.centre] : [.start, .centre, .end]
    }

    /// The `setting.views` test views of the video at `path`, [V, 3, T, R, R], clip-major: view c·crops + k is
    /// temporal clip c at crop position k. Each clip is decoded once for all its crops.
    /// - Throws: `VideoError` when the video cannot be read, or has no frames.
    public static func views(path: String, setting: ViewSetting, decoderThreads: Int = 1) throws -> Tensor {
        let reader = try VideoReader(path: path, threads: decoderThreads)
        guard reader.frameCount > 0 else {
            throw VideoError.decodeFailed(path: path, call: "av_read_frame", reason: "the video stream has no frames")
        }
        let positions = Self.positions(crops: setting.crops)
        var clips: [Tensor] = []
        clips.reserveCapacity(setting.views)
        for clip in 0..<setting.clips {
            let indices = FrameSampling.testIndices(
                frameCount: reader.frameCount, count: setting.frames, clip: clip, clips: setting.clips)
            clips += try reader.testClips(at: indices, size: setting.size, positions: positions)
        }
        return Tensor.stacked(clips)
    }

    /// The mean over `rows` rows of `logits` [rows, classes] of each row's softmax, in Double, rows in order.
    static func meanSoftmax(_ logits: Tensor, rows: Int, classes: Int) -> [Float] {
        var mean = [Double](repeating: 0, count: classes)
        logits.scalars.withUnsafeBufferPointer { all in
            var exps = [Double](repeating: 0, count: classes)
            for r in 0..<rows {
                let row = all[(r * classes)..<((r + 1) * classes)]
                // Subtract the row max: exp overflows for logits above ~709 (Double) and the result is unchanged.
                let top = Double(row.max() ?? 0)
                var sum = 0.0
                for (k, logit) in row.enumerated() {
                    exps[k] = Foundation.exp(Double(logit) - top)
                    sum += exps[k]
                }
                for k in 0..<classes { mean[k] += exps[k] / sum }
            }
        }
        return mean.map { Float($0 / Double(rows)) }
    }
}

/// An evaluation request that cannot be carried out; each case names the setting or the manifest line and the fix.
public enum EvaluationError: Error, CustomStringConvertible {
    /// Views the evaluator does not define.
    case invalidSetting(setting: ViewSetting, reason: String)
    /// The model cannot take clips of the setting (size, frames, budget or head).
    case modelRejects(setting: ViewSetting, ModelError)
    /// A video index outside the manifest.
    case videoOutOfRange(index: Int, count: Int, file: String)
    /// A label the model has no class for: the manifest belongs to another model or dataset.
    case labelOutOfRange(file: String, line: Int, label: Int, classes: Int)

    /// What failed, where, and the fix.
    public var description: String {
        switch self {
        case let .invalidSetting(setting, reason):
            "evaluation setting \(setting.summary): \(reason)."
        case let .modelRejects(setting, error):
            "the model cannot evaluate \(setting.summary): \(error)"
        case let .videoOutOfRange(index, count, file):
            "video \(index) requested from '\(file)', which lists \(count) videos (valid indices 0...\(max(count - 1, 0)))."
        case let .labelOutOfRange(file, line, label, classes):
            "\(file):\(line): label \(label) is outside the model's \(classes) classes (0…\(classes - 1)): the manifest and the model do not match. Evaluate with the model trained on this dataset, or a manifest of its classes."
        }
    }
}

extension ViewSetting {
    /// "8×224², budget 1024, head auto, 2×3 views": the setting as errors and reports name it.
    public var summary: String {
        "\(frames)×\(size)², budget \(budget.map(String.init) ?? "all"), head \(head.map(String.init) ?? "auto"), \(clips)×\(crops) views"
    }
}
