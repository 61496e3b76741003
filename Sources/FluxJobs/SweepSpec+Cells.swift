import FluxTraining
import FluxViT

extension SweepSpec {
    /// The grid of a spec that gives no `candidates`, centred on the default standard sampling T × R
    /// (`defaultStandard(model:)`, patch P):
    /// - frames: T/2, 3T/4, T, 3T/2 and 2T, each rounded to the nearest even count (halves up), at least 2;
    /// - sizes: 3R/4, 7R/8, R and 9R/8, each rounded down to a multiple of P, at least P.
    ///
    /// Repeats are dropped. For the FluxViT presets (8 × 224, P = 14) this is frames [4, 6, 8, 12, 16] and sizes
    /// [168, 196, 224, 252] (the grid of spec §7); for `configs/models/tiny-motion.yaml` (8 × 64, P = 16) frames
    /// [4, 6, 8, 12, 16] and sizes [48, 64].
    public static func defaultCandidates(model: FluxViTConfig) -> Candidates {
        let standard = defaultStandard(model: model)
        let (t, r, p) = (standard.frames, standard.size, model.patchSize)
        // Twice the rounded half-count: the nearest even number to t·n/d.
        let frames = [(1, 2), (3, 4), (1, 1), (3, 2), (2, 1)].map { n, d in max(2, 2 * ((t * n + d) / (2 * d))) }
        let sizes = [(3, 4), (7, 8), (1, 1), (9, 8)].map { n, d in max(p, r * n / d / p * p) }
        return Candidates(frames: Array(Set(frames)).sorted(), sizes: Array(Set(sizes)).sorted())
    }

    /// The standard sampling of a spec that gives none: 8×224, the official test sampling (spec §7), when the model
    /// takes it (224 a multiple of its patch, `img_size` ≥ 224: the FluxViT presets); otherwise the model's own
    /// `num_frames` × `img_size` (a small model such as tiny-motion's 8×64). The presets' `num_frames` × `img_size`
    /// (24×252) is the size of their position table, not a sampling anyone tests at.
    public static func defaultStandard(model: FluxViTConfig) -> Candidate {
        if 224 % model.patchSize == 0, model.imgSize >= 224 { return Candidate(frames: 8, size: 224) }
        return Candidate(frames: model.numFrames, size: model.imgSize)
    }

    /// The grid `cells(model:)` expands: `candidates`, each empty list replaced by the model's default.
    public func candidateGrid(model: FluxViTConfig) -> Candidates {
        let defaults = Self.defaultCandidates(model: model)
        return Candidates(
            frames: candidates.frames.isEmpty ? defaults.frames : candidates.frames,
            sizes: candidates.sizes.isEmpty ? defaults.sizes : candidates.sizes)
    }

    /// The standard sampling `cells(model:)` marks: `standard`, or the model's default.
    public func standardCandidate(model: FluxViTConfig) -> Candidate {
        standard ?? Self.defaultStandard(model: model)
    }

    /// Patch tokens of `candidate` as sampled: T·(R/P)².
    public static func sampledTokens(_ candidate: Candidate, model: FluxViTConfig) -> Int {
        let side = candidate.size / model.patchSize
        return candidate.frames * side * side
    }

    /// The cells of the sweep for `model` (design §5, spec §7), in the order `SweepCell` documents.
    ///
    /// Each budget (ascending) takes every candidate of the grid (`candidateGrid(model:)`) and the standard
    /// sampling (`standardCandidate(model:)`, marked `isStandard`, not repeated when the grid holds it), sorted by
    /// frames then size. A candidate with more tokens than the budget keeps, with `selection: group`, what the
    /// model's forward keeps (G groups of `TokenSelection.keptPerGroup`, spec §4.2: the budget or a little less);
    /// with `selection: none` it is left out of that budget.
    ///
    /// - Throws: `SpecError.invalid` (source `sweep 'NAME'`) listing every issue: sizes that are not multiples of
    ///   the model's patch size (`candidates.sizes`, `standard.size`), frame counts selection cannot take, a head
    ///   index out of range; with `selection: none`, a budget that no candidate fits (`budgets`) and grid
    ///   candidates that fit no budget (`candidates`); with `selection: group`, a budget too small to keep any
    ///   token of some candidate (`budgets`).
    public func cells(model: FluxViTConfig) throws(SpecError) -> [SweepCell] {
        let source = "sweep '\(name)'"
        let grid = candidateGrid(model: model)
        let standard = standardCandidate(model: model)
        let checked = issues(model: model, grid: grid, standard: standard)
        guard checked.isEmpty else { throw .invalid(source: source, issues: checked) }

        let samplings = Set(grid.frames.flatMap { f in grid.sizes.map { Candidate(frames: f, size: $0) } } + [standard])
            .sorted { ($0.frames, $0.size) < ($1.frames, $1.size) }
        var cells: [SweepCell] = []
        var issues: [FieldIssue] = []
        for budget in budgets.sorted() {
            let before = cells.count
            var empty: [Candidate] = []
            for candidate in samplings {
                let sampled = Self.sampledTokens(candidate, model: model)
                let selects = sampled > budget
                if selects, selection == .none { continue }
                // Exactly the forward's count (FluxViTModel.geometry(of:budget:)), float rounding of k included.
                let kept = selects
                    ? TokenSelection.groupCount(frames: candidate.frames)
                        * TokenSelection.keptPerGroup(
                            frames: candidate.frames, tokensPerFrame: sampled / candidate.frames, budget: budget)
                    : sampled
                if kept == 0 { empty.append(candidate) }
                let headIndex = switch head {
                case .nearest: model.defaultHead(forTokens: kept)
                case let .fixed(index): index
                }
                cells.append(SweepCell(
                    index: cells.count, budget: budget, candidate: candidate, sampledTokens: sampled,
                    keptTokens: kept, head: headIndex,
                    gmacs: MACCount.forwardGMACs(config: model, sampledTokens: sampled, keptTokens: kept),
                    isStandard: candidate == standard))
            }
            if !empty.isEmpty {
                let groups = empty.map { TokenSelection.groupCount(frames: $0.frames) }.max()!
                issues.append(FieldIssue(
                    path: "budgets",
                    message: "budget \(budget) leaves group selection no token to keep of \(Self.labels(empty)) "
                        + "(it keeps about budget/G per group, \(groups) groups); raise the budget"))
            }
            if cells.count == before, let smallest = samplings.min(by: {
                Self.sampledTokens($0, model: model) < Self.sampledTokens($1, model: model)
            }) {
                issues.append(FieldIssue(
                    path: "budgets",
                    message: "with selection: none no candidate fits budget \(budget): the smallest, "
                        + "\(smallest.label), has \(Self.sampledTokens(smallest, model: model)) tokens; "
                        + "raise the budget, add a smaller candidate or use selection: group"))
            }
        }
        if selection == .none, let largest = budgets.max() {
            // The standard sampling may be absent where it does not fit; only the grid must fit somewhere.
            let unfit = samplings.filter {
                grid.frames.contains($0.frames) && grid.sizes.contains($0.size)
                    && Self.sampledTokens($0, model: model) > largest
            }
            if !unfit.isEmpty {
                let named = unfit.map { "\($0.label) (\(Self.sampledTokens($0, model: model)) tokens)" }
                issues.append(FieldIssue(
                    path: "candidates",
                    message: "with selection: none no budget takes \(named.joined(separator: ", ")): "
                        + "the largest budget is \(largest); raise a budget, drop those frame counts or sizes, "
                        + "or use selection: group"))
            }
        }
        guard issues.isEmpty else { throw .invalid(source: source, issues: issues) }
        return cells
    }

