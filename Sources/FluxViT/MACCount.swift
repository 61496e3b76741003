/// Analytic multiply-accumulate count of one forward pass (spec §7), counted as the official
/// tables count GFLOPs (billions of multiply-accumulates).
public enum MACCount {
    /// MACs of a forward on `sampledTokens` patch tokens of which `keptTokens` are kept: per block
    /// 4nC² + 2nC·Hd + 2n²C with n = keptTokens + 1; the patch embedding on all sampled tokens;
    /// one pooling head (2nC² + C² + C·D) and its classifier (D·K).
    public static func forward(config c: FluxViTConfig, sampledTokens: Int, keptTokens: Int) -> Double {
        let n = Double(keptTokens + 1)
        let C = Double(c.embedDim), Hd = Double(c.hiddenDim), D = Double(c.clipEmbedDim)
        let P = Double(c.patchSize), K = Double(c.numClasses)
        let block = 4 * n * C * C + 2 * n * C * Hd + 2 * n * n * C
        let patch = Double(sampledTokens) * 3 * P * P * C
        let pool = 2 * n * C * C + C * C + C * D
        return Double(c.depth) * block + patch + pool + D * K
    }

    /// Same in billions (GMACs).
    public static func forwardGMACs(config: FluxViTConfig, sampledTokens: Int, keptTokens: Int) -> Double {
        forward(config: config, sampledTokens: sampledTokens, keptTokens: keptTokens) / 1e9
    }
}
