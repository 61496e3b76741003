import Foundation
import FluxTensor
import FluxTestKit
import FluxViT
import Testing

@Suite struct WeightsAndInputTests {
    static func tinyConfig() throws -> FluxViTConfig { try FluxViTConfig.load(path: GoldenParityTests.tinyConfigPath) }

    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("flux-\(UUID().uuidString)-\(name)").path
    }

    @Test func parameterStore_layoutFollowsSpecNamesAndShapes() throws {
        let store = ParameterStore(config: try FluxViTConfig.preset("fluxvit-small"))
        #expect(store.slot("blocks.3.attn.qkv.weight")?.shape == [1152, 384])
        #expect(store.slot("patch_embed.proj.weight")?.shape == [384, 3, 1, 14, 14])
        #expect(store.slot("pos_embed")?.shape == [1, 1 + 24 * 18 * 18, 384])
        #expect(store.slot("clip_projector.2.cross_attn.v_bias")?.shape == [384])
        #expect(store.slot("final_clip_decoder_for_projs.1.norm.bias")?.shape == [768])
        let total = store.slots.reduce(0) { $0 + $1.count }
        #expect(total > 20_000_000 && total < 40_000_000, "FluxViT-S has about 29M parameters (got \(total))")
        #expect(store.slots.allSatisfy { $0.offset % 16 == 0 })
    }

    @Test func safetensors_roundTrip_andHalfPrecisionReads() throws {
        var random = TestRandom(seed: 7)
        let tensor = random.tensor([3, 5])
        let file = SafeTensors.File(
            tensors: ["a": .float(tensor), "i": .int(shape: [2], values: [-3, 1 << 40])], metadata: ["k": "v"])
        let decoded = try SafeTensors.decode(SafeTensors.encode(file), path: "mem")
        #expect(decoded.tensors["a"] == .float(tensor))
        #expect(decoded.tensors["i"] == .int(shape: [2], values: [-3, 1 << 40]))
        #expect(decoded.metadata == ["k": "v"])

        // F16 1.5 = 0x3E00, BF16 -2.0 = 0xC000.
        let header = #"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[2,4]}}"#
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data(header.utf8))
        bytes.append(contentsOf: [0x00, 0x3E, 0x00, 0xC0])
        let half = try SafeTensors.decode(bytes, path: "half")
        #expect(half.tensors["h"] == .float(Tensor(shape: [1], scalars: [1.5])))
        #expect(half.tensors["b"] == .float(Tensor(shape: [1], scalars: [-2])))
    }

    @Test func safetensors_truncatedOrGarbage_isTypedError() throws {
        let store = ParameterStore(config: try Self.tinyConfig())
        let bytes = SafeTensors.encode(store.file())
        #expect(throws: WeightsError.self) { try SafeTensors.decode(bytes.prefix(bytes.count - 10), path: "t") }
        #expect(throws: WeightsError.self) { try SafeTensors.decode(Data([1, 2, 3]), path: "t") }
        #expect(throws: WeightsError.self) { try SafeTensors.decode(Data(repeating: 0x41, count: 64), path: "t") }
        #expect(throws: WeightsError.self) { try SafeTensors.read(path: "/nonexistent/w.safetensors") }
    }

    @Test func load_namesEveryMissingUnexpectedAndMisshapedTensor() throws {
        let config = try Self.tinyConfig()
        let store = ParameterStore(config: config)
        var file = store.file()
        file.tensors["blocks.1.attn.qkv.weight"] = nil
        file.tensors["blocks.0.mlp.fc1.weight"] = .float(Tensor(shape: [7, 64]))
        file.tensors["decoder.extra"] = .float(Tensor(shape: [2]))
        let error = #expect(throws: WeightsError.self) { try store.load(file, path: "W.safetensors") }
        guard case let .mismatch(path, issues)? = error else {
            Issue.record("expected a mismatch, got \(String(describing: error))")
            return
        }
        #expect(path == "W.safetensors")
        #expect(issues.contains(.missing(name: "blocks.1.attn.qkv.weight", shape: [192, 64])))
        #expect(issues.contains(.misshaped(name: "blocks.0.mlp.fc1.weight", expected: [256, 64], found: [7, 64])))
        #expect(issues.contains(.unexpected(name: "decoder.extra", shape: [2])))
        #expect("\(WeightsError.mismatch(path: path, issues))".contains("blocks.0.mlp.fc1.weight: expected [256, 64], file has [7, 64]"))
    }

    @Test func load_toleratesModuleAndModelPrefixes() throws {
        let config = try Self.tinyConfig()
        let source = ParameterStore(config: config)
        Initialization.initialize(source, seed: 3)
        for prefix in ["module.", "model."] {
            var file = source.file()
            file.tensors = Dictionary(uniqueKeysWithValues: file.tensors.map { (prefix + $0, $1) })
            let target = ParameterStore(config: config)
            try target.load(file, path: "p")
            #expect(target.tensor("blocks.0.attn.qkv.weight") == source.tensor("blocks.0.attn.qkv.weight"))
        }
    }

    @Test func save_thenLoad_givesTheSameParameters() throws {
        let config = try Self.tinyConfig()
        let source = ParameterStore(config: config)
        Initialization.initialize(source, seed: 11)
        let path = Self.temporaryPath("w.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try source.save(path: path)
        let target = ParameterStore(config: config)
        try target.load(path: path)
        for slot in source.slots { #expect(target.tensor(slot.name) == source.tensor(slot.name)) }
    }

    @Test func forward_badInputs_areTypedErrorsWithFixes() throws {
        let model = try FluxViTModel(config: try Self.tinyConfig(), threads: 1)
        func clip(_ t: Int, _ s: Int) -> Tensor { Tensor(shape: [1, 3, t, s, s]) }
        #expect(throws: ModelError.sizeNotMultipleOfPatch(height: 10, width: 10, patchSize: 4)) {
            try model.forward(video: clip(4, 10))
        }
        #expect(throws: ModelError.oddFramesWithBudget(frames: 3, budget: 5)) {
            try model.forward(video: clip(3, 8), budget: 5)
        }
        #expect(throws: ModelError.budgetBelowOne(budget: 0)) { try model.forward(video: clip(4, 8), budget: 0) }
        #expect(throws: ModelError.badInputShape(shape: [3, 4, 8, 8])) {
            try model.forward(video: Tensor(shape: [3, 4, 8, 8]))
        }
        #expect(throws: ModelError.notSquare(height: 8, width: 12)) {
            try model.forward(video: Tensor(shape: [1, 3, 4, 8, 12]))
        }
        #expect(throws: ModelError.headOutOfRange(head: 3)) { try model.forward(video: clip(4, 8), head: 3) }
        // An odd frame count is fine without a budget, and a budget at or above N keeps all tokens.
        #expect(try model.forward(video: clip(3, 8)).keptTokens == 12)
        #expect(try model.forward(video: clip(3, 8), budget: 12).kept == nil)
        #expect("\(ModelError.oddFramesWithBudget(frames: 3, budget: 5))".contains("even frame count"))
    }

    @Test func initialization_isDeterministicAndFollowsSpec() throws {
        let config = try Self.tinyConfig()
        let a = ParameterStore(config: config), b = ParameterStore(config: config)
        Initialization.initialize(a, seed: 5)
        Initialization.initialize(b, seed: 5)
        for slot in a.slots { #expect(a.tensor(slot.name) == b.tensor(slot.name)) }
        #expect(a.tensor("blocks.0.ls1.gamma").scalars.allSatisfy { $0 == 1e-5 })
        #expect(a.tensor("clip_projector.0.cross_attn.q_bias").scalars.allSatisfy { $0 == 0 })
        let qkv = a.tensor("blocks.0.attn.qkv.weight").scalars
        let std = (qkv.reduce(0) { $0 + $1 * $1 } / Float(qkv.count)).squareRoot()
        #expect(abs(std - 0.02) < 0.003, "Linear weights: std 0.02, got \(std)")
        // sin-cos table: cls row 0; frame 0, row 0, col 0 → sin(0) = 0, cos(0) = 1 in each code.
        let pos = a.tensor("pos_embed").scalars
        #expect(pos[0..<64].allSatisfy { $0 == 0 })
        #expect(pos[64] == 0 && pos[64 + 8] == 1)
    }

    @Test func classNames_mustNameEveryClass() throws {
        let path = Self.temporaryPath("names.txt")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "walking\nrunning\n\njumping\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try Inference.readClassNames(path: path, expected: 3) == ["walking", "running", "jumping"])
        #expect(throws: InferenceError.classNameCount(path: path, found: 3, expected: 5)) {
            try Inference.readClassNames(path: path, expected: 5)
        }
        #expect(throws: InferenceError.unreadableClassNames(path: "/nonexistent/names.txt")) {
            try Inference.readClassNames(path: "/nonexistent/names.txt", expected: 5)
        }
    }
}
