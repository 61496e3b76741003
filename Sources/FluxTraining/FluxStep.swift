import FluxTensor
import FluxViT

/// The loss terms of one Flux step (spec §5), summed over this rank's samples.
public struct FluxLoss: Equatable, Sendable {
    /// Cross-entropy of heads 0, 1, 2 (sums over samples).
    public var crossEntropy: [Double]
    /// Alignment of budgets 1 and 2 (sums over samples of the per-sample element mean).
    public var alignment: [Double]
    /// Samples the sums cover.
    public var samples: Int
    /// The first budget (0, 1, 2) whose loss or gradients were not finite, if any.
    public var nonFiniteBudget: Int?

    /// Mean total loss per sample.
    public var meanTotal: Double { (crossEntropy.reduce(0, +) + alignment.reduce(0, +)) / Double(max(samples, 1)) }
    /// [ce.0, ce.1, ce.2, align.1, align.2], the order `StepTotals.lossSums` uses.
    public var terms: [Double] { crossEntropy + alignment }
}

/// One Flux training step's gradient computation (spec §5): the batch is forwarded three times,
/// with budgets largest, middle, least and heads 0, 1, 2, each budget's backward right after its
/// own forward, so only one budget's activations are alive. Gradients of the loss *sum* over this
/// rank's samples are added to `model.parameters.gradients`; the caller divides by the global
/// sample count after reduction, so the result does not depend on how the batch is split.
public enum FluxStep {
    /// Adds the gradients of Σ_samples [CE₀ + CE₁ + CE₂ + SL1(proj₀(f₁), sg(f₀)) + SL1(proj₁(f₂), sg(f₀))].
    /// - Parameters:
    ///   - video: [B, 3, T, R, R], normalized.
    ///   - labels: B class indices.
    ///   - budgets: the three training budgets, largest first.
    public static func accumulateGradients(
        model: FluxViTModel, video: Tensor, labels: [Int], budgets: [Int], labelSmoothing: Float
    ) throws -> FluxLoss {
        let B = video.shape.first ?? 0, K = model.config.numClasses, D = model.config.clipEmbedDim
        guard labels.count == B else { throw TrainingError.labelCount(labels: labels.count, clips: B) }
        if let bad = labels.first(where: { !(0..<K).contains($0) }) {
            throw TrainingError.labelOutOfRange(label: bad, classes: K)
        }
        var loss = FluxLoss(crossEntropy: [], alignment: [], samples: B)
        var target = Tensor(shape: [B, D])
        for j in 0..<3 {
            let out = try model.trainingForward(video: video, budget: budgets[j], head: j)
            var dLogits = Tensor(shape: [B, K])
            let ce = out.logits.scalars.withUnsafeBufferPointer { logits in
                dLogits.scalars.withUnsafeMutableBufferPointer { d in
                    CrossEntropy.sumForwardBackward(
                        logits: logits.baseAddress!, labels: labels, classes: K, smoothing: labelSmoothing, dLogits: d.baseAddress!)
                }
            }
            loss.crossEntropy.append(Double(ce))
            var projection: (index: Int, gradient: Tensor)?
            if j == 0 {
                target = out.feature  // sg(f₀): a copy, never differentiated
            } else {
                let pred = j == 1 ? out.proj0 : out.proj1
                var dPred = Tensor(shape: [B, D])
                let align = pred.scalars.withUnsafeBufferPointer { p in
                    target.scalars.withUnsafeBufferPointer { t in
                        dPred.scalars.withUnsafeMutableBufferPointer { d in
                            AlignmentLoss.sumForwardBackward(pred: p.baseAddress!, target: t.baseAddress!, rows: B, dims: D, dPred: d.baseAddress!)
                        }
                    }
                }
                loss.alignment.append(Double(align))
                projection = (j - 1, dPred)
            }
            model.backward(OutputGradients(logits: dLogits, projection: projection))
            if loss.nonFiniteBudget == nil {
                let p = model.parameters
                let finiteLoss = loss.terms.allSatisfy(\.isFinite)
                // One vectorized pass (the C kernel of the exact reduction's block maxima), not a scalar closure.
                if !finiteLoss || FixedPointKernels.blockMax(p.gradients, count: p.count).nonFinite { loss.nonFiniteBudget = j }
            }
        }
        return loss
    }
}

/// Training input that cannot be used.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    case labelCount(labels: Int, clips: Int)
    case labelOutOfRange(label: Int, classes: Int)
    case nonFiniteStreak(steps: Int, limit: Int)
    case datasetTooSmall(samples: Int, globalBatch: Int)
    case exactReductionUnsupported(reducer: String)

    public var description: String {
        switch self {
        case let .labelCount(l, c): "\(l) labels for \(c) clips; give one label per clip"
        case let .labelOutOfRange(label, classes):
            "label \(label) is outside 0..<\(classes) (num_classes); check the manifest's labels or the model's num_classes"
        case let .nonFiniteStreak(steps, limit):
            "\(steps) steps in a row had a non-finite loss or gradient (limit \(limit)); lower the learning rate or check the data"
        case let .datasetTooSmall(samples, batch):
            "the dataset has \(samples) samples, fewer than one global batch of \(batch); lower the batch size or add data"
        case let .exactReductionUnsupported(reducer):
            "reduction: exact needs a reducer with an exact max and integer sum; \(reducer) has none (use reduction: fast)"
        }
    }
}
