/// A contiguous row-major fp32 array with a shape: the unit of data the compute core exchanges.
///
/// Shape letters used across FluxTensor's kernel docs (spec §2–4):
/// B batch, T frames, H×W pixels, P patch size, L = (H/P)·(W/P) tokens per frame, N = T·L patch
/// tokens, n = 1 + kept tokens (cls first), C embed dim, Hd MLP hidden, D clip dim, K classes.
/// Kernels take raw pointers and row counts so that they can work on row ranges in place; `Tensor`
/// is what crosses module and file boundaries.
public struct Tensor: Equatable, Sendable {
    /// Extent of each axis, outermost first.
    public private(set) var shape: [Int]
    /// `shape.reduce(1, *)` values, row-major.
    public var scalars: [Float]

    /// A tensor of `shape` filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in shape \(shape)")
        self.shape = shape
        self.scalars = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor of `shape` holding `scalars` (row-major); their count must match the shape.
    public init(shape: [Int], scalars: [Float]) {
        precondition(scalars.count == shape.reduce(1, *), "\(scalars.count) values for shape \(shape)")
        self.shape = shape
        self.scalars = scalars
    }

    /// Number of elements.
    public var count: Int { scalars.count }

    /// Same values under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    /// Largest absolute value (0 for an empty tensor).
    public var maxAbs: Float { scalars.reduce(0) { max($0, abs($1)) } }

    /// The sub-tensor at `index` along the first axis.
    public subscript(index: Int) -> Tensor {
        let inner = Array(shape.dropFirst())
        let size = inner.reduce(1, *)
        return Tensor(shape: inner, scalars: Array(scalars[index * size..<(index + 1) * size]))
    }

    /// Stacks equally shaped tensors along a new first axis.
    public static func stacked(_ parts: [Tensor]) -> Tensor {
        guard let first = parts.first else { return Tensor(shape: [0]) }
        precondition(parts.allSatisfy { $0.shape == first.shape }, "stacking tensors of different shapes")
        return Tensor(shape: [parts.count] + first.shape, scalars: parts.flatMap(\.scalars))
    }
}
