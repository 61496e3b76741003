import Foundation
import FluxTestKit
import FluxViT
import Testing

@Suite struct ConfigTests {
    @Test func yaml_presetThenOverrides() throws {
        let config = try FluxViTConfig.parse(yaml: "preset: fluxvit-small\nnum_classes: 174\ngelu: erf\n")
        #expect(config.embedDim == 384 && config.depth == 12 && config.numHeads == 6)
        #expect(config.numClasses == 174 && config.gelu == .erf)
        #expect(config.budgets == [3072, 2048, 1024])
    }

    @Test func yaml_officialFixedKeys_acceptedWithTheirOneValue() throws {
        let yaml = """
            preset: fluxvit-base
            in_chans: 3
            tubelet_size: 1
            qkv_bias: false
            qk_normalization: true
            use_gpe_proj: true
            use_lpe: true
            dual_norm_in_patch_embed: true
            sep_pos_embed: false
            drop_rate: 0.0
            attn_drop_rate: 0.0
            drop_path_rate: 0.0
            init_values: 1.0e-5
            """
        #expect(try FluxViTConfig.parse(yaml: yaml).embedDim == 768)
    }

    @Test func yaml_everyProblemIsNamedTogether() {
        let yaml = "preset: fluxvit-small\nqkv_bias: true\ncolour: red\nnum_heads: 5\nattn_pool_num_heads: 7\n"
        let error = #expect(throws: ConfigError.self) { try FluxViTConfig.parse(yaml: yaml, source: "m.yaml") }
        guard case let .invalid(source, issues)? = error else {
            Issue.record("expected .invalid, got \(String(describing: error))")
            return
        }
        #expect(source == "m.yaml")
        #expect(Set(issues.map(\.key)) == ["qkv_bias", "colour", "num_heads", "attn_pool_num_heads"])
        let text = "\(ConfigError.invalid(source: source, issues))"
        #expect(text.contains("only false is supported"))
        #expect(text.contains("unknown key"))
        #expect(text.contains("not divisible by num_heads 5"))
    }

    @Test func yaml_missingKeysWithoutPreset_areListed() {
        let error = #expect(throws: ConfigError.self) { try FluxViTConfig.parse(yaml: "embed_dim: 64\n") }
        guard case let .invalid(_, issues)? = error else {
            Issue.record("expected .invalid")
            return
        }
        #expect(issues.contains { $0.key == "depth" && $0.message.contains("missing") })
    }

    @Test func yaml_notAMapping_andUnreadableFile_areTypedErrors() {
        #expect(throws: ConfigError.self) { try FluxViTConfig.parse(yaml: "- a\n- b\n") }
        #expect(throws: ConfigError.self) { try FluxViTConfig.parse(yaml: "a: [unclosed\n") }
        #expect(throws: ConfigError.self) { try FluxViTConfig.load(path: "/nonexistent/model.yaml") }
        #expect(throws: ConfigError.self) { try FluxViTConfig.parse(yaml: "preset: fluxvit-huge\n") }
        #expect(throws: ConfigError.self) { try FluxViTConfig.parse(yaml: "preset: fluxvit-small\nbudgets: [1, 2, 3]\n") }
    }

    @Test func committedModelFiles_parse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs/models")
        for name in ["fluxvit-small.yaml", "fluxvit-base.yaml", "tiny-test.yaml"] {
            let config = try FluxViTConfig.load(path: root.appendingPathComponent(name).path)
            #expect(config.issues.isEmpty, "\(name)")
        }
    }

    @Test func defaultHead_nearestTrainingBudget_tieGoesToLarger() throws {
        let config = try FluxViTConfig.preset("fluxvit-small")  // 3072, 2048, 1024
        #expect(config.defaultHead(forTokens: 3072) == 0)
        #expect(config.defaultHead(forTokens: 2100) == 1)
        #expect(config.defaultHead(forTokens: 512) == 2)
        #expect(config.defaultHead(forTokens: 2560) == 0)  // tie between 3072 and 2048
        #expect(config.defaultHead(forTokens: 1536) == 1)  // tie between 2048 and 1024
    }

    @Test func macCount_fluxViTSmall_matchesOfficialColumn() throws {
        let config = try FluxViTConfig.preset("fluxvit-small")
        // Unmasked 12, 8, 4 and 2 frames of 224² (16×16 patches): official 154, 83, 32, 13 GMACs.
        for (frames, official) in [(12, 154.0), (8, 83.0), (4, 32.0), (2, 13.0)] {
            let tokens = frames * 256
            let gmacs = MACCount.forwardGMACs(config: config, sampledTokens: tokens, keptTokens: tokens)
            #expect(abs(gmacs - official) / official < 0.05, "\(tokens) tokens: \(gmacs) GMACs vs \(official)")
        }
    }
}
