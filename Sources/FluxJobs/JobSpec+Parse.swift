import Foundation
import FluxTraining
import FluxViT
import Yams

extension JobSpec {
    /// Reads a spec file; relative paths in it resolve against the file's folder.
    /// - Throws: `SpecError.unreadable` naming the path, or what `parse` throws.
    public static func load(path: String) throws(SpecError) -> JobSpec {
        let (text, folder) = try SpecDocument.read(path: path)
        return try parse(yaml: text, source: "'\(path)'", baseDirectory: folder)
    }

    /// Parses and validates a job spec (the format of `configs/jobs/quickstart.yaml`).
    ///
    /// Every problem is reported at once, each at its field path: unknown keys (with a suggestion for a likely
    /// typo), missing keys, wrong types, values out of range, exclusive pairs (`train.steps`/`train.epochs`,
    /// `data.train`/`data.synthetic`, `init.seed`/`init.checkpoint`), an unknown model or one that does not
    /// validate, and cross-field facts (budgets, a token range the Flux grid cannot meet, `workers.min` ≤
    /// `workers.max`, `data.synthetic` ≥ `train.global_batch`).
    ///
    /// - Parameters:
    ///   - source: Names the text in errors, e.g. a quoted file path.
    ///   - baseDirectory: Relative paths (the model file, `data.*`, `init.checkpoint`) become absolute against
    ///     it; without one they stay as written and the model file is read from the current directory.
    /// - Throws: `SpecError.malformed` when the text is not a YAML mapping, else `SpecError.invalid` with every issue.
    public static func parse(
        yaml: String, source: String = "job spec", baseDirectory: URL? = nil
    ) throws(SpecError) -> JobSpec {
        let log = IssueLog()
        let top = try SpecDocument.top(yaml: yaml, source: source, keys: Keys.top, log: log, example: "name: quickstart")

        let name = readName(top)
        var modelConfig = readModel(top, base: baseDirectory)
        let initialWeights = readInitialWeights(top, base: baseDirectory)
        let data = readData(top, base: baseDirectory)
        let training = readTraining(top, model: &modelConfig)
        let workers = readWorkers(top)
        let commitEvery = top.int("commit_every", .atLeast(1)) ?? 10
        let checkpointEvery = top.int("checkpoint_every", .atLeast(0)) ?? 0
        let ringSecurity = top.value("ring_security", required: false, expected: "'curve' or 'none'") {
            $0.scalar.flatMap { RingSecurityMode(rawValue: $0.string) }
        } ?? .curve
        let priority = top.int("priority") ?? 0
        let reduction = top.value("reduction", required: false, expected: "'exact' or 'fast'") {
            $0.scalar.flatMap { GradientReduction(rawValue: $0.string) }
        } ?? .exact
        let stepHashes = top.bool("step_hashes")

        guard log.issues.isEmpty, let name, let modelConfig, let initialWeights, let data, let training, let workers
        else { throw .invalid(source: source, issues: log.issues) }
        return JobSpec(
            name: name, modelConfig: modelConfig, initialWeights: initialWeights, data: data, training: training,
            workers: workers, commitEvery: commitEvery, checkpointEvery: checkpointEvery, ringSecurity: ringSecurity,
            priority: priority, reduction: reduction, stepHashes: stepHashes)
    }

    /// The known keys of each section, in document order.
    enum Keys {
        static let top = ["name", "model", "init", "data", "train", "workers", "commit_every", "checkpoint_every",
                          "ring_security", "priority", "reduction", "step_hashes"]
        static let initialWeights = ["seed", "checkpoint"]
        static let data = ["train", "val", "root", "synthetic"]
        static let train = ["global_batch", "steps", "epochs", "seed", "lr", "final_lr", "warmup", "weight_decay",
                            "layer_decay", "clip_grad", "label_smoothing", "frames", "resolutions", "tokens", "budgets",
                            "flip", "crop_scale", "slots"]
        static let workers = ["min", "max"]
    }

