import Foundation
import FluxTensor

/// Initialization for training from scratch (spec §5), deterministic from a seed: each parameter
/// draws from its own counter-based stream keyed by (seed, parameter name), so the result does not
/// depend on layout order or on how many threads run.
public enum Initialization {
    /// Fills every parameter of `store` as spec §5 prescribes.
    public static func initialize(_ store: ParameterStore, seed: UInt64) {
        let c = store.config, P = c.patchSize
        for slot in store.slots {
            let name = slot.name
            var random = KeyedRandom(seed: seed, key: name)
            let p = store.values + slot.offset
            func fill(_ value: (inout KeyedRandom) -> Float) { for i in 0..<slot.count { p[i] = value(&random) } }
            if name == "pos_embed" {
                sinCosTable(config: c, into: p)
            } else if name == "cls_token" {
                fill { $0.truncatedNormal(std: 0.02) }
            } else if name.hasPrefix("patch_embed.proj.") {
                let bound = 1 / Float(3 * P * P).squareRoot()  // PyTorch's default Conv3d init
                fill { $0.uniform(-bound, bound) }
            } else if name.hasSuffix("gamma") {
                fill { _ in 1e-5 }
            } else if name.hasSuffix(".bias") || name.hasSuffix("_bias") {
                fill { _ in 0 }
            } else if slot.shape.count == 2 {  // every Linear weight
                fill { $0.truncatedNormal(std: 0.02) }
            } else {  // norm weights (RMSNorm, LayerNorm), GPE and LPE scales
                fill { _ in 1 }
            }
        }
        // Rescale the residual branches' output projections (spec §5): divide by √(2(i+1)).
        for i in 0..<c.depth {
            for name in ["blocks.\(i).attn.proj.weight", "blocks.\(i).mlp.fc2.weight"] {
                let p = store.pointer(name), n = store.slot(name)!.count
                let factor = 1 / (2 * Float(i + 1)).squareRoot()
                for k in 0..<n { p[k] *= factor }
            }
        }
    }

    /// The fixed 3-D sin-cos position table (spec §5): channels [0, C/4) code t, the next 3C/8
    /// the column w, the last 3C/8 the row h; the cls row is 0. C must be a multiple of 16.
    public static func sinCosTable(config c: FluxViTConfig, into p: UnsafeMutablePointer<Float>) {
        let C = c.embedDim, G = c.baseGrid, F = c.numFrames
        let dt = C / 4, ds = 3 * C / 8
        for i in 0..<C { p[i] = 0 }
        func code(_ position: Int, _ width: Int, _ out: UnsafeMutablePointer<Float>) {
            let half = width / 2
            for k in 0..<half {
                let omega = pow(10000.0, -Double(k) / Double(half))
                out[k] = Float(sin(Double(position) * omega))
                out[half + k] = Float(cos(Double(position) * omega))
            }
        }
        for t in 0..<F {
            for h in 0..<G {
                for w in 0..<G {
                    let row = p + (1 + (t * G + h) * G + w) * C
                    code(t, dt, row)
                    code(w, ds, row + dt)
                    code(h, ds, row + dt + ds)
                }
            }
        }
    }
}

/// A counter-based random stream keyed by a seed and a string (SplitMix64 over a key hash).
public struct KeyedRandom {
    private var stream: CounterRandom

    /// The stream for (seed, key).
    public init(seed: UInt64, key: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        stream = CounterRandom(state: seed &* 0x9E37_79B9_7F4A_7C15 ^ hash)
    }

    /// Next 64 random bits.
    public mutating func next() -> UInt64 { stream.next() }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Float = 0, _ high: Float = 1) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }

    /// Standard normal (Box–Muller, one value per call).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    /// Normal with `std`, redrawn until within ±2 (the absolute cut of timm's trunc_normal_).
    public mutating func truncatedNormal(std: Float) -> Float {
        while true {
            let v = normal() * std
            if abs(v) <= 2 { return v }
        }
    }
}
