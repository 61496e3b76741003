import FluxTensor

/// A FluxViT model ready to run: config, parameters and the compute threads.
///
/// The forward pass (`forward(video:budget:head:)`) is spec §4 as an explicit per-layer chain.
/// One call at a time: the model owns reusable buffers. Not `Sendable`.
public final class FluxViTModel {
    /// The model's shape.
    public let config: FluxViTConfig
    /// Parameters (and their gradients), under PyTorch names.
    public let parameters: ParameterStore
    /// The threads every kernel splits its rows across.
    public let pool: ComputePool

    let workspace = Workspace()
    /// Pointers to each block's parameters, resolved once (no name lookups in the hot loop).
    let blocks: [BlockWeights]
    /// Grid (T, h, w) of the cached position table; nil when it must be rebuilt.
    var cachedPositionGrid: [Int]?
    /// Whether the reordered patch weight is current.
    var patchWeightIsCurrent = false

    /// A model of `config` with all-zero parameters (load weights next), running on `threads`.
    public init(config: FluxViTConfig, threads: Int = 2) throws(ConfigError) {
        try config.validate()
        self.config = config
        let parameters = ParameterStore(config: config)
        self.parameters = parameters
        self.pool = ComputePool(threads: threads)
        self.blocks = (0..<config.depth).map { BlockWeights(parameters, block: $0) }
    }

    /// Loads parameters from a safetensors file (see `ParameterStore.load(path:)`).
    public func loadWeights(path: String) throws(WeightsError) {
        try parameters.load(path: path)
        parametersChanged()
    }

    /// Call after writing parameters directly, so cached derived tables are rebuilt.
    public func parametersChanged() {
        cachedPositionGrid = nil
        patchWeightIsCurrent = false
    }
}

/// Output of one forward pass.
public struct ForwardOutput: Sendable {
    /// Class scores of the chosen head: [B, K].
    public var logits: Tensor
    /// Pooled feature f_j of the chosen head: [B, D].
    public var feature: Tensor
    /// Alignment projections 0 and 1 of that feature: [B, D] each, L2-normalized.
    public var proj0: Tensor
    public var proj1: Tensor
    /// The head that produced them.
    public var head: Int
    /// Patch tokens sampled (T·h·w) and kept (after selection) per sample.
    public var sampledTokens: Int
    public var keptTokens: Int
    /// Kept patch-token indices per sample (ascending), when a budget selected tokens.
    public var kept: [[Int]]?
    /// Named intermediate activations, when asked for (`patch_embed`, `pos_embed`, `tokens`,
    /// `blocks.i.attn.out`, `blocks.i.out`).
    public var intermediates: [String: Tensor]
}

/// One block's parameters (spec §3 `blocks.i.*`), as pointers into the parameter store.
struct BlockWeights {
    let norm1, qkv, qNorm, kNorm, lpeWeight, lpeBias, proj, projBias, gamma1: UnsafeMutablePointer<Float>
    let norm2, fc1, fc1Bias, fc2, fc2Bias, gamma2: UnsafeMutablePointer<Float>

    init(_ p: ParameterStore, block i: Int) {
        let b = "blocks.\(i)."
        norm1 = p.pointer(b + "norm1.weight")
        qkv = p.pointer(b + "attn.qkv.weight")
        qNorm = p.pointer(b + "attn.q_norm.weight")
        kNorm = p.pointer(b + "attn.k_norm.weight")
        lpeWeight = p.pointer(b + "attn.lpe.depthwise_conv.weight")
        lpeBias = p.pointer(b + "attn.lpe.depthwise_conv.bias")
        proj = p.pointer(b + "attn.proj.weight")
        projBias = p.pointer(b + "attn.proj.bias")
        gamma1 = p.pointer(b + "ls1.gamma")
        norm2 = p.pointer(b + "norm2.weight")
        fc1 = p.pointer(b + "mlp.fc1.weight")
        fc1Bias = p.pointer(b + "mlp.fc1.bias")
        fc2 = p.pointer(b + "mlp.fc2.weight")
        fc2Bias = p.pointer(b + "mlp.fc2.bias")
        gamma2 = p.pointer(b + "ls2.gamma")
    }
}