    /// `name`: 1–64 characters of `A–Z a–z 0–9 . _ -` (shared with `SweepSpec`).
    static func readName(_ top: Section) -> String? {
        guard let name = top.string("name", required: true) else { return nil }
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        guard (1...64).contains(name.count), name.allSatisfy(allowed.contains) else {
            top.log.add("name", "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-', got '\(name)'")
            return nil
        }
        return name
    }

    /// A preset name, a model YAML path (ending in .yaml or .yml, or containing '/') or an inline mapping.
    private static func readModel(_ top: Section, base: URL?) -> FluxViTConfig? {
        let log = top.log
        guard let node = top["model"] else {
            log.add("model", "required but missing")
            return nil
        }
        switch node {
        case .mapping:
            do {
                // FluxViTConfig parses text; the mapping goes back to text to reuse its checks unchanged.
                return try FluxViTConfig.parse(yaml: try Yams.serialize(node: node), source: "model")
            } catch let error as ConfigError {
                switch error {
                case let .invalid(_, issues): for issue in issues { log.add("model.\(issue.key)", issue.message) }
                case let .malformed(_, reason), let .unreadable(_, reason): log.add("model", reason)
                }
            } catch {
                log.add("model", "cannot be read as a mapping of model keys: \(error)")
            }
            return nil
        case .sequence:
            log.add("model", "must be a preset name, a model YAML path or a mapping of model keys, got a list")
            return nil
        case let .scalar(scalar):
            let text = scalar.string
            if let preset = FluxViTConfig.presets[text] { return preset }
            guard text.contains("/") || text.hasSuffix(".yaml") || text.hasSuffix(".yml") else {
                let known = FluxViTConfig.presets.keys.sorted().joined(separator: ", ")
                log.add("model", "unknown preset '\(text)'; known: \(known) "
                    + "(or give a model YAML path or a mapping of model keys)")
                return nil
            }
            let path = Section.resolve(text, against: base)
            do {
                return try FluxViTConfig.load(path: path)
            } catch {
                switch error {
                case let .unreadable(_, reason): log.add("model", "cannot read model file '\(path)': \(reason)")
                case let .malformed(_, reason):
                    log.add("model", "model file '\(path)' is not a YAML mapping: \(reason)")
                case let .invalid(_, issues): for issue in issues { log.add("model", "in '\(path)': \(issue)") }
                }
                return nil
            }
        }
    }

    private static func readInitialWeights(_ top: Section, base: URL?) -> InitialWeights? {
        guard top.has("init") else { return .seed(0) }
        guard let section = top.section("init", keys: Keys.initialWeights, required: false) else { return nil }
        let seed = section.seed("seed")
        let checkpoint = section.filePath("checkpoint", base: base)
        guard section.exactlyOne("seed", "checkpoint") else { return nil }
        return seed.map(InitialWeights.seed) ?? checkpoint.map { .checkpoint(path: $0) }
    }

    private static func readData(_ top: Section, base: URL?) -> DataSource? {
        guard let section = top.section("data", keys: Keys.data, required: true) else { return nil }
        let train = section.filePath("train", base: base)
        let val = section.filePath("val", base: base)
        let root = section.filePath("root", base: base)
        let synthetic = section.int("synthetic", .atLeast(1))
        guard section.exactlyOne("train", "synthetic") else { return nil }
        if section.has("train") { return train.map { .manifests(train: $0, val: val, root: root) } }
        for key in ["val", "root"] where section.has(key) {
            top.log.add(section.fieldPath(key), "goes with 'train', not with 'synthetic'; remove it")
        }
        guard let synthetic else { return nil }
        // Read without reporting: train.global_batch reports its own problems.
        if let batch = top["train"]?.mapping?["global_batch"]?.int, batch >= 1, synthetic < batch {
            top.log.add("data.synthetic", "must be ≥ train.global_batch (\(batch)), got \(synthetic)")
            return nil
        }
        return .synthetic(count: synthetic)
    }

