import Foundation
import FluxTensor
import FluxTestKit
import FluxTraining
import FluxViT
import Testing

/// Whole-model gradients under the full Flux loss against PyTorch autograd (spec §5; style §F.2).
@Suite struct GradientParityTests {
    static let folder = Bundle.module.resourceURL!.appendingPathComponent("Goldens")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let cases = Goldens.names(withPrefix: "model_grads_", in: folder)

    static func tinyModel(gelu: GELUKind, threads: Int) throws -> FluxViTModel {
        var config = try FluxViTConfig.load(path: repository.appendingPathComponent("configs/models/tiny-test.yaml").path)
        config.gelu = gelu
        let model = try FluxViTModel(config: config, threads: threads)
        let weights = repository.appendingPathComponent("Tests/FluxViTTests/Goldens/tiny_weights.safetensors").path
        try model.loadWeights(path: weights)
        return model
    }

    @Test func goldens_arePresent() { #expect(Self.cases.count == 2, "run `make goldens`") }

    /// 64 threads on a 2-core machine: more threads than cores, and more than the 51 at which the tape's per-thread
    /// buffers used to run into each other.
    @Test(arguments: cases, [1, 2, 64])
    func fluxLossGradients_matchAutograd(caseName: String, threads: Int) throws {
        let golden = try Goldens.load(caseName, in: Self.folder)
        let model = try Self.tinyModel(gelu: GELUKind(rawValue: golden.metadata["gelu"] ?? "") ?? .tanh, threads: threads)
        let video = try golden.float("video", in: caseName)
        let labels = try golden.ints("labels", in: caseName).values
        let B = labels.count
        model.parameters.gradients.update(repeating: 0, count: model.parameters.count)
        let loss = try FluxStep.accumulateGradients(
            model: model, video: video, labels: labels, budgets: model.config.budgets, labelSmoothing: 0.1)

        // Losses: ours are sums over samples, the golden's batch means.
        for j in 0..<3 {
            expectClose(Tensor(shape: [1], scalars: [Float(loss.crossEntropy[j] / Double(B))]),
                        try golden.float("loss.ce.\(j)", in: caseName), "\(caseName) loss.ce.\(j)")
        }
        for j in 1...2 {
            expectClose(Tensor(shape: [1], scalars: [Float(loss.alignment[j - 1] / Double(B))]),
                        try golden.float("loss.align.\(j)", in: caseName), "\(caseName) loss.align.\(j)")
        }
        expectClose(Tensor(shape: [1], scalars: [Float(loss.meanTotal)]), try golden.float("loss", in: caseName), "\(caseName) loss")

        let zeroGradient = Set((golden.metadata["zero_grad_params"] ?? "").split(whereSeparator: { !"abcdefghijklmnopqrstuvwxyz0123456789_.".contains($0) }).map(String.init))
        for slot in model.parameters.slots {
            let expected = try golden.float("grad.\(slot.name)", in: caseName)
            let p = model.parameters.gradients + slot.offset
            let actual = Tensor(shape: slot.shape, scalars: (0..<slot.count).map { p[$0] / Float(B) })
            if zeroGradient.contains(slot.name) {
                #expect(actual.maxAbs <= 1e-6, "\(slot.name) should have (almost) no gradient, max \(actual.maxAbs)")
            } else {
                expectClose(actual, expected, "\(caseName) grad.\(slot.name) (threads \(threads))")
            }
        }
    }
}
