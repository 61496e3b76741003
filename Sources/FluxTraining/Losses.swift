import Foundation

/// Cross-entropy with label smoothing (spec §5), as PyTorch's
/// `F.cross_entropy(logits, labels, label_smoothing: ε)` per sample: the target is (1 − ε) on the
/// label plus ε/K on every class. Summed over samples, so data-parallel ranks can add their sums.
public enum CrossEntropy {
    /// Sum of the per-sample losses over logits [B, K]; writes dLogits [B, K], the gradient of that
    /// sum, when given.
    public static func sumForwardBackward(
        logits: UnsafePointer<Float>, labels: [Int], classes K: Int, smoothing: Float,
        dLogits: UnsafeMutablePointer<Float>?
    ) -> Float {
        let B = labels.count
        var total: Double = 0
        for b in 0..<B {
            let row = logits + b * K
            var maxLogit = -Float.infinity
            for k in 0..<K { maxLogit = max(maxLogit, row[k]) }
            var sum: Double = 0
            for k in 0..<K { sum += Double(Foundation.exp(row[k] - maxLogit)) }
            let logSum = Double(maxLogit) + Foundation.log(sum)
            var meanLogit: Double = 0
            for k in 0..<K { meanLogit += Double(row[k]) }
            meanLogit /= Double(K)
            let nll = logSum - Double(row[labels[b]])
            let smooth = logSum - meanLogit
            total += (1 - Double(smoothing)) * nll + Double(smoothing) * smooth
            if let dLogits {
                let d = dLogits + b * K
                for k in 0..<K {
                    let p = Foundation.exp(Double(row[k]) - logSum)
                    let target = Double(smoothing) / Double(K) + (k == labels[b] ? 1 - Double(smoothing) : 0)
                    d[k] = Float(p - target)
                }
            }
        }
        return Float(total)
    }
}

/// The alignment loss of spec §5: smooth-L1 (β = 1) between the L2-normalized prediction and the
/// L2-normalized, stop-gradient target; per sample the mean over its D elements, summed over
/// samples (so the batch mean over all elements is this sum / B).
public enum AlignmentLoss {
    /// pred, target: [B, D]. Writes dPred [B, D] (gradient of the sum, through the normalization of
    /// pred) when given; the target gets no gradient.
    public static func sumForwardBackward(
        pred: UnsafePointer<Float>, target: UnsafePointer<Float>, rows B: Int, dims D: Int,
        dPred: UnsafeMutablePointer<Float>?
    ) -> Float {
        var total: Double = 0
        let count = Double(D)
        var normalized = [Float](repeating: 0, count: D)
        var grad = [Float](repeating: 0, count: D)
        for b in 0..<B {
            let p = pred + b * D, t = target + b * D
            var pn: Float = 0, tn: Float = 0
            for d in 0..<D { pn += p[d] * p[d]; tn += t[d] * t[d] }
            let pNorm = max(pn.squareRoot(), 1e-12), tNorm = max(tn.squareRoot(), 1e-12)
            for d in 0..<D {
                normalized[d] = p[d] / pNorm
                let diff = normalized[d] - t[d] / tNorm
                total += abs(diff) < 1 ? Double(0.5 * diff * diff) : Double(abs(diff) - 0.5)
                grad[d] = (abs(diff) < 1 ? diff : (diff > 0 ? 1 : -1)) / Float(count)
            }
            guard let dPred else { continue }
            // Through y = p/‖p‖: dp = (g − y·(y·g)) / ‖p‖.
            var dot: Float = 0
            for d in 0..<D { dot += normalized[d] * grad[d] }
            for d in 0..<D { dPred[b * D + d] = (grad[d] - normalized[d] * dot) / pNorm }
        }
        return Float(total / count)
    }
}
