import Foundation
import FluxTensor
import FluxViT

/// Validation accuracy of a model at each training budget with its head (spec §4: head j serves
/// budget j), over samples the caller supplies in order.
public enum Evaluation {
    /// Top-1 and top-5 accuracy at one budget.
    public struct Accuracy: Equatable, Sendable, Codable {
        public var budget: Int
        public var head: Int
        public var top1: Double
        public var top5: Double
        public var samples: Int
    }

    /// Runs every sample at every budget of `model.config.budgets`, `batch` samples at a time.
    /// - Parameter sample: the i-th sample (nil when it cannot be read: skipped and counted).
    /// - Returns: one accuracy per budget, and the number of unreadable samples.
    public static func accuracy(
        model: FluxViTModel, count: Int, batch: Int = 4, sample: (Int) throws -> Sample?
    ) throws -> (accuracies: [Accuracy], unreadable: Int) {
        let budgets = model.config.budgets, K = model.config.numClasses
        var correct1 = [Int](repeating: 0, count: budgets.count), correct5 = correct1
        var seen = 0, unreadable = 0
        var start = 0
        while start < count {
            var clips: [Sample] = []
            for i in start..<min(start + batch, count) {
                if let s = try sample(i) { clips.append(s) } else { unreadable += 1 }
            }
            start += batch
            guard !clips.isEmpty else { continue }
            // Clips of one batch share a shape; group by shape to be safe.
            for group in Dictionary(grouping: clips, by: { $0.clip.shape }).values {
                let video = Tensor.stacked(group.map(\.clip))
                for (j, budget) in budgets.enumerated() {
                    let out = try model.forward(video: video, budget: budget, head: j)
                    for (b, s) in group.enumerated() {
                        let row = Array(out.logits.scalars[b * K..<(b + 1) * K])
                        let ranked = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                        if ranked.first == s.label { correct1[j] += 1 }
                        if ranked.prefix(5).contains(s.label) { correct5[j] += 1 }
                    }
                }
                seen += group.count
            }
        }
        let accuracies = budgets.enumerated().map { j, budget in
            Accuracy(budget: budget, head: j, top1: Double(correct1[j]) / Double(max(seen, 1)),
                     top5: Double(correct5[j]) / Double(max(seen, 1)), samples: seen)
        }
        return (accuracies, unreadable)
    }
}

/// An append-only metrics log, one JSON object a line (what `fluxctl train` writes beside its
/// checkpoints). Each line is flushed as written, so a crash loses at most the current line.
public final class MetricsLog {
    private let handle: FileHandle

    /// Opens (creating or appending to) `path`.
    public init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CheckpointError.unwritable(path: path, reason: "cannot open the metrics log for writing")
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    deinit { try? handle.close() }

    /// Appends one step's report.
    public func append(_ report: StepReport) {
        write([
            "kind": "step", "step": report.step, "epoch": report.epoch, "frames": report.plan.frames,
            "resolution": report.plan.resolution, "loss": report.meanLoss, "loss_terms": report.losses,
            "samples": report.samples, "skipped_samples": report.skippedSamples, "lr": report.learningRate,
            "grad_norm": report.gradientNorm, "skipped_non_finite": report.skippedNonFinite,
            "non_finite_budget": report.nonFiniteBudget as Any? ?? NSNull(), "seconds": report.seconds,
        ])
    }

    /// Appends validation results.
    public func append(step: Int, accuracies: [Evaluation.Accuracy]) {
        write([
            "kind": "validation", "step": step,
            "budgets": accuracies.map { ["budget": $0.budget, "head": $0.head, "top1": $0.top1, "top5": $0.top5, "samples": $0.samples] },
        ])
    }

    private func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.write(data + Data("\n".utf8))
    }
}
