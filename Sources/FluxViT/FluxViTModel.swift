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
    /// The training tape and backward scratch (kept apart so inference never disturbs a tape).
    let trainingWorkspace = Workspace()
    /// The geometry and head of the last `trainingForward`.
    var tapeRecord: TapeRecord?
    /// Each block's parameter offsets, resolved once (no name lookups in the hot loop).
    let blockSlots: [BlockSlots]
    /// Pointers to each block's parameters.
    let blocks: [BlockPointers]
    let poolSlots: [PoolSlots]
    let poolWeights: [PoolPointers]
    let sharedSlots: SharedSlots
    let shared: SharedPointers
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
        let blockSlots = (0..<config.depth).map { BlockSlots(parameters, block: $0) }
        self.blockSlots = blockSlots
        self.blocks = blockSlots.map { $0.at(parameters.values) }
        let poolSlots = (0..<FluxViTConfig.headCount).map { PoolSlots(parameters, head: $0) }
        self.poolSlots = poolSlots
        self.poolWeights = poolSlots.map { $0.at(parameters.values) }
        self.sharedSlots = SharedSlots(parameters)
        self.shared = sharedSlots.at(parameters.values)
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

/// One block's parameters (spec §3 `blocks.i.*`), as offsets into the store's buffers;
/// `at(base)` gives pointers into the values or into a gradient buffer of the same layout.
struct BlockSlots {
    let norm1, qkv, qNorm, kNorm, lpeWeight, lpeBias, proj, projBias, gamma1: Int
    let norm2, fc1, fc1Bias, fc2, fc2Bias, gamma2: Int

    init(_ p: ParameterStore, block i: Int) {
        let b = "blocks.\(i)."
        func o(_ s: String) -> Int { p.slot(b + s)!.offset }
        norm1 = o("norm1.weight"); qkv = o("attn.qkv.weight"); qNorm = o("attn.q_norm.weight")
        kNorm = o("attn.k_norm.weight"); lpeWeight = o("attn.lpe.depthwise_conv.weight")
        lpeBias = o("attn.lpe.depthwise_conv.bias"); proj = o("attn.proj.weight"); projBias = o("attn.proj.bias")
        gamma1 = o("ls1.gamma"); norm2 = o("norm2.weight"); fc1 = o("mlp.fc1.weight"); fc1Bias = o("mlp.fc1.bias")
        fc2 = o("mlp.fc2.weight"); fc2Bias = o("mlp.fc2.bias"); gamma2 = o("ls2.gamma")
    }

    func at(_ base: UnsafeMutablePointer<Float>) -> BlockPointers {
        BlockPointers(
            norm1: base + norm1, qkv: base + qkv, qNorm: base + qNorm, kNorm: base + kNorm, lpeWeight: base + lpeWeight,
            lpeBias: base + lpeBias, proj: base + proj, projBias: base + projBias, gamma1: base + gamma1,
            norm2: base + norm2, fc1: base + fc1, fc1Bias: base + fc1Bias, fc2: base + fc2, fc2Bias: base + fc2Bias,
            gamma2: base + gamma2)
    }
}

/// One block's parameters (or their gradients) as pointers.
struct BlockPointers {
    let norm1, qkv, qNorm, kNorm, lpeWeight, lpeBias, proj, projBias, gamma1: UnsafeMutablePointer<Float>
    let norm2, fc1, fc1Bias, fc2, fc2Bias, gamma2: UnsafeMutablePointer<Float>
}
