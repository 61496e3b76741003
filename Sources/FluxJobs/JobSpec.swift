import FluxTraining
import FluxViT

/// A training job: which model, from which weights, on which data, how, and on how many workers.
///
/// Build one with `parse(yaml:source:baseDirectory:)` or `load(path:)`, which accept a spec only when every
/// field is valid and report every problem at once. `canonicalYAML` writes a spec back self-contained (absolute
/// paths, the model inline): that is the text the coordinator stores and workers receive. The parser opens the
/// model file only; manifests and checkpoints are the workers' to open.
public struct JobSpec: Sendable, Equatable {
    /// The job's name: 1–64 characters of `A–Z a–z 0–9 . _ -`.
    public var name: String
    /// The model to build. `train.budgets`, when a spec gives them, are already applied here.
    public var modelConfig: FluxViTConfig
    /// Where the weights start (YAML `init`).
    public var initialWeights: InitialWeights
    /// What to train and validate on.
    public var data: DataSource
    /// The loop, optimizer and sampling settings (YAML `train`).
    public var training: Training
    /// How many workers the job runs on.
    public var workers: WorkerRange
    /// Workers report progress to the coordinator every this many steps (≥ 1).
    public var commitEvery: Int
    /// A checkpoint every this many steps; 0 keeps only the final one.
    public var checkpointEvery: Int
    /// How the ring's links between workers are secured.
    public var ringSecurity: RingSecurityMode
    /// Higher runs first.
    public var priority: Int
    /// How gradients are summed: `exact` (the default) gives the same bits on any number of workers (issue 12);
    /// `fast` sums fp32 as it comes, which costs less on small models and inputs.
    public var reduction: GradientReduction = .exact
    /// Rank 0 sends the SHA-256 of the parameters after every step (`fluxctl chaos` compares them); default on
    /// with `reduction: exact`, whose bits they prove, off with `fast`.
    public var stepHashes: Bool

    /// Creates a spec from values that are already valid; `parse` is the checked way in.
    public init(
        name: String, modelConfig: FluxViTConfig, initialWeights: InitialWeights = .seed(0), data: DataSource,
        training: Training, workers: WorkerRange, commitEvery: Int = 10, checkpointEvery: Int = 0,
        ringSecurity: RingSecurityMode = .curve, priority: Int = 0, reduction: GradientReduction = .exact,
        stepHashes: Bool? = nil
    ) {
        self.name = name
        self.modelConfig = modelConfig
        self.initialWeights = initialWeights
        self.data = data
        self.training = training
        self.workers = workers
        self.commitEvery = commitEvery
        self.checkpointEvery = checkpointEvery
        self.ringSecurity = ringSecurity
        self.priority = priority
        self.reduction = reduction
        self.stepHashes = stepHashes ?? (reduction == .exact)
    }

    /// The three training budgets, largest first (`modelConfig.budgets`).
    public var budgets: [Int] { modelConfig.budgets }

    /// Where a job's weights start.
    public enum InitialWeights: Sendable, Equatable {
        /// Fresh weights from `Initialization.initialize(_:seed:)`.
        case seed(UInt64)
        /// The weights of a checkpoint folder (absolute once parsed with a base directory).
        case checkpoint(path: String)
    }

    /// What a job trains on.
    public enum DataSource: Sendable, Equatable {
        /// Videos listed in manifests (`path,label` CSV); `root` is the dataset root, by default the manifest's
        /// folder. Paths are absolute once parsed with a base directory.
        case manifests(train: String, val: String?, root: String?)
        /// `count` reproducible random clips (`SyntheticClips`), no video needed.
        case synthetic(count: Int)
    }

    /// How long a job trains.
    public enum Length: Sendable, Equatable {
        /// Exactly this many optimizer steps.
        case steps(Int)
        /// This many passes over the training data.
        case epochs(Int)
    }

    /// The loop, optimizer and Flux sampling settings of a job (YAML `train`, spec §5).
    public struct Training: Sendable, Equatable {
        /// Clips per step across all workers (`global_batch`).
        public var globalBatch: Int
        /// `steps` or `epochs`.
        public var length: Length
        /// Seed of the sampling grid, the data order and augmentation.
        public var seed: UInt64
        /// Base learning rate (`lr`).
        public var learningRate: Double
        /// End of the cosine schedule (`final_lr`).
        public var finalLearningRate: Double
        /// Warm-up iterations.
        public var warmup: Int
        /// AdamW's decoupled weight decay.
        public var weightDecay: Double
        /// Layer-wise learning-rate decay, in (0, 1].
        public var layerDecay: Double
        /// Clip the global gradient norm to this, when set (`clip_grad`).
        public var clipGrad: Double?
        /// In [0, 1).
        public var labelSmoothing: Double
        /// Frame counts the Flux grid draws from (default: the model's `num_frames`).
        public var frames: [Int]
        /// Resolutions the Flux grid draws from, multiples of `patch_size` (default: the model's `img_size`).
        public var resolutions: [Int]
        /// Token limits of the drawn grid (`tokens: [min, max]`).
        public var tokens: ClosedRange<Int>
        /// Random horizontal flips; off for labels that depend on left and right.
        public var flip: Bool
        /// Smallest area fraction of the random resized crop, in (0, 1].
        public var cropScale: Double
        /// `reduction: exact` only: slots the global batch is cut into (nil: `TrainingConfig.defaultSlots`).
        public var slots: Int? = nil

        /// Creates settings with `fluxctl train`'s defaults for everything but the batch, length and grid.
        public init(
            globalBatch: Int, length: Length, seed: UInt64 = 0, learningRate: Double = 1e-3,
            finalLearningRate: Double = 1e-6, warmup: Int = 5, weightDecay: Double = 0.05, layerDecay: Double = 0.75,
            clipGrad: Double? = nil, labelSmoothing: Double = 0.1, frames: [Int], resolutions: [Int],
            tokens: ClosedRange<Int> = 1...1_000_000, flip: Bool = true, cropScale: Double = 0.08, slots: Int? = nil
        ) {
            self.globalBatch = globalBatch
            self.length = length
            self.seed = seed
            self.learningRate = learningRate
            self.finalLearningRate = finalLearningRate
            self.warmup = warmup
            self.weightDecay = weightDecay
            self.layerDecay = layerDecay
            self.clipGrad = clipGrad
            self.labelSmoothing = labelSmoothing
            self.frames = frames
            self.resolutions = resolutions
            self.tokens = tokens
            self.flip = flip
            self.cropScale = cropScale
            self.slots = slots
        }
    }

    /// The range of workers a job runs on: it starts with `min` and grows up to `max`.
    public struct WorkerRange: Sendable, Equatable {
        /// At least 1.
        public var min: Int
        /// At least `min`, at most `JobSpec.maxWorkers`.
        public var max: Int

        /// Creates a range; `parse` checks 1 ≤ min ≤ max ≤ `JobSpec.maxWorkers`.
        public init(min: Int, max: Int) {
            self.min = min
            self.max = max
        }
    }

    /// The most workers one job may ask for.
    public static let maxWorkers = 64
}

/// How the ring's worker-to-worker links are secured (mirrors the protocol's mode; FluxJobs stays free of it).
public enum RingSecurityMode: String, Sendable, CaseIterable {
    /// CURVE encryption and authentication.
    case curve
    /// Plain TCP, for trusted networks and tests.
    case none
}
