/// Grid resizing exactly as PyTorch's `F.interpolate` with `align_corners=False` (spec §4.3):
/// linear along one axis, bicubic (A = −0.75, border-clamped) over two. Arithmetic in fp32 in
/// PyTorch's order, so results agree to rounding.
/// Reference: aten/src/ATen/native/UpSample.h (area_pixel_compute_source_index,
/// cubic_convolution1/2) and the CPU kernel's separable evaluation (inner axis first).
public enum Resize {
    /// Taps and weights of one output position.
    public struct Taps: Equatable, Sendable {
        public var index: [Int]
        public var weight: [Float]
    }

    /// Linear interpolation taps for `inSize` → `outSize`: source = scale·(i+½)−½ clamped at 0.
    public static func linearTaps(inSize: Int, outSize: Int) -> [Taps] {
        let scale = Float(inSize) / Float(outSize)
        return (0..<outSize).map { i in
            let source = max(scale * (Float(i) + 0.5) - 0.5, 0)
            let i0 = Int(source)
            let i1 = i0 + (i0 < inSize - 1 ? 1 : 0)
            let lambda1 = source - Float(i0)
            return Taps(index: [i0, i1], weight: [1 - lambda1, lambda1])
        }
    }

    /// Bicubic taps for `inSize` → `outSize`: four taps, indices clamped to the border.
    public static func cubicTaps(inSize: Int, outSize: Int) -> [Taps] {
        let scale = Float(inSize) / Float(outSize)
        let a: Float = -0.75
        func conv1(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func conv2(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return (0..<outSize).map { i in
            let source = scale * (Float(i) + 0.5) - 0.5
            let floorSource = source.rounded(.down)
            let t = source - floorSource
            let base = Int(floorSource)
            let weights = [conv2(t + 1), conv1(t), conv1(1 - t), conv2(2 - t)]
            let indices = (0..<4).map { min(max(base - 1 + $0, 0), inSize - 1) }
            return Taps(index: indices, weight: weights)
        }
    }

    /// Linear resize of axis 0 of a [inSize, inner] array into [outSize, inner].
    public static func linearAxis0(
        _ x: UnsafePointer<Float>, inSize: Int, inner: Int, outSize: Int, into y: UnsafeMutablePointer<Float>
    ) {
        for (o, taps) in linearTaps(inSize: inSize, outSize: outSize).enumerated() {
            let row0 = x + taps.index[0] * inner, row1 = x + taps.index[1] * inner
            let w0 = taps.weight[0], w1 = taps.weight[1]
            let out = y + o * inner
            for e in 0..<inner { out[e] = row0[e] * w0 + row1[e] * w1 }
        }
    }

    /// Bicubic resize of a channels-last grid [inH, inW, channels] into [outH, outW, channels],
    /// for the channel range `channels` (so threads can split channels).
    public static func bicubic2D(
        _ x: UnsafePointer<Float>, inH: Int, inW: Int, channelCount: Int, outH: Int, outW: Int,
        channels: Range<Int>, into y: UnsafeMutablePointer<Float>
    ) {
        let rowsTaps = cubicTaps(inSize: inH, outSize: outH)
        let colsTaps = cubicTaps(inSize: inW, outSize: outW)
        for oy in 0..<outH {
            let ty = rowsTaps[oy]
            for ox in 0..<outW {
                let tx = colsTaps[ox]
                let out = y + (oy * outW + ox) * channelCount
                for c in channels {
                    var sum: Float = 0
                    for a in 0..<4 {
                        let row = x + ty.index[a] * inW * channelCount + c
                        var inner = row[tx.index[0] * channelCount] * tx.weight[0]
                        for b in 1..<4 { inner += row[tx.index[b] * channelCount] * tx.weight[b] }
                        sum = a == 0 ? inner * ty.weight[0] : sum + inner * ty.weight[a]
                    }
                    out[c] = sum
                }
            }
        }
    }
}