    /// How to evaluate `cell` of this sweep: its sampling, its budget when it selects, its head and the views.
    public func viewSetting(for cell: SweepCell) -> ViewSetting {
        ViewSetting(
            frames: cell.candidate.frames, size: cell.candidate.size, budget: cell.selects ? cell.budget : nil,
            head: cell.head, clips: views.clips, crops: views.crops)
    }

    /// What `model` cannot run of this spec, and what `parse` checks but a spec built by hand may break.
    private func issues(model: FluxViTConfig, grid: Candidates, standard: Candidate) -> [FieldIssue] {
        var issues: [FieldIssue] = []
        let patch = model.patchSize
        let frameRule = Self.frameRule(for: selection)
        let sizeRule = Rule<Int>("a multiple of the model's patch_size \(patch)") { $0 >= patch && $0 % patch == 0 }

        if budgets.isEmpty {
            issues.append(FieldIssue(path: "budgets", message: "must not be empty"))
        } else if budgets.contains(where: { $0 < 1 }) || Set(budgets).count != budgets.count {
            issues.append(FieldIssue(path: "budgets", message: "must be distinct budgets ≥ 1, got \(budgets)"))
        }
        let badFrames = grid.frames.filter { !frameRule.test($0) }
        if !badFrames.isEmpty {
            issues.append(FieldIssue(
                path: "candidates.frames", message: "each must be \(frameRule.text), got \(Self.joined(badFrames))"))
        }
        let badSizes = grid.sizes.filter { !sizeRule.test($0) }
        if !badSizes.isEmpty {
            issues.append(FieldIssue(
                path: "candidates.sizes",
                message: "each must be \(sizeRule.text), got \(Self.joined(badSizes)); "
                    + "e.g. \(Self.nearMultiples(badSizes[0], of: patch))"))
        }
        // Without `standard` the model's sampling stands in; say so, since the user wrote no such value.
        let defaulted = self.standard == nil
            ? " (no standard given, so the model's num_frames × img_size, \(standard.label); give standard: "
                + "{frames: F, size: S})"
            : ""
        if !frameRule.test(standard.frames) {
            issues.append(FieldIssue(
                path: "standard.frames", message: "must be \(frameRule.text), got \(standard.frames)\(defaulted)"))
        }
        if !sizeRule.test(standard.size) {
            issues.append(FieldIssue(
                path: "standard.size",
                message: "must be \(sizeRule.text), got \(standard.size); e.g. "
                    + "\(Self.nearMultiples(standard.size, of: patch))\(defaulted)"))
        }
        if case let .fixed(index) = head, !(0..<FluxViTConfig.headCount).contains(index) {
            issues.append(FieldIssue(path: "head", message: "must be 'nearest' or a head index 0, 1 or 2, got \(index)"))
        }
        if views.clips < 1 || !Self.cropRule.test(views.crops) {
            issues.append(FieldIssue(
                path: "views", message: "must have clips ≥ 1 and crops 1 or 3, got \(views.clips)x\(views.crops)"))
        }
        return issues
    }

    /// The multiples of `patch` on either side of `value` (`196 or 210`), or `patch` itself below it.
    private static func nearMultiples(_ value: Int, of patch: Int) -> String {
        let below = value / patch * patch
        return below < patch ? "\(patch)" : "\(below) or \(below + patch)"
    }

    private static func joined(_ values: [Int]) -> String {
        values.map(String.init).joined(separator: ", ")
    }

    private static func labels(_ candidates: [Candidate]) -> String {
        candidates.map(\.label).joined(separator: ", ")
    }
}
