import FluxTensor

/// The shape of a FluxViT model (spec §2). Field names follow the official constructor's keywords.
///
/// `imgSize` and `numFrames` only fix the stored position embedding's grid; any input size works
/// (spec §4.3). `budgets` are the three training budgets, largest first: head j serves budget j.
public struct FluxViTConfig: Equatable, Sendable {
    public var imgSize: Int
    public var patchSize: Int
    public var numFrames: Int
    public var embedDim: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpRatio: Double
    public var attnPoolNumHeads: Int
    public var clipEmbedDim: Int
    public var numClasses: Int
    public var gelu: GELUKind
    public var budgets: [Int]

    /// Creates a config; call `validate()` before building a model from user input.
    public init(
        imgSize: Int, patchSize: Int, numFrames: Int, embedDim: Int, depth: Int, numHeads: Int,
        mlpRatio: Double = 4, attnPoolNumHeads: Int, clipEmbedDim: Int, numClasses: Int,
        gelu: GELUKind = .tanh, budgets: [Int] = [3072, 2048, 1024]
    ) {
        self.imgSize = imgSize
        self.patchSize = patchSize
        self.numFrames = numFrames
        self.embedDim = embedDim
        self.depth = depth
        self.numHeads = numHeads
        self.mlpRatio = mlpRatio
        self.attnPoolNumHeads = attnPoolNumHeads
        self.clipEmbedDim = clipEmbedDim
        self.numClasses = numClasses
        self.gelu = gelu
        self.budgets = budgets
    }

    /// Number of classification heads and of training budgets (spec §2: three).
    public static let headCount = 3

    /// MLP hidden width Hd (4C for the presets).
    public var hiddenDim: Int { Int(Double(embedDim) * mlpRatio) }
    /// Base grid side G = imgSize / patchSize.
    public var baseGrid: Int { imgSize / patchSize }
    /// Rows of the stored position embedding: 1 + F·G·G.
    public var posEmbedRows: Int { 1 + numFrames * baseGrid * baseGrid }
    /// Head dimension of the backbone's attention.
    public var headDim: Int { embedDim / numHeads }
    /// Head dimension of the attention pooling.
    public var poolHeadDim: Int { embedDim / attnPoolNumHeads }

    /// The named presets of spec §2 (Kinetics-400 heads: 400 classes).
    public static let presets: [String: FluxViTConfig] = [
        "fluxvit-small": FluxViTConfig(
            imgSize: 252, patchSize: 14, numFrames: 24, embedDim: 384, depth: 12, numHeads: 6,
            attnPoolNumHeads: 16, clipEmbedDim: 768, numClasses: 400),
        "fluxvit-base": FluxViTConfig(
            imgSize: 280, patchSize: 14, numFrames: 32, embedDim: 768, depth: 12, numHeads: 12,
            attnPoolNumHeads: 16, clipEmbedDim: 768, numClasses: 400),
    ]

    /// The preset called `name`, or a `ConfigError` listing the known names.
    public static func preset(_ name: String) throws(ConfigError) -> FluxViTConfig {
        guard let config = presets[name] else {
            throw .invalid(source: "preset", [
                ConfigIssue(key: "preset", message: "unknown preset '\(name)'; known: \(presets.keys.sorted().joined(separator: ", "))")
            ])
        }
        return config
    }

    /// Every problem with this config, empty when it is usable.
    public var issues: [ConfigIssue] {
        var found: [ConfigIssue] = []
        func positive(_ key: String, _ value: Int) {
            if value < 1 { found.append(ConfigIssue(key: key, message: "must be at least 1, got \(value)")) }
        }
        positive("img_size", imgSize)
        positive("patch_size", patchSize)
        positive("num_frames", numFrames)
        positive("embed_dim", embedDim)
        positive("depth", depth)
        positive("num_heads", numHeads)
        positive("attn_pool_num_heads", attnPoolNumHeads)
        positive("clip_embed_dim", clipEmbedDim)
        positive("num_classes", numClasses)
        if patchSize >= 1, imgSize >= 1, imgSize % patchSize != 0 {
            found.append(ConfigIssue(
                key: "img_size", message: "\(imgSize) is not a multiple of patch_size \(patchSize); use a multiple"))
        }
        if numHeads >= 1, embedDim % numHeads != 0 {
            found.append(ConfigIssue(
                key: "num_heads", message: "embed_dim \(embedDim) is not divisible by num_heads \(numHeads)"))
        }
        if attnPoolNumHeads >= 1, embedDim % attnPoolNumHeads != 0 {
            found.append(ConfigIssue(
                key: "attn_pool_num_heads",
                message: "embed_dim \(embedDim) is not divisible by attn_pool_num_heads \(attnPoolNumHeads)"))
        }
        if !(mlpRatio > 0) || hiddenDim < 1 {
            found.append(ConfigIssue(key: "mlp_ratio", message: "must give a hidden width of at least 1, got \(mlpRatio)"))
        }
        if budgets.count != Self.headCount {
            found.append(ConfigIssue(
                key: "budgets", message: "needs exactly \(Self.headCount) token budgets (largest first), got \(budgets.count)"))
        } else if budgets.contains(where: { $0 < 1 }) {
            found.append(ConfigIssue(key: "budgets", message: "every budget must be at least 1 token, got \(budgets)"))
        } else if budgets != budgets.sorted(by: >) {
            found.append(ConfigIssue(key: "budgets", message: "must be listed largest first, got \(budgets)"))
        }
        return found
    }

    /// Throws `ConfigError.invalid` listing every issue, if any.
    public func validate(source: String = "config") throws(ConfigError) {
        let found = issues
        if !found.isEmpty { throw .invalid(source: source, found) }
    }

    /// The head whose training budget is nearest `tokens` (spec §4: head 0 is the largest budget);
    /// a tie goes to the larger budget's head.
    public func defaultHead(forTokens tokens: Int) -> Int {
        var best = 0
        for (j, budget) in budgets.enumerated() where abs(budget - tokens) < abs(budgets[best] - tokens) {
            best = j
        }
        return best
    }
}

/// One problem with a model config, at a key.
public struct ConfigIssue: Equatable, Sendable, CustomStringConvertible {
    /// The YAML key (official keyword name).
    public var key: String
    /// What is wrong and how to fix it.
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "\(key): \(message)" }
}

/// A model config that cannot be used.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    /// Every issue found in `source` (a file path or "preset").
    case invalid(source: String, [ConfigIssue])
    /// The file could not be read.
    case unreadable(path: String, reason: String)
    /// The text is not YAML, or not a mapping.
    case malformed(source: String, reason: String)

    public var description: String {
        switch self {
        case let .invalid(source, issues):
            let lines = issues.map { "  - \($0)" }.joined(separator: "\n")
            return "invalid model config \(source):\n\(lines)"
        case let .unreadable(path, reason):
            return "cannot read model config '\(path)': \(reason). Check the path and permissions."
        case let .malformed(source, reason):
            return "model config \(source) is not a YAML mapping of keys to values: \(reason)"
        }
    }
}
