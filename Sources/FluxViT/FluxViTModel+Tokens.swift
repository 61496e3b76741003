/// The tokens one forward pass sees, known before any pixel is read (spec §4.2, §7).
public struct TokenCount: Sendable, Equatable {
    /// Patch tokens of the clip, N = T·(R/P)².
    public var sampled: Int
    /// Patch tokens the blocks see: G·k after selection when the budget is below N, else N.
    public var kept: Int
    /// The head that classifies.
    public var head: Int

    /// A token count.
    public init(sampled: Int, kept: Int, head: Int) {
        self.sampled = sampled
        self.kept = kept
        self.head = head
    }
}

extension FluxViTModel {
    /// What `forward(video:budget:head:)` would keep and which head it would use for clips of `frames` ×
    /// `size`², checked exactly as the forward pass checks them, without running it.
    /// - Throws: the `ModelError` the forward pass would throw for such a clip.
    public func tokens(frames: Int, size: Int, budget: Int? = nil, head: Int? = nil) throws(ModelError) -> TokenCount {
        let geometry = try geometry(shape: [1, 3, frames, size, size], budget: budget)
        let chosenHead = head ?? config.defaultHead(forTokens: geometry.kept)
        guard (0..<FluxViTConfig.headCount).contains(chosenHead) else { throw .headOutOfRange(head: chosenHead) }
        return TokenCount(sampled: geometry.N, kept: geometry.kept, head: chosenHead)
    }
}
