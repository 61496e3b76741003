/// An input the model cannot run on, with the fix.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case badInputShape(shape: [Int])
    case sizeNotMultipleOfPatch(height: Int, width: Int, patchSize: Int)
    case notSquare(height: Int, width: Int)
    case oddFramesWithBudget(frames: Int, budget: Int)
    case budgetBelowOne(budget: Int)
    case headOutOfRange(head: Int)
    case tooFewFrames(frames: Int)

    public var description: String {
        switch self {
        case let .badInputShape(shape):
            "input clip has shape \(shape); expected B×3×T×H×W (batch, RGB channels, frames, height, width), normalized with the ImageNet mean and std."
        case let .sizeNotMultipleOfPatch(h, w, p):
            "input size \(h)×\(w) is not a multiple of patch_size \(p); resize or crop to a multiple, e.g. \(max(p, h / p * p))×\(max(p, w / p * p))."
        case let .notSquare(h, w):
            "input size \(h)×\(w) is not square; FluxViT (like the official code) needs H = W: crop to a square."
        case let .oddFramesWithBudget(t, b):
            "token selection (--budget \(b)) needs an even frame count, got \(t) frames; sample \(t + 1) or \(max(2, t - 1)) frames."
        case let .budgetBelowOne(b):
            "token budget \(b) is below 1; give a positive number of tokens to keep, or no budget to keep all."
        case let .headOutOfRange(head):
            "head \(head) does not exist; FluxViT has heads 0, 1 and 2 (largest budget first)."
        case let .tooFewFrames(t):
            "the clip has \(t) frames; at least 1 is needed."
        }
    }
}
