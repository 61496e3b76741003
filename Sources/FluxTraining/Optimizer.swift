import Foundation
import FluxViT

/// Hyperparameters of the optimizer and its schedule (spec §5).
public struct OptimizerConfig: Equatable, Sendable, Codable {
    public var baseLearningRate: Double = 1e-3
    public var warmupStartLearningRate: Double = 1e-6
    public var finalLearningRate: Double = 1e-6
    public var warmupIterations: Int = 0
    public var weightDecay: Double = 0.05
    public var layerDecay: Double = 0.75
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-8
    /// Clip the global gradient norm to this, when set.
    public var clipGradNorm: Double?

    public init() {}
}

/// The learning-rate schedule of spec §5, per iteration: `warmup` values linspace(start, base)
/// with both ends included, then a half cosine from base down to final over the rest.
public struct LearningRateSchedule: Equatable, Sendable {
    public let values: [Double]

    /// The schedule over `totalIterations` (E·I) with `warmup` (W) warm-up iterations.
    public init(config: OptimizerConfig, totalIterations: Int) {
        let W = min(config.warmupIterations, totalIterations)
        var values: [Double] = []
        if W == 1 {
            values.append(config.warmupStartLearningRate)
        } else if W > 1 {
            for i in 0..<W {
                values.append(config.warmupStartLearningRate
                    + (config.baseLearningRate - config.warmupStartLearningRate) * Double(i) / Double(W - 1))
            }
        }
        let rest = totalIterations - W
        for i in 0..<rest {
            values.append(config.finalLearningRate + 0.5 * (config.baseLearningRate - config.finalLearningRate)
                * (1 + cos(Double.pi * Double(i) / Double(rest))))
        }
        self.values = values
    }

    /// The value at `iteration` (the last value past the end).
    public func value(at iteration: Int) -> Double {
        values.isEmpty ? 0 : values[min(max(iteration, 0), values.count - 1)]
    }
}

/// Which parameters decay and how fast each learns (spec §5).
public struct ParameterGroups: Sendable {
    /// Per slot (layout order): learning-rate scale from layer-wise decay.
    public let learningRateScale: [Double]
    /// Per slot: the weight decay applied (0 for excluded parameters).
    public let weightDecay: [Double]

    public init(store: ParameterStore, config: OptimizerConfig) {
        let depth = store.config.depth
        learningRateScale = store.slots.map { slot in
            pow(config.layerDecay, Double(depth + 1 - Self.layerID(slot.name, depth: depth)))
        }
        weightDecay = store.slots.map { slot in
            Self.isDecayed(name: slot.name, shape: slot.shape) ? config.weightDecay : 0
        }
    }

    /// Layer id: 0 for cls_token, pos_embed and patch_embed.*, i+1 for blocks.i.*, depth+1 else.
    public static func layerID(_ name: String, depth: Int) -> Int {
        if name == "cls_token" || name == "pos_embed" || name.hasPrefix("patch_embed.") { return 0 }
        if name.hasPrefix("blocks.") {
            let index = name.dropFirst("blocks.".count).prefix { $0.isNumber }
            return (Int(index) ?? 0) + 1
        }
        return depth + 1
    }

    /// No decay for 1-D parameters, biases, pos_embed and cls_token.
    public static func isDecayed(name: String, shape: [Int]) -> Bool {
        !(shape.count == 1 || name.hasSuffix(".bias") || name == "pos_embed" || name == "cls_token")
    }
}

/// AdamW (decoupled weight decay, PyTorch's `torch.optim.AdamW`) over a `ParameterStore`'s flat
/// buffers, with per-parameter learning-rate scales and decay (spec §5).
///
/// The moments live in two flat buffers of the store's layout, so a checkpoint writes them by name
/// (`exp_avg.NAME`, `exp_avg_sq.NAME`).
public final class AdamW {
    public let config: OptimizerConfig
    public let groups: ParameterGroups
    /// Steps taken (PyTorch's `state['step']`, the same for every parameter).
    public private(set) var step: Int = 0
    public let expAvg: UnsafeMutablePointer<Float>
    public let expAvgSq: UnsafeMutablePointer<Float>
    let store: ParameterStore

    public init(store: ParameterStore, config: OptimizerConfig) {
        self.store = store
        self.config = config
        self.groups = ParameterGroups(store: store, config: config)
        expAvg = .allocate(capacity: store.count)
        expAvg.initialize(repeating: 0, count: store.count)
        expAvgSq = .allocate(capacity: store.count)
        expAvgSq.initialize(repeating: 0, count: store.count)
    }

    deinit {
        expAvg.deallocate()
        expAvgSq.deallocate()
    }

    /// Global L2 norm of the gradient buffer.
    public func gradientNorm() -> Double {
        var sum: Double = 0
        let g = store.gradients
        for i in 0..<store.count { sum += Double(g[i]) * Double(g[i]) }
        return sum.squareRoot()
    }

    /// One update with schedule value `learningRate`; clips first when configured (as
    /// `clip_grad_norm_`: scale by max_norm / (norm + 1e-6) when that is below 1).
    /// Returns the gradient norm before clipping.
    @discardableResult
    public func update(learningRate: Double) -> Double {
        let norm = gradientNorm()
        var clipScale: Float = 1
        if let maxNorm = config.clipGradNorm {
            let coefficient = maxNorm / (norm + 1e-6)
            if coefficient < 1 { clipScale = Float(coefficient) }
        }
        step += 1
        let beta1 = Float(config.beta1), beta2 = Float(config.beta2), eps = Float(config.epsilon)
        let correction1 = 1 - pow(config.beta1, Double(step))
        let correction2 = 1 - pow(config.beta2, Double(step))
        let p = store.values, g = store.gradients
        for (index, slot) in store.slots.enumerated() {
            let lr = learningRate * groups.learningRateScale[index]
            let decay = Float(1 - lr * groups.weightDecay[index])
            let stepSize = Float(lr / correction1)
            let bias2Sqrt = Float(correction2.squareRoot())
            for i in slot.offset..<(slot.offset + slot.count) {
                let grad = g[i] * clipScale
                p[i] *= decay
                expAvg[i] += (1 - beta1) * (grad - expAvg[i])  // PyTorch's lerp_, weight < 0.5 form
                expAvgSq[i] = expAvgSq[i] * beta2 + (1 - beta2) * grad * grad
                let denom = expAvgSq[i].squareRoot() / bias2Sqrt + eps
                p[i] -= stepSize * expAvg[i] / denom
            }
        }
        return norm
    }

    /// Restores the step count (checkpoint loading).
    public func restore(step: Int) { self.step = step }
}
