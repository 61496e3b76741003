import Foundation
import FluxTensor
import FluxTestKit
import FluxTraining
import FluxViT
import Testing

/// The model's own backward pieces (pooling, heads, projectors, position resize, GPE, patch
/// embedding, LPE, blocks) against finite differences of L = Σ logits·R + Σ proj₀·S.
@Suite struct ModelFiniteDifferenceTests {
    @Test func everyPartsGradient_matchesFiniteDifferences() throws {
        let model = try GradientParityTests.tinyModel(gelu: .erf, threads: 2)
        var random = TestRandom(seed: 21)
        let video = random.tensor([1, 3, 6, 12, 12])  // both resizes: 4 → 6 frames, 2×2 → 3×3 patches
        let R = random.tensor([1, 5]), S = random.tensor([1, 32])
        let head = 1

        model.parameters.gradients.update(repeating: 0, count: model.parameters.count)
        _ = try model.trainingForward(video: video, budget: nil, head: head)
        model.backward(OutputGradients(logits: R, projection: (0, S)))

        func loss() -> Double {
            model.parametersChanged()
            let out = try! model.forward(video: video, budget: nil, head: head)
            return zip(out.logits.scalars, R.scalars).reduce(0) { $0 + Double($1.0 * $1.1) }
                + zip(out.proj0.scalars, S.scalars).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        let names = [
            "pos_embed", "gpe_proj.depthwise_conv.weight", "gpe_proj.depthwise_conv.bias", "cls_token",
            "patch_embed.norm_before.weight", "patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.norm.weight",
            "blocks.0.attn.qkv.weight", "blocks.0.attn.q_norm.weight", "blocks.0.attn.k_norm.weight",
            "blocks.0.attn.lpe.depthwise_conv.weight", "blocks.0.attn.lpe.depthwise_conv.bias", "blocks.0.ls1.gamma",
            "blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc2.bias", "blocks.1.norm2.weight",
            "clip_projector.1.norm1_q.weight", "clip_projector.1.norm1_k.weight", "clip_projector.1.norm1_v.bias",
            "clip_projector.1.cross_attn.q.weight", "clip_projector.1.cross_attn.k.weight", "clip_projector.1.cross_attn.v.weight",
            "clip_projector.1.cross_attn.v_bias", "clip_projector.1.cross_attn.proj.weight", "fc_norm.weight", "head.1.bias",
            "final_clip_decoder_for_projs.0.head.weight", "final_clip_decoder_for_projs.0.norm.bias",
        ]
        for name in names {
            let slot = try #require(model.parameters.slot(name))
            let p = model.parameters.values + slot.offset
            var values = Array(UnsafeBufferPointer(start: p, count: slot.count))
            let analytic = Array(UnsafeBufferPointer(start: model.parameters.gradients + slot.offset, count: slot.count))
            expectGradient(name, input: &values, analytic: analytic, eps: 3e-3, maxIndices: 12, absolute: 2e-3, relative: 2e-2) { candidate in
                p.update(from: candidate, count: slot.count)
                return loss()
            }
            p.update(from: values, count: slot.count)
        }
    }
}
