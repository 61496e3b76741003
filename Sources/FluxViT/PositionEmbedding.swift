import FluxTensor

/// The position embedding a clip of T×h×w tokens receives (spec §4.3): GPE (per-channel scale
/// and shift, not on the cls entry) of the stored F×G×G table, then, if the grid differs, linear
/// resizing in time F → T and bicubic resizing in space G×G → h×w, both as PyTorch's
/// `interpolate(align_corners=False)`.
public enum PositionEmbedding {
    /// Scratch floats `compute` needs for these grids.
    public static func scratchCount(baseFrames F: Int, baseGrid G: Int, frames T: Int, channels C: Int) -> Int {
        F * G * G * C + T * G * G * C
    }

    /// Writes the [1 + T·h·w, C] embedding into `out` for the channel range `channels` (threads
    /// split channels). pos: [1 + F·G·G, C]; gpeWeight, gpeBias: [C].
    public static func compute(
        pos: UnsafePointer<Float>, gpeWeight: UnsafePointer<Float>, gpeBias: UnsafePointer<Float>,
        baseFrames F: Int, baseGrid G: Int, frames T: Int, height h: Int, width w: Int, channelCount C: Int,
        channels: Range<Int>, scratch: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    ) {
        for c in channels { out[c] = pos[c] }  // cls entry: no GPE, no resize
        let grid = scratch  // [F, G, G, C] after GPE
        let timed = scratch + F * G * G * C  // [T, G, G, C]
        let sameTime = T == F, sameSpace = h == G && w == G
        let gpeTarget = sameTime && sameSpace ? out + C : grid
        for r in 0..<(F * G * G) {
            let src = pos + (1 + r) * C, dst = gpeTarget + r * C
            for c in channels { dst[c] = src[c] * gpeWeight[c] + gpeBias[c] }
        }
        if sameTime && sameSpace { return }

        let timeTarget = sameSpace ? out + C : timed
        if sameTime {
            for r in 0..<(T * G * G) {
                for c in channels { timeTarget[r * C + c] = grid[r * C + c] }
            }
        } else {
            let inner = G * G
            for (t, taps) in Resize.linearTaps(inSize: F, outSize: T).enumerated() {
                let w0 = taps.weight[0], w1 = taps.weight[1]
                for s in 0..<inner {
                    let a = grid + (taps.index[0] * inner + s) * C, b = grid + (taps.index[1] * inner + s) * C
                    let o = timeTarget + (t * inner + s) * C
                    for c in channels { o[c] = a[c] * w0 + b[c] * w1 }
                }
            }
        }
        if sameSpace { return }
        for t in 0..<T {
            Resize.bicubic2D(
                timed + t * G * G * C, inH: G, inW: G, channelCount: C, outH: h, outW: w, channels: channels,
                into: out + C + t * h * w * C)
        }
    }
}
