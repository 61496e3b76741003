import Foundation
import FluxTensor
import FluxTestKit
import FluxViT
import Testing

/// The forward pass against PyTorch goldens from tools/reference (spec §4; style §F.2).
@Suite struct GoldenParityTests {
    static let folder = Bundle.module.resourceURL!.appendingPathComponent("Goldens")
    static let forwardCases = Goldens.names(withPrefix: "forward_", in: folder)

    static func model(gelu: GELUKind, threads: Int = 2) throws -> FluxViTModel {
        let weights = try Goldens.load("tiny_weights.safetensors", in: folder)
        var config = try FluxViTConfig.load(path: Self.tinyConfigPath)
        config.gelu = gelu
        let model = try FluxViTModel(config: config, threads: threads)
        try model.parameters.load(weights, path: "tiny_weights.safetensors")
        model.parametersChanged()
        return model
    }

    static var tinyConfigPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs/models/tiny-test.yaml").path
    }

    @Test func goldens_arePresent() {
        #expect(Self.forwardCases.count >= 6, "expected the forward goldens; run `make goldens`")
    }

    @Test(arguments: forwardCases)
    func forward_matchesPyTorch_everyHead(caseName: String) throws {
        let golden = try Goldens.load(caseName, in: Self.folder)
        let meta = golden.metadata
        let gelu = GELUKind(rawValue: meta["gelu"] ?? "") ?? .tanh
        let budget = meta["budget"].flatMap { Int($0) }
        let model = try Self.model(gelu: gelu)
        let video = try golden.float("video", in: caseName)
        for head in 0..<3 {
            let out = try model.forward(video: video, budget: budget, head: head, captureIntermediates: head == 0)
            // Near-ties decide which tokens are kept: check the indices before any value.
            if budget != nil, let expected = golden.tensors["kept"], case let .int(shape, values) = expected {
                let kept = try #require(out.kept)
                #expect(kept.flatMap { $0 } == values, "\(caseName): kept token indices differ")
                #expect([kept.count, out.keptTokens] == shape)
            }
            expectClose(out.logits, try golden.float("logits.\(head)", in: caseName), "\(caseName) logits.\(head)")
            expectClose(out.feature, try golden.float("feature.\(head)", in: caseName), "\(caseName) feature.\(head)")
            expectClose(out.proj0, try golden.float("proj0.\(head)", in: caseName), "\(caseName) proj0.\(head)")
            expectClose(out.proj1, try golden.float("proj1.\(head)", in: caseName), "\(caseName) proj1.\(head)")
            if head == 0 {
                for name in ["patch_embed", "pos_embed", "tokens", "blocks.0.attn.out", "blocks.0.out", "blocks.1.out"] {
                    let expected = try golden.float(name, in: caseName)
                    let actual = try #require(out.intermediates[name], "\(name) not captured")
                    expectClose(actual.reshaped(expected.shape), expected, "\(caseName) \(name)")
                }
            }
        }
    }

    @Test func forward_portableKernels_matchPyTorch() throws {
        KernelDispatch.forcePortable(true)
        defer { KernelDispatch.forcePortable(false) }
        let name = try #require(Self.forwardCases.first { $0.contains("k") && $0.contains("erf") })
        let golden = try Goldens.load(name, in: Self.folder)
        let model = try Self.model(gelu: .erf, threads: 1)  // the override is per thread: run on this one
        let out = try model.forward(
            video: try golden.float("video", in: name), budget: golden.metadata["budget"].flatMap { Int($0) }, head: 1)
        expectClose(out.logits, try golden.float("logits.1", in: name), "\(name) logits.1 (portable kernels)")
    }

    @Test func forward_repeatedCalls_areDeterministic() throws {
        let name = try #require(Self.forwardCases.first)
        let golden = try Goldens.load(name, in: Self.folder)
        let model = try Self.model(gelu: .tanh)
        let video = try golden.float("video", in: name)
        let first = try model.forward(video: video, budget: nil, head: 2)
        _ = try model.forward(video: video, budget: 3, head: 0)
        let again = try model.forward(video: video, budget: nil, head: 2)
        #expect(first.logits == again.logits)
    }
}
