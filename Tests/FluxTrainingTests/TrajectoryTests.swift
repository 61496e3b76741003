import Foundation
import FluxTensor
import FluxTestKit
import FluxTraining
import FluxViT
import Testing

/// Six AdamW steps of the tiny model against the PyTorch trajectory (spec §5).
@Suite struct TrajectoryTests {
    @Test func sixSteps_withLayerDecayClippingAndSchedule_matchPyTorch() throws {
        let name = "train_steps.safetensors"
        let golden = try Goldens.load(name, in: GradientParityTests.folder)
        let config = try FluxViTConfig.load(
            path: GradientParityTests.repository.appendingPathComponent("configs/models/tiny-train.yaml").path)
        let model = try FluxViTModel(config: config, threads: 2)
        for slot in model.parameters.slots { model.parameters.set(slot.name, try golden.float("init.\(slot.name)", in: name)) }
        model.parametersChanged()

        var options = OptimizerConfig()
        options.baseLearningRate = 1e-3
        options.finalLearningRate = 1e-5
        options.warmupStartLearningRate = 1e-6
        options.warmupIterations = 2
        options.clipGradNorm = 22
        let optimizer = AdamW(store: model.parameters, config: options)
        let schedule = LearningRateSchedule(config: options, totalIterations: 6)

        // The optimizer's groups are the golden's.
        for (index, slot) in model.parameters.slots.enumerated() {
            #expect(Float(optimizer.groups.learningRateScale[index]) == (try golden.float("lr_scale.\(slot.name)", in: name)).scalars[0], "\(slot.name) lr scale")
            #expect(Float(optimizer.groups.weightDecay[index]) == (try golden.float("weight_decay.\(slot.name)", in: name)).scalars[0], "\(slot.name) decay")
        }
        let zeroGradient = Set((golden.metadata["zero_grad_params"] ?? "").split(whereSeparator: { !"abcdefghijklmnopqrstuvwxyz0123456789_.".contains($0) }).map(String.init))
        var lrSum = 0.0
        for step in 1...6 {
            let video = try golden.float("video.\(step)", in: name)
            let labels = try golden.ints("labels.\(step)", in: name).values
            let lr = schedule.value(at: step - 1)
            lrSum += lr
            #expect(abs(Float(lr) - (try golden.float("lr.\(step)", in: name)).scalars[0]) <= 1e-9, "schedule at step \(step)")
            model.parameters.gradients.update(repeating: 0, count: model.parameters.count)
            let loss = try FluxStep.accumulateGradients(model: model, video: video, labels: labels, budgets: config.budgets, labelSmoothing: 0.1)
            let scale = 1 / Float(labels.count)
            for i in 0..<model.parameters.count { model.parameters.gradients[i] *= scale }
            expectClose(Tensor(shape: [1], scalars: [Float(loss.meanTotal)]), try golden.float("loss.\(step)", in: name), "loss at step \(step)")
            let norm = optimizer.update(learningRate: lr)
            model.parametersChanged()
            expectClose(Tensor(shape: [1], scalars: [Float(norm)]), try golden.float("grad_norm.\(step)", in: name), "grad norm at step \(step)")
            guard [1, 3, 6].contains(step) else { continue }
            for slot in model.parameters.slots {
                let actual = model.parameters.tensor(slot.name)
                if zeroGradient.contains(slot.name) {
                    let initial = try golden.float("init.\(slot.name)", in: name)
                    let moved = zip(actual.scalars, initial.scalars).map { abs($0 - $1) }.max() ?? 0
                    #expect(Double(moved) <= 1.5 * lrSum + 1e-7, "\(slot.name) moved \(moved) with no gradient")
                } else {
                    expectClose(actual, try golden.float("step.\(step).\(slot.name)", in: name), "step \(step) \(slot.name)")
                }
            }
        }
    }
}
