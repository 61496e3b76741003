import FluxTraining
import FluxViT

/// A Token Optimization sweep (design §5, spec §7): one trained model, and for each token budget every sampling
/// candidate (frames × size) evaluated on a manifest, so the best candidate per budget can be chosen.
///
/// Build one with `SweepSpec.parse(yaml:source:baseDirectory:)` or `load(path:)`; `cells(model:)` expands it
/// once the model is known (from the checkpoint's `state.json`).
public struct SweepSpec: Sendable, Equatable {
    /// The sweep's name: 1–64 characters of `A–Z a–z 0–9 . _ -`.
    public var name: String
    /// Which weights to evaluate.
    public var checkpoint: CheckpointReference
    /// What to evaluate on.
    public var data: EvaluationData
    /// Token budgets, ascending, distinct.
    public var budgets: [Int]
    /// The grid of samplings tried at every budget; an empty list takes the model's default
    /// (`SweepSpec.defaultCandidates(model:)`), so a spec can be written before the model is known.
    public var candidates: Candidates
    /// How a candidate with more tokens than the budget is brought to it.
    public var selection: Selection
    /// Views per video: temporal clips × spatial crops (spec §6).
    public var views: Views
    /// Which head scores a cell.
    public var head: HeadChoice
    /// The fixed sampling a user would pick without TO (reported at every budget beside the TO best); nil takes
    /// the model's own `num_frames × img_size` (`SweepSpec.defaultStandard(model:)`).
    public var standard: Candidate?
    /// At most this many workers at once.
    public var maxWorkers: Int
    /// Higher runs first (training jobs and sweeps share one queue).
    public var priority: Int

    /// Creates a spec from values that are already valid; `parse` is the checked way in.
    public init(
        name: String, checkpoint: CheckpointReference, data: EvaluationData, budgets: [Int], candidates: Candidates,
        selection: Selection = .group, views: Views = Views(), head: HeadChoice = .nearest,
        standard: Candidate? = nil, maxWorkers: Int = JobSpec.maxWorkers, priority: Int = 0
    ) {
        self.name = name
        self.checkpoint = checkpoint
        self.data = data
        self.budgets = budgets
        self.candidates = candidates
        self.selection = selection
        self.views = views
        self.head = head
        self.standard = standard
        self.maxWorkers = maxWorkers
        self.priority = priority
    }

    /// Where the weights come from.
    public enum CheckpointReference: Sendable, Equatable {
        /// A checkpoint folder (`model.safetensors`, `state.json`), absolute once parsed with a base directory.
        case path(String)
        /// The newest checkpoint the coordinator stored for this job (`checkpoint: {job: j-000001}`).
        case job(String)
    }

    /// The manifests a sweep reads.
    public struct EvaluationData: Sendable, Equatable {
        /// The manifest whose accuracy is reported (`data.eval`).
        public var eval: String
        /// An optional second manifest on which each budget's best candidate is chosen (`data.choose_on`).
        public var chooseOn: String?
        /// The dataset root, by default each manifest's folder.
        public var root: String?

        /// Manifests.
        public init(eval: String, chooseOn: String? = nil, root: String? = nil) {
            self.eval = eval
            self.chooseOn = chooseOn
            self.root = root
        }
    }

    /// One sampling: T frames at R×R pixels.
    public struct Candidate: Sendable, Hashable, Codable {
        /// Frames (T).
        public var frames: Int
        /// Size in pixels (R), a multiple of the model's patch size.
        public var size: Int

        /// A candidate.
        public init(frames: Int, size: Int) {
            self.frames = frames
            self.size = size
        }

        /// `8×224`.
        public var label: String { "\(frames)×\(size)" }
    }

    /// The candidate grid: every frame count with every size.
    public struct Candidates: Sendable, Equatable {
        /// Frame counts, ascending, distinct; empty for the model's default.
        public var frames: [Int]
        /// Sizes, ascending, distinct; empty for the model's default.
        public var sizes: [Int]

        /// A grid.
        public init(frames: [Int] = [], sizes: [Int] = []) {
            self.frames = frames
            self.sizes = sizes
        }
    }

    /// How a candidate over the budget is brought to it.
    public enum Selection: String, Sendable, Equatable, CaseIterable {
        /// Group token selection (spec §4.2) keeps about `budget` tokens.
        case group
        /// No selection: a candidate must fit the budget as sampled.
        case none
    }

    /// Views per video.
    public struct Views: Sendable, Equatable {
        /// Temporal clips (≥ 1).
        public var clips: Int
        /// Spatial crops per clip: 1 or 3.
        public var crops: Int

        /// Views; one centre view by default.
        public init(clips: Int = 1, crops: Int = 1) {
            self.clips = clips
            self.crops = crops
        }

        /// `clips × crops`.
        public var count: Int { clips * crops }
    }

    /// Which head scores a cell.
    public enum HeadChoice: Sendable, Equatable {
        /// The head whose training budget is nearest the tokens kept.
        case nearest
        /// Always this head (0, 1 or 2).
        case fixed(Int)
    }
}

/// One cell of a sweep: a budget and a candidate, with what the model computes for it. `SweepSpec.cells(model:)`
/// lists them budget by budget (ascending), and within a budget frames then size (ascending), the standard
/// sampling among them; `index` is the position in that list.
public struct SweepCell: Sendable, Hashable, Codable {
    /// Position in the sweep's expansion.
    public var index: Int
    /// The token budget.
    public var budget: Int
    /// The sampling.
    public var candidate: SweepSpec.Candidate
    /// Patch tokens sampled: T·(R/P)².
    public var sampledTokens: Int
    /// Patch tokens the model keeps (the selection's count when it selects, else all).
    public var keptTokens: Int
    /// The head that scores it.
    public var head: Int
    /// Multiply-accumulates of one view's forward pass, in billions (spec §7's count).
    public var gmacs: Double
    /// Whether this is the standard sampling at this budget.
    public var isStandard: Bool

    /// A cell.
    public init(index: Int, budget: Int, candidate: SweepSpec.Candidate, sampledTokens: Int, keptTokens: Int,
                head: Int, gmacs: Double, isStandard: Bool) {
        self.index = index
        self.budget = budget
        self.candidate = candidate
        self.sampledTokens = sampledTokens
        self.keptTokens = keptTokens
        self.head = head
        self.gmacs = gmacs
        self.isStandard = isStandard
    }

    /// Whether selection runs (more tokens sampled than the budget).
    public var selects: Bool { sampledTokens > budget }
}
