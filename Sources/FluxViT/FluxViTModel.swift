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
    var cachedPosition: (key: [Int], version: Int)?
    var cachedPatchWeightVersion: Int?

    /// A model of `config` with all-zero parameters (load weights next), running on `threads`.
    public init(config: FluxViTConfig, threads: Int = 2) throws(ConfigError) {
        try config.validate()
        self.config = config
        self.parameters = ParameterStore(config: config)
        self.pool = ComputePool(threads: threads)
    }

    /// Loads parameters from a safetensors file (see `ParameterStore.load(path:)`).
    public func loadWeights(path: String) throws(WeightsError) {
        try parameters.load(path: path)
        parametersChanged()
    }

    /// Call after writing parameters directly, so cached derived tables are rebuilt.
    public func parametersChanged() {
        cachedPosition = nil
        cachedPatchWeightVersion = nil
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
