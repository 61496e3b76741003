/// Sparse (segment) sampling of frame indices (spec §6): `T` frames spread over a video of `n` frames.
///
/// With seg = max(0, (n − 1)/T) and numpy's round (half to even): training draws frame i uniformly from
/// [round(seg·i), round(seg·(i+1))]; testing clip c of k takes round(seg·i) + int(seg/(k+1)·(c+1)). Indices are
/// clamped to n − 1.
public enum FrameSampling {
    /// numpy's `round`: to the nearest integer, halves to even (round(2.5) = 2, round(3.5) = 4).
    public static func roundHalfEven(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// The segment length max(0, (n − 1)/T).
    public static func segmentLength(frameCount n: Int, count t: Int) -> Double {
        precondition(t > 0, "sampling needs at least one frame")
        return max(0, Double(n - 1) / Double(t))
    }

    /// The inclusive range each training frame i is drawn from, before clamping: [round(seg·i), round(seg·(i+1))].
    public static func trainingRanges(frameCount n: Int, count t: Int) -> [ClosedRange<Int>] {
        let seg = segmentLength(frameCount: n, count: t)
        return (0..<t).map { i in roundHalfEven(seg * Double(i))...roundHalfEven(seg * Double(i + 1)) }
    }

    /// Training indices: frame i uniform in its segment range (drawn with `generator`), clamped to n − 1.
    public static func trainingIndices(
        frameCount n: Int, count t: Int, using generator: inout some RandomNumberGenerator
    ) -> [Int] {
        precondition(n > 0, "sampling from an empty video")
        return trainingRanges(frameCount: n, count: t).map { min(Int.random(in: $0, using: &generator), n - 1) }
    }

    /// Training indices from caller-supplied draws `unit[i]` in [0, 1): frame i = lower + ⌊u·(upper − lower + 1)⌋,
    /// clamped to n − 1. For callers whose random numbers come from a counter-based stream.
    public static func trainingIndices(frameCount n: Int, count t: Int, unitDraws unit: [Double]) -> [Int] {
        precondition(n > 0, "sampling from an empty video")
        precondition(unit.count == t, "\(unit.count) draws for \(t) frames")
        return zip(trainingRanges(frameCount: n, count: t), unit).map { range, u in
            let width = range.upperBound - range.lowerBound + 1
            return min(range.lowerBound + min(Int(u * Double(width)), width - 1), n - 1)
        }
    }

    /// Test indices of temporal clip `clip` of `clips`: round(seg·i) + int(seg/(clips+1)·(clip+1)), clamped.
    /// With one clip this is the middle of each segment.
    public static func testIndices(frameCount n: Int, count t: Int, clip: Int = 0, clips: Int = 1) -> [Int] {
        precondition(n > 0, "sampling from an empty video")
        precondition((0..<clips).contains(clip), "clip \(clip) of \(clips)")
        let seg = segmentLength(frameCount: n, count: t)
        // Python's int() truncates toward zero; the offset is never negative.
        let offset = Int(seg / Double(clips + 1) * Double(clip + 1))
        return (0..<t).map { i in min(roundHalfEven(seg * Double(i)) + offset, n - 1) }
    }
}
