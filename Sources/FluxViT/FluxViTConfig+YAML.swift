import Foundation
import FluxTensor
import Yams

extension FluxViTConfig {
    /// Official constructor keys that we accept only with the one value we implement (spec §2).
    static let fixedKeys: [String: FixedValue] = [
        "in_chans": .int(3), "tubelet_size": .int(1), "qkv_bias": .bool(false),
        "qk_normalization": .bool(true), "use_gpe_proj": .bool(true), "use_lpe": .bool(true),
        "dual_norm_in_patch_embed": .bool(true), "sep_pos_embed": .bool(false),
        "drop_rate": .float(0), "attn_drop_rate": .float(0), "drop_path_rate": .float(0),
        "init_values": .float(1e-5),
    ]

    enum FixedValue {
        case int(Int), bool(Bool), float(Double)

        func matches(_ node: Node) -> Bool {
            switch self {
            case let .int(v): node.int == v
            case let .bool(v): node.bool == v
            case let .float(v): node.float.map { abs($0 - v) <= 1e-12 * max(1, abs(v)) } ?? false
            }
        }

        var text: String {
            switch self {
            case let .int(v): "\(v)"
            case let .bool(v): "\(v)"
            case let .float(v): "\(v)"
            }
        }
    }

    /// Reads a model YAML file (configs/models/*.yaml).
    public static func load(path: String) throws(ConfigError) -> FluxViTConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        return try parse(yaml: text, source: "'\(path)'")
    }

    /// Parses model YAML: `preset` (optional) then keys that override it, official names.
    /// Unknown keys, unsupported values of fixed official keys and inconsistent sizes are all
    /// reported together.
    public static func parse(yaml: String, source: String = "YAML") throws(ConfigError) -> FluxViTConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw .malformed(source: source, reason: "\(error)")
        }
        guard let root, let mapping = root.mapping else {
            throw .malformed(source: source, reason: "expected a mapping such as 'preset: fluxvit-small'")
        }
        var issues: [ConfigIssue] = []
        var config: FluxViTConfig
        if let presetNode = mapping["preset"] {
            guard let name = presetNode.string, let preset = presets[name] else {
                let known = presets.keys.sorted().joined(separator: ", ")
                throw .invalid(source: source, [ConfigIssue(
                    key: "preset", message: "unknown preset '\(presetNode.string ?? "?")'; known: \(known)")])
            }
            config = preset
        } else {
            config = FluxViTConfig(
                imgSize: 0, patchSize: 0, numFrames: 0, embedDim: 0, depth: 0, numHeads: 0,
                attnPoolNumHeads: 0, clipEmbedDim: 0, numClasses: 0)
            let required = ["img_size", "patch_size", "num_frames", "embed_dim", "depth", "num_heads",
                            "attn_pool_num_heads", "clip_embed_dim", "num_classes"]
            for key in required where mapping[key] == nil {
                issues.append(ConfigIssue(key: key, message: "missing; give it or name a 'preset' to inherit from"))
            }
        }

        func int(_ key: String, _ node: Node) -> Int? {
            if let value = node.int { return value }
            issues.append(ConfigIssue(key: key, message: "expected an integer, got '\(node.string ?? "\(node)")'"))
            return nil
        }

        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { continue }
            switch key {
            case "preset": break
            case "img_size": if let v = int(key, value) { config.imgSize = v }
            case "patch_size": if let v = int(key, value) { config.patchSize = v }
            case "num_frames": if let v = int(key, value) { config.numFrames = v }
            case "embed_dim": if let v = int(key, value) { config.embedDim = v }
            case "depth": if let v = int(key, value) { config.depth = v }
            case "num_heads": if let v = int(key, value) { config.numHeads = v }
            case "attn_pool_num_heads": if let v = int(key, value) { config.attnPoolNumHeads = v }
            case "clip_embed_dim": if let v = int(key, value) { config.clipEmbedDim = v }
            case "num_classes": if let v = int(key, value) { config.numClasses = v }
            case "mlp_ratio":
                if let v = value.float { config.mlpRatio = v } else {
                    issues.append(ConfigIssue(key: key, message: "expected a number such as 4"))
                }
            case "gelu":
                if let name = value.string, let kind = GELUKind(rawValue: name) { config.gelu = kind } else {
                    issues.append(ConfigIssue(key: key, message: "expected 'tanh' or 'erf', got '\(value.string ?? "?")'"))
                }
            case "budgets":
                let items = value.sequence.map { Array($0) } ?? []
                let ints = items.compactMap(\.int)
                if value.sequence == nil || ints.count != items.count {
                    issues.append(ConfigIssue(key: key, message: "expected a list of three integers, largest first, e.g. [3072, 2048, 1024]"))
                } else {
                    config.budgets = ints
                }
            default:
                if let fixed = fixedKeys[key] {
                    if !fixed.matches(value) {
                        issues.append(ConfigIssue(
                            key: key,
                            message: "only \(fixed.text) is supported (got '\(value.string ?? "?")'); remove the key or set it to \(fixed.text)"))
                    }
                } else {
                    issues.append(ConfigIssue(key: key, message: "unknown key; known keys: \(knownKeys.joined(separator: ", "))"))
                }
            }
        }
        // Size checks on a config with missing keys would only repeat "missing" as other words.
        if !issues.contains(where: { $0.message.hasPrefix("missing") }) {
            let reported = Set(issues.map(\.key))
            issues += config.issues.filter { !reported.contains($0.key) }
        }
        if !issues.isEmpty { throw .invalid(source: source, issues) }
        return config
    }

    static let knownKeys: [String] = [
        "preset", "img_size", "patch_size", "num_frames", "embed_dim", "depth", "num_heads", "mlp_ratio",
        "attn_pool_num_heads", "clip_embed_dim", "num_classes", "gelu", "budgets",
    ] + fixedKeys.keys.sorted()

    /// The YAML text of this config, official key names.
    public var yaml: String {
        """
        img_size: \(imgSize)
        patch_size: \(patchSize)
        num_frames: \(numFrames)
        embed_dim: \(embedDim)
        depth: \(depth)
        num_heads: \(numHeads)
        mlp_ratio: \(mlpRatio)
        attn_pool_num_heads: \(attnPoolNumHeads)
        clip_embed_dim: \(clipEmbedDim)
        num_classes: \(numClasses)
        gelu: \(gelu.rawValue)
        budgets: [\(budgets.map(String.init).joined(separator: ", "))]

        """
    }
}
