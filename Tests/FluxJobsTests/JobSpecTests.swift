import Foundation
import FluxJobs
import FluxTraining
import FluxViT
import Testing

@Suite struct JobSpecTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let jobsFolder = repository.appendingPathComponent("configs/jobs")

    /// A valid spec with only the required keys; the issue cases edit one part of it.
    static let minimal = """
        name: t
        model: fluxvit-small
        data:
          synthetic: 8
        train:
          global_batch: 4
          steps: 10
        workers:
          min: 1
          max: 2

        """

    /// Every key, paths relative to configs/jobs (the model is the repository's tiny-motion).
    static let full = """
        name: motion-1.v2_b
        model: ../models/tiny-motion.yaml
        init:
          checkpoint: ckpt/step-50
        data:
          train: data/train.csv
          val: data/val.csv
          root: /datasets/motion
        train:
          global_batch: 32
          steps: 200
          seed: 7
          lr: 3e-3
          final_lr: 1e-5
          warmup: 20
          weight_decay: 0.01
          layer_decay: 1.0
          clip_grad: 1.0
          label_smoothing: 0.2
          frames: [4, 8]
          resolutions: [32, 64]
          tokens: [16, 200]
          budgets: [100, 80, 60]
          flip: false
          crop_scale: 0.5
        workers:
          min: 2
          max: 4
        commit_every: 5
        checkpoint_every: 50
        ring_security: none
        priority: 3

        """

    static func tinyMotion() throws -> FluxViTConfig {
        try FluxViTConfig.load(path: repository.appendingPathComponent("configs/models/tiny-motion.yaml").path)
    }

    static func minimal(replacing target: String, with replacement: String) -> String {
        precondition(minimal.contains(target), "the minimal spec has no '\(target)'")
        return minimal.replacingOccurrences(of: target, with: replacement)
    }

    /// The issues `parse` reports, [] when it accepts the text; records a test issue for other errors.
    static func issues(_ yaml: String, base: URL? = nil) -> [FieldIssue] {
        do {
            _ = try JobSpec.parse(yaml: yaml, baseDirectory: base)
            return []
        } catch {
            guard case let .invalid(_, issues) = error else {
                Issue.record("expected .invalid, got \(error)")
                return []
            }
            return issues
        }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flux-jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    // MARK: Valid specs

    @Test func parse_fullSpec_readsEveryField() throws {
        let spec = try JobSpec.parse(yaml: Self.full, baseDirectory: Self.jobsFolder)
        var model = try Self.tinyMotion()
        model.budgets = [100, 80, 60]
        let folder = Self.jobsFolder.path
        let expected = JobSpec(
            name: "motion-1.v2_b", modelConfig: model, initialWeights: .checkpoint(path: "\(folder)/ckpt/step-50"),
            data: .manifests(
                train: "\(folder)/data/train.csv", val: "\(folder)/data/val.csv", root: "/datasets/motion"),
            training: JobSpec.Training(
                globalBatch: 32, length: .steps(200), seed: 7, learningRate: 3e-3, finalLearningRate: 1e-5, warmup: 20,
                weightDecay: 0.01, layerDecay: 1, clipGrad: 1, labelSmoothing: 0.2, frames: [4, 8],
                resolutions: [32, 64], tokens: 16...200, flip: false, cropScale: 0.5),
            workers: JobSpec.WorkerRange(min: 2, max: 4), commitEvery: 5, checkpointEvery: 50, ringSecurity: .none,
            priority: 3)
        #expect(spec == expected)
        #expect(spec.budgets == [100, 80, 60])
    }

    @Test func parse_requiredKeysOnly_appliesDefaults() throws {
        let spec = try JobSpec.parse(yaml: Self.minimal)
        let small = try FluxViTConfig.preset("fluxvit-small")
        #expect(spec.modelConfig == small)
        #expect(spec.initialWeights == .seed(0))
        #expect(spec.data == .synthetic(count: 8))
        let t = spec.training
        #expect(t.globalBatch == 4 && t.length == .steps(10) && t.seed == 0)
        #expect(t.learningRate == 1e-3 && t.finalLearningRate == 1e-6 && t.warmup == 5)
        #expect(t.weightDecay == 0.05 && t.layerDecay == 0.75 && t.clipGrad == nil && t.labelSmoothing == 0.1)
        #expect(t.frames == [small.numFrames] && t.resolutions == [small.imgSize] && t.tokens == 1...1_000_000)
        #expect(t.flip && t.cropScale == 0.08)
        #expect(spec.budgets == small.budgets)
        #expect(spec.workers == JobSpec.WorkerRange(min: 1, max: 2))
        #expect(spec.commitEvery == 10 && spec.checkpointEvery == 0)
        #expect(spec.ringSecurity == .curve && spec.priority == 0)
    }

    @Test func parse_noBaseDirectory_keepsRelativePaths() throws {
        let yaml = Self.minimal(replacing: "  synthetic: 8", with: "  train: data/train.csv\n  root: ../videos")
        let spec = try JobSpec.parse(yaml: yaml)
        #expect(spec.data == .manifests(train: "data/train.csv", val: nil, root: "../videos"))
    }

    @Test func parse_modelPreset_usesPreset() throws {
        let spec = try JobSpec.parse(yaml: Self.minimal(replacing: "fluxvit-small", with: "fluxvit-base"))
        #expect(spec.modelConfig == FluxViTConfig.presets["fluxvit-base"])
    }

    @Test func parse_modelPathRelativeToBase_readsThatFile() throws {
        let folder = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let models = folder.appendingPathComponent("models"), jobs = folder.appendingPathComponent("jobs")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)
        var expected = try Self.tinyMotion()
        expected.numClasses = 7
        try expected.yaml.write(to: models.appendingPathComponent("seven.yaml"), atomically: true, encoding: .utf8)

        let yaml = Self.minimal(replacing: "model: fluxvit-small", with: "model: ../models/seven.yaml")
        let spec = try JobSpec.parse(yaml: yaml, baseDirectory: jobs)
        #expect(spec.modelConfig == expected)
        #expect(spec.training.frames == [8] && spec.training.resolutions == [64])
    }

    @Test func parse_modelFileMissing_namesThePath() throws {
        let yaml = Self.minimal(replacing: "model: fluxvit-small", with: "model: ../models/missing.yaml")
        let issues = Self.issues(yaml, base: URL(fileURLWithPath: "/nowhere/jobs"))
        #expect(issues.count == 1)
        #expect(issues.first?.path == "model")
        #expect(issues.first?.message.hasPrefix("cannot read model file '/nowhere/models/missing.yaml': ") == true)
    }

    @Test func parse_inlineModel_parsesItsKeys() throws {
        let yaml = Self.minimal(replacing: "model: fluxvit-small", with: """
            model:
              preset: fluxvit-small
              num_classes: 10
              budgets: [2048, 1024, 512]
            """)
        let spec = try JobSpec.parse(yaml: yaml)
        var expected = try FluxViTConfig.preset("fluxvit-small")
        expected.numClasses = 10
        expected.budgets = [2048, 1024, 512]
        #expect(spec.modelConfig == expected)
    }

    @Test func examples_parse() throws {
        let quickstart = try JobSpec.load(path: Self.jobsFolder.appendingPathComponent("quickstart.yaml").path)
        let data = Self.repository.appendingPathComponent("runs/data/motion").path
        #expect(quickstart.name == "quickstart")
        let tinyMotion = try Self.tinyMotion()
        #expect(quickstart.modelConfig == tinyMotion)
        #expect(quickstart.data == .manifests(train: "\(data)/train.csv", val: "\(data)/val.csv", root: nil))
        #expect(quickstart.training.length == .steps(400) && quickstart.training.globalBatch == 32)
        #expect(quickstart.workers == JobSpec.WorkerRange(min: 1, max: 2))

        let chaos = try JobSpec.load(path: Self.jobsFolder.appendingPathComponent("chaos.yaml").path)
        #expect(chaos.reduction == .exact && chaos.stepHashes && chaos.training.length == .steps(60))
        #expect(quickstart.reduction == .exact && quickstart.stepHashes, "exact and its step hashes are the defaults")
        let fast = try JobSpec.parse(yaml: quickstart.canonicalYAML.replacingOccurrences(of: "reduction: exact\nstep_hashes: true", with: "reduction: fast"))
        #expect(fast.reduction == .fast && !fast.stepHashes, "step hashes default off with fast")

        let synthetic = try JobSpec.load(path: Self.jobsFolder.appendingPathComponent("synthetic.yaml").path)
        #expect(synthetic.data == .synthetic(count: 64))
        let planner = try synthetic.samplingPlanner()
        #expect(planner.frameChoices == [2, 4, 6] && planner.resolutionChoices == [8, 12])
        #expect(planner.patchSize == 4 && planner.tokenRange == 8...60)
    }

    // MARK: Issues

    struct IssueCase: Sendable, CustomTestStringConvertible {
        var target: String
        var replacement: String
        var path: String
        var message: String
        var testDescription: String { "\(path): \(message)" }

        init(_ target: String, _ replacement: String, _ path: String, _ message: String) {
            self.target = target
            self.replacement = replacement
            self.path = path
            self.message = message
        }
    }

    static let issueCases: [IssueCase] = [
        IssueCase("name: t", "name: my job", "name",
                  "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-', got 'my job'"),
        IssueCase("name: t\n", "", "name", "required but missing"),
        IssueCase("name: t", "name: t\ncolour: red", "colour",
                  "unknown key; known keys: name, model, init, data, train, workers, commit_every, "
                    + "checkpoint_every, ring_security, priority, reduction, step_hashes"),
        IssueCase("model: fluxvit-small\n", "", "model", "required but missing"),
        IssueCase("model: fluxvit-small", "model: fluxvit-huge", "model",
                  "unknown preset 'fluxvit-huge'; known: fluxvit-base, fluxvit-small "
                    + "(or give a model YAML path or a mapping of model keys)"),
        IssueCase("model: fluxvit-small", "model: [a]", "model",
                  "must be a preset name, a model YAML path or a mapping of model keys, got a list"),
        IssueCase("model: fluxvit-small", "model:\n  preset: fluxvit-small\n  depth: 0", "model.depth",
                  "must be at least 1, got 0"),
        IssueCase("name: t", "name: t\ninit:\n  seed: 1\n  checkpoint: c", "init",
                  "give only one of 'seed' or 'checkpoint', not both"),
        IssueCase("name: t", "name: t\ninit:\n  seed: -1", "init.seed", "must be an integer ≥ 0, got '-1'"),
        IssueCase("  synthetic: 8", "  synthetic: 8\n  train: a.csv", "data",
                  "give only one of 'train' or 'synthetic', not both"),
        IssueCase("  synthetic: 8", "  val: v.csv", "data", "give one of 'train' or 'synthetic'"),
        IssueCase("  synthetic: 8", "  synthetic: 8\n  val: v.csv", "data.val",
                  "goes with 'train', not with 'synthetic'; remove it"),
        IssueCase("  synthetic: 8", "  synthetic: 2", "data.synthetic", "must be ≥ train.global_batch (4), got 2"),
        IssueCase("  synthetic: 8", "  train: ''", "data.train", "must be a path, got nothing"),
        IssueCase("train:\n  global_batch: 4\n  steps: 10", "train: 5", "train",
                  "must be a mapping of keys to values, got '5'"),
        IssueCase("  global_batch: 4", "  global_batch: 0", "train.global_batch", "must be ≥ 1, got 0"),
        IssueCase("  global_batch: 4", "  global_batch: abc", "train.global_batch", "must be an integer, got 'abc'"),
        IssueCase("  global_batch: 4\n", "", "train.global_batch", "required but missing"),
        IssueCase("  steps: 10", "  steps: 10\n  epochs: 2", "train", "give only one of 'steps' or 'epochs', not both"),
        IssueCase("  steps: 10", "", "train", "give one of 'steps' or 'epochs'"),
        IssueCase("  steps: 10", "  epochs: 0", "train.epochs", "must be ≥ 1, got 0"),
        IssueCase("  steps: 10", "  steps: 10\n  steps: 20", "train.steps", "duplicate key; give it once"),
        IssueCase("  steps: 10", "  steps: 10\n  warmpu: 3", "train.warmpu", "unknown key; did you mean 'warmup'?"),
        IssueCase("  steps: 10", "  steps: 10\n  lr: 0", "train.lr", "must be > 0, got 0"),
        IssueCase("  steps: 10", "  steps: 10\n  lr: abc", "train.lr", "must be a number, got 'abc'"),
        IssueCase("  steps: 10", "  steps: 10\n  lr: .inf", "train.lr", "must be a number, got '.inf'"),
        IssueCase("  steps: 10", "  steps: 10\n  warmup: -1", "train.warmup", "must be ≥ 0, got -1"),
        IssueCase("  steps: 10", "  steps: 10\n  layer_decay: 1.5", "train.layer_decay", "must be in (0, 1], got 1.5"),
        IssueCase("  steps: 10", "  steps: 10\n  clip_grad: -1", "train.clip_grad", "must be > 0, got -1"),
        IssueCase("  steps: 10", "  steps: 10\n  label_smoothing: 1", "train.label_smoothing",
                  "must be in [0, 1), got 1"),
        IssueCase("  steps: 10", "  steps: 10\n  frames: [8, 0]", "train.frames", "each must be ≥ 1, got 0"),
        IssueCase("  steps: 10", "  steps: 10\n  frames: eight", "train.frames",
                  "must be a list of integers such as [8, 16], got 'eight'"),
        IssueCase("  steps: 10", "  steps: 10\n  frames: []", "train.frames", "must not be empty"),
        IssueCase("  steps: 10", "  steps: 10\n  resolutions: [224, 250]", "train.resolutions",
                  "each must be a positive multiple of patch_size 14, got 250"),
        IssueCase("  steps: 10", "  steps: 10\n  tokens: [5]", "train.tokens",
                  "must be [min, max] with 1 ≤ min ≤ max, got [5]"),
        IssueCase("  steps: 10", "  steps: 10\n  tokens: [1, 2]", "train.tokens",
                  "no frame count in [24] with a resolution in [252] gives a token count in 1…2; "
                    + "widen the ranges or the token limits"),
        IssueCase("  steps: 10", "  steps: 10\n  budgets: [64, 128, 96]", "train.budgets",
                  "must be listed largest first, got [64, 128, 96]"),
        IssueCase("  steps: 10", "  steps: 10\n  flip: maybe", "train.flip", "must be true or false, got 'maybe'"),
        IssueCase("  steps: 10", "  steps: 10\n  crop_scale: 0", "train.crop_scale", "must be in (0, 1], got 0"),
        IssueCase("workers:\n  min: 1\n  max: 2\n", "", "workers", "required but missing"),
        IssueCase("  min: 1", "  min: 0", "workers.min", "must be ≥ 1, got 0"),
        IssueCase("  min: 1", "  min: 3", "workers.max", "must be ≥ workers.min (3), got 2"),
        IssueCase("  max: 2", "  max: 100", "workers.max", "must be ≤ 64, got 100"),
        IssueCase("name: t", "name: t\ncommit_every: 0", "commit_every", "must be ≥ 1, got 0"),
        IssueCase("name: t", "name: t\ncheckpoint_every: -1", "checkpoint_every", "must be ≥ 0, got -1"),
        IssueCase("name: t", "name: t\nring_security: tls", "ring_security", "must be 'curve' or 'none', got 'tls'"),
        IssueCase("name: t", "name: t\npriority: high", "priority", "must be an integer, got 'high'"),
    ]

    @Test(arguments: issueCases)
    func parse_oneBadField_reportsItsPathAndMessage(_ issue: IssueCase) {
        let yaml = Self.minimal(replacing: issue.target, with: issue.replacement)
        #expect(Self.issues(yaml) == [FieldIssue(path: issue.path, message: issue.message)])
    }

    @Test func parse_manyBadFields_reportsThemAllInOrder() {
        let yaml = """
            name: bad name
            model: fluxvit-small
            data:
              synthetic: 8
              val: v.csv
            train:
              global_batch: 0
              steps: 10
              epochs: 3
              stpes: 3
              lr: -1
              flip: maybe
            workers:
              min: 3
              max: 2
            ring_security: tls
            """
        #expect(Self.issues(yaml) == [
            FieldIssue(
                path: "name", message: "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-', got 'bad name'"),
            FieldIssue(path: "data.val", message: "goes with 'train', not with 'synthetic'; remove it"),
            FieldIssue(path: "train.stpes", message: "unknown key; did you mean 'steps'?"),
            FieldIssue(path: "train.global_batch", message: "must be ≥ 1, got 0"),
            FieldIssue(path: "train", message: "give only one of 'steps' or 'epochs', not both"),
            FieldIssue(path: "train.lr", message: "must be > 0, got -1"),
            FieldIssue(path: "train.flip", message: "must be true or false, got 'maybe'"),
            FieldIssue(path: "workers.max", message: "must be ≥ workers.min (3), got 2"),
            FieldIssue(path: "ring_security", message: "must be 'curve' or 'none', got 'tls'"),
        ])
    }

    @Test func parse_malformedYAML_throwsMalformed() {
        for text in ["name: [unclosed", "- a\n- b", ""] {
            let error = #expect(throws: SpecError.self) { try JobSpec.parse(yaml: text, source: "'bad.yaml'") }
            guard case let .malformed(source, _) = error else {
                Issue.record("expected .malformed for \(text.debugDescription), got \(String(describing: error))")
                continue
            }
            #expect(source == "'bad.yaml'")
        }
    }

    @Test func load_missingFile_throwsUnreadableNamingThePath() {
        let error = #expect(throws: SpecError.self) { try JobSpec.load(path: "/nowhere/job.yaml") }
        guard case let .unreadable(path, _) = error else {
            Issue.record("expected .unreadable, got \(String(describing: error))")
            return
        }
        #expect(path == "/nowhere/job.yaml")
    }

    @Test func specError_description_listsOneIssueALineUnderTheSource() {
        let error = SpecError.invalid(source: "'job.yaml'", issues: [
            FieldIssue(path: "train.global_batch", message: "must be ≥ 1, got 0"),
            FieldIssue(path: "workers", message: "required but missing"),
        ])
        #expect(error.description == """
            'job.yaml' is invalid (2 issues):
              train.global_batch: must be ≥ 1, got 0
              workers: required but missing
            """)
    }

    // MARK: Canonical YAML

    static let roundTripSpecs: [String] = [
        minimal,
        full,
        minimal(
            replacing: "model: fluxvit-small", with: "model:\n  preset: fluxvit-small\n  gelu: erf\n  mlp_ratio: 3.5"),
        minimal(
            replacing: "  steps: 10",
            with: "  epochs: 3\n  clip_grad: 0.5\n  lr: 1e-4\n  final_lr: 0\n  tokens: [1000, 9000]"),
        minimal(replacing: "  synthetic: 8", with: "  train: 'my \"odd\" #videos: here\\\\/train.csv'"),
        minimal(replacing: "name: t", with: "name: '123'\ninit:\n  seed: 18446744073709551615\npriority: -5"),
    ]

    @Test(arguments: roundTripSpecs)
    func canonicalYAML_parsedBack_givesAnEqualSpec(_ yaml: String) throws {
        let spec = try JobSpec.parse(yaml: yaml, baseDirectory: Self.jobsFolder)
        let canonical = spec.canonicalYAML
        let again = try JobSpec.parse(yaml: canonical)
        #expect(again == spec)
        #expect(again.canonicalYAML == canonical)
    }

    @Test func canonicalYAML_examples_areSelfContained() throws {
        for file in ["quickstart.yaml", "synthetic.yaml", "chaos.yaml"] {
            let spec = try JobSpec.load(path: Self.jobsFolder.appendingPathComponent(file).path)
            let canonical = spec.canonicalYAML
            #expect(try JobSpec.parse(yaml: canonical) == spec)
            #expect(!canonical.contains(".yaml") && !canonical.contains("../"))
            #expect(canonical.contains("model:\n  img_size: \(spec.modelConfig.imgSize)\n"))
        }
    }

    // MARK: Training settings

    @Test func trainingConfig_stepsJob_coversTheStepsWithWholeEpochs() throws {
        let spec = try JobSpec.load(path: Self.jobsFolder.appendingPathComponent("quickstart.yaml").path)
        // 70 clips in batches of 32: 2 steps an epoch, so 400 steps need 200 epochs; 100 clips: 3 an epoch, 134.
        #expect(spec.epochs(datasetCount: 70) == 200 && spec.epochs(datasetCount: 100) == 134)
        #expect(spec.totalSteps(datasetCount: 70) == 400)
        let config = spec.trainingConfig(datasetCount: 70)
        #expect(config.seed == 7 && config.globalBatch == 32 && config.epochs == 200)
        #expect(config.labelSmoothing == 0.1 && config.checkpointEvery == 100)
        let optimizer = config.optimizer
        #expect(optimizer.baseLearningRate == 3e-3 && optimizer.finalLearningRate == 1e-6)
        #expect(optimizer.warmupIterations == 20 && optimizer.weightDecay == 0.05)
        #expect(optimizer.layerDecay == 1 && optimizer.clipGradNorm == nil)
    }

    @Test func trainingConfig_epochsJob_mapsEveryOptimizerSetting() throws {
        let spec = try JobSpec.parse(yaml: Self.full.replacingOccurrences(of: "steps: 200", with: "epochs: 3"),
                                     baseDirectory: Self.jobsFolder)
        #expect(spec.epochs(datasetCount: 100) == 3 && spec.totalSteps(datasetCount: 100) == 9)
        let config = spec.trainingConfig(datasetCount: 100)
        #expect(config.seed == 7 && config.globalBatch == 32 && config.epochs == 3)
        #expect(config.labelSmoothing == 0.2 && config.checkpointEvery == 50)
        let optimizer = config.optimizer
        #expect(optimizer.baseLearningRate == 3e-3 && optimizer.finalLearningRate == 1e-5)
        #expect(optimizer.warmupIterations == 20 && optimizer.weightDecay == 0.01)
        #expect(optimizer.layerDecay == 1 && optimizer.clipGradNorm == 1)
        let planner = try spec.samplingPlanner()
        #expect(planner.feasible.map(\.tokens).sorted() == [16, 32, 64, 128])
    }
}

@Suite struct ReductionSpecTests {
    static let base = """
        name: r
        model: {img_size: 8, patch_size: 4, num_frames: 2, embed_dim: 8, depth: 1, num_heads: 1, mlp_ratio: 1, attn_pool_num_heads: 1, clip_embed_dim: 4, num_classes: 2, budgets: [8, 6, 4]}
        data: {synthetic: 16}
        train: {global_batch: 8, steps: 2}
        workers: {min: 1, max: 2}
        """

    @Test func reduction_exactWithSlots_parsesRoundTripsAndConfigures() throws {
        let spec = try JobSpec.parse(yaml: Self.base.replacingOccurrences(of: "steps: 2}", with: "steps: 2, slots: 4}")
            + "\nreduction: exact\n")
        #expect(spec.reduction == .exact && spec.training.slots == 4)
        #expect(try JobSpec.parse(yaml: spec.canonicalYAML) == spec)
        let config = spec.trainingConfig(datasetCount: 16)
        #expect(config.reduction == .exact && config.slotCount == 4)
        #expect(try JobSpec.parse(yaml: Self.base).reduction == .exact, "exact is the default")
    }

    @Test func reduction_badValues_reportedWithTheirPaths() {
        let yaml = Self.base.replacingOccurrences(of: "steps: 2}", with: "steps: 2, slots: 9}") + "\nreduction: exactly\n"
        #expect(throws: SpecError.self) { try JobSpec.parse(yaml: yaml) }
        do {
            _ = try JobSpec.parse(yaml: yaml)
        } catch let SpecError.invalid(_, issues) {
            #expect(Set(issues.map(\.path)) == ["reduction", "train.slots"], "\(issues)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