    /// Reads `train`, applying `train.budgets` to `model` once they are valid for it.
    private static func readTraining(_ top: Section, model: inout FluxViTConfig?) -> Training? {
        guard let section = top.section("train", keys: Keys.train, required: true) else { return nil }
        let log = top.log
        let positive = Rule<Double>("> 0") { $0 > 0 }
        let nonNegative = Rule<Double>("≥ 0") { $0 >= 0 }
        let fraction = Rule<Double>("in (0, 1]") { $0 > 0 && $0 <= 1 }

        let globalBatch = section.int("global_batch", required: true, .atLeast(1))
        let steps = section.int("steps", .atLeast(1))
        let epochs = section.int("epochs", .atLeast(1))
        let length = section.exactlyOne("steps", "epochs") ? steps.map(Length.steps) ?? epochs.map(Length.epochs) : nil
        let seed = section.seed("seed") ?? 0
        let learningRate = section.number("lr", positive) ?? 1e-3
        let finalLearningRate = section.number("final_lr", nonNegative) ?? 1e-6
        let warmup = section.int("warmup", .atLeast(0)) ?? 5
        let weightDecay = section.number("weight_decay", nonNegative) ?? 0.05
        let layerDecay = section.number("layer_decay", fraction) ?? 0.75
        let clipGrad = section.number("clip_grad", positive)
        let labelSmoothing = section.number("label_smoothing", Rule("in [0, 1)") { $0 >= 0 && $0 < 1 }) ?? 0.1
        let frames = section.has("frames") ? section.intList("frames", [.atLeast(1)]) : model.map { [$0.numFrames] }
        let patch = model?.patchSize
        let resolutionRule = patch.map { p in
            Rule<Int>("a positive multiple of patch_size \(p)") { $0 >= p && $0 % p == 0 }
        } ?? .atLeast(1)
        let resolutions = section.has("resolutions")
            ? section.intList("resolutions", [resolutionRule]) : model.map { [$0.imgSize] }
        var tokens: ClosedRange<Int>? = 1...1_000_000
        if section.has("tokens") {
            tokens = nil
            if let pair = section.intList("tokens", []) {
                if pair.count == 2, pair[0] >= 1, pair[0] <= pair[1] {
                    tokens = pair[0]...pair[1]
                } else {
                    log.add("train.tokens", "must be [min, max] with 1 ≤ min ≤ max, got \(pair)")
                }
            }
        }
        if let budgets = section.intList("budgets", []), var withBudgets = model {
            withBudgets.budgets = budgets
            let problems = withBudgets.issues.filter { $0.key == "budgets" }
            for problem in problems { log.add("train.budgets", problem.message) }
            if problems.isEmpty { model = withBudgets }
        }
        let flip = section.bool("flip") ?? true
        let cropScale = section.number("crop_scale", fraction) ?? 0.08
        let slots = section.int("slots", .atLeast(1), .atMost(FixedPointGradients.maxSummands))
        if let slots, let globalBatch, slots > globalBatch {
            log.add("train.slots", "must be ≤ train.global_batch (\(globalBatch)): a slot holds at least one sample, got \(slots)")
        }

        if let frames, let resolutions, let tokens, let patch {
            do {
                _ = try SamplingPlanner(frames: frames, resolutions: resolutions, patchSize: patch, tokenRange: tokens)
            } catch {
                log.add("train.tokens", error.description)
                return nil
            }
        }
        guard let globalBatch, let length, let frames, let resolutions, let tokens else { return nil }
        // An invalid optional value fell back to its default above; it is reported, so parse throws.
        return Training(
            globalBatch: globalBatch, length: length, seed: seed, learningRate: learningRate,
            finalLearningRate: finalLearningRate, warmup: warmup, weightDecay: weightDecay, layerDecay: layerDecay,
            clipGrad: clipGrad, labelSmoothing: labelSmoothing, frames: frames, resolutions: resolutions,
            tokens: tokens, flip: flip, cropScale: cropScale, slots: slots)
    }

    private static func readWorkers(_ top: Section) -> WorkerRange? {
        guard let section = top.section("workers", keys: Keys.workers, required: true) else { return nil }
        let min = section.int("min", required: true, .atLeast(1))
        let max = section.int("max", required: true, .atLeast(1), .atMost(maxWorkers))
        guard let min, let max else { return nil }
        guard max >= min else {
            top.log.add("workers.max", "must be ≥ workers.min (\(min)), got \(max)")
            return nil
        }
        return WorkerRange(min: min, max: max)
    }
}
