import FluxTensor

/// Where one parameter lives in the store's flat buffers.
public struct ParameterSlot: Equatable, Sendable {
    /// PyTorch state_dict name (spec §3).
    public let name: String
    /// PyTorch shape.
    public let shape: [Int]
    /// Offset in floats from the start of the flat buffer.
    public let offset: Int
    /// Element count.
    public var count: Int { shape.reduce(1, *) }
}

/// Every parameter of a FluxViT model in one contiguous fp32 buffer, plus a twin gradient buffer
/// of the same layout (the buffer the ring all-reduce reduces), addressable by PyTorch names.
///
/// Parameters are laid out in spec §3 order. The store owns its memory; pointers it hands out are
/// valid for its lifetime. Not thread-safe for writes; reads from many threads are fine.
public final class ParameterStore: @unchecked Sendable {
    /// The config the layout was built for.
    public let config: FluxViTConfig
    /// Every slot, in layout order.
    public let slots: [ParameterSlot]
    /// Total floats in each buffer.
    public let count: Int
    /// The parameters.
    public let values: UnsafeMutablePointer<Float>
    /// The gradients, same layout as `values`.
    public let gradients: UnsafeMutablePointer<Float>
    private let index: [String: Int]

    /// A zero-filled store laid out for `config`.
    public init(config: FluxViTConfig) {
        self.config = config
        var slots: [ParameterSlot] = []
        var offset = 0
        for (name, shape) in Self.layout(for: config) {
            slots.append(ParameterSlot(name: name, shape: shape, offset: offset))
            // Keep every tensor 16-float (64-byte) aligned for the SIMD kernels.
            offset += (shape.reduce(1, *) + 15) / 16 * 16
        }
        self.slots = slots
        self.count = offset
        self.index = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($1.name, $0) })
        values = .allocate(capacity: max(offset, 1))
        values.initialize(repeating: 0, count: max(offset, 1))
        gradients = .allocate(capacity: max(offset, 1))
        gradients.initialize(repeating: 0, count: max(offset, 1))
    }

    deinit {
        values.deallocate()
        gradients.deallocate()
    }

    /// The slot of `name`, if the model has such a parameter.
    public func slot(_ name: String) -> ParameterSlot? { index[name].map { slots[$0] } }

    /// Pointer to the parameter `name`. A name not in the layout is a programmer error.
    public func pointer(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return values + slots[i].offset
    }

    /// Pointer to the gradient of `name`.
    public func gradient(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return gradients + slots[i].offset
    }

    /// A copy of the parameter `name` as a tensor.
    public func tensor(_ name: String) -> Tensor {
        guard let slot = slot(name) else { preconditionFailure("no parameter named \(name)") }
        return Tensor(shape: slot.shape, scalars: Array(UnsafeBufferPointer(start: values + slot.offset, count: slot.count)))
    }

    /// Overwrites the parameter `name` with `tensor`, whose element count must match.
    public func set(_ name: String, _ tensor: Tensor) {
        guard let slot = slot(name), slot.count == tensor.count else {
            preconditionFailure("cannot set \(name) from shape \(tensor.shape)")
        }
        tensor.scalars.withUnsafeBufferPointer { (values + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
    }

    /// Parameter names and shapes of spec §3, in layout order.
    public static func layout(for c: FluxViTConfig) -> [(String, [Int])] {
        let C = c.embedDim, D = c.clipEmbedDim, P = c.patchSize, K = c.numClasses, Hd = c.hiddenDim
        var out: [(String, [Int])] = [
            ("cls_token", [1, 1, C]),
            ("pos_embed", [1, c.posEmbedRows, C]),
            ("gpe_proj.depthwise_conv.weight", [C, 1, 1, 1, 1]),
            ("gpe_proj.depthwise_conv.bias", [C]),
            ("patch_embed.norm_before.weight", [P * P * 3]),
            ("patch_embed.proj.weight", [C, 3, 1, P, P]),
            ("patch_embed.proj.bias", [C]),
            ("patch_embed.norm.weight", [C]),
        ]
        for i in 0..<c.depth {
            let b = "blocks.\(i)."
            out += [
                (b + "norm1.weight", [C]),
                (b + "attn.qkv.weight", [3 * C, C]),
                (b + "attn.q_norm.weight", [C]),
                (b + "attn.k_norm.weight", [C]),
                (b + "attn.lpe.depthwise_conv.weight", [C, 1, 1, 1, 1]),
                (b + "attn.lpe.depthwise_conv.bias", [C]),
                (b + "attn.proj.weight", [C, C]),
                (b + "attn.proj.bias", [C]),
                (b + "ls1.gamma", [C]),
                (b + "norm2.weight", [C]),
                (b + "mlp.fc1.weight", [Hd, C]),
                (b + "mlp.fc1.bias", [Hd]),
                (b + "mlp.fc2.weight", [C, Hd]),
                (b + "mlp.fc2.bias", [C]),
                (b + "ls2.gamma", [C]),
            ]
        }
        for j in 0..<FluxViTConfig.headCount {
            let p = "clip_projector.\(j)."
            for n in ["q", "k", "v"] {
                out += [(p + "norm1_\(n).weight", [C]), (p + "norm1_\(n).bias", [C])]
            }
            for n in ["q", "k", "v"] {
                out += [(p + "cross_attn.\(n).weight", [C, C]), (p + "cross_attn.\(n)_bias", [C])]
            }
            out += [(p + "cross_attn.proj.weight", [D, C]), (p + "cross_attn.proj.bias", [D])]
        }
        out += [("fc_norm.weight", [D]), ("fc_norm.bias", [D])]
        for j in 0..<FluxViTConfig.headCount {
            out += [("head.\(j).weight", [K, D]), ("head.\(j).bias", [K])]
        }
        for m in 0..<2 {
            let p = "final_clip_decoder_for_projs.\(m)."
            out += [(p + "head.weight", [D, D]), (p + "head.bias", [D]), (p + "norm.weight", [D]), (p + "norm.bias", [D])]
        }
        return out
    }
}
