import FluxJobs
import FluxTraining

/// The Token Optimization result of a sweep (spec §7): per budget the standard sampling beside the best candidate
/// (the TO pick), the whole grid of finished cells, the videos that could not be read, and a one-sentence verdict.
///
/// It serves finished and partial sweeps alike: budgets with cells still to run count them as `pending`. Render it
/// with `render(_:)`, plot it with `SweepPlot.svg(_:title:)`, or write every form with `writeArtifacts(to:)`.
public struct SweepReport: Codable, Equatable, Sendable {
    /// The sweep's name.
    public var name: String
    /// The coordinator's job id, when the sweep ran as a job.
    public var job: String?
    /// A short description of the model (`FluxViT-S, 22M parameters, patch 16`).
    public var model: String
    /// The checkpoint evaluated (a folder, or the job it came from).
    public var checkpoint: String
    /// The selection method (`group`, `none`).
    public var selection: String
    /// Views per video (`1×3`).
    public var views: String
    /// The standard sampling compared at every budget.
    public var standard: SweepSpec.Candidate
    /// Every budget, ascending (the sweep's, plus any a result names).
    public var budgets: [Int]
    /// Cells in the whole sweep.
    public var cellsTotal: Int
    /// Cells finished (`grid.count`).
    public var cellsDone: Int
    /// The metrics the best cells were chosen on: `choose_on` when every finished cell has them, else `eval`.
    public var chosenOn: String
    /// Finished cells by index.
    public var grid: [CellResult]
    /// One summary per budget, in `budgets` order.
    public var perBudget: [BudgetSummary]
    /// Videos that could not be read, each once, in the order first given.
    public var unreadable: [UnreadableVideo]
    /// Caveats a reader must see (a fallback in how the best was chosen).
    public var notes: [String]
    /// The verdict in one sentence (see `summarySentence`).
    public var summary: String

    /// The basis names `chosenOn` takes.
    public static let evalBasis = "eval", chooseOnBasis = "choose_on"

    /// A report from finished cells.
    ///
    /// - Parameters:
    ///   - results: Finished cells in any order; a cell index given twice keeps its first result.
    ///   - unreadable: Unreadable videos as the cells reported them; repeats are dropped.
    ///   - chosenOn: What the sweep asked the best to be chosen on (`eval` or `choose_on`). The best is chosen on
    ///     `choose_on` exactly when every result has those metrics; a request that cannot be met adds a note.
    ///   - cellsPerBudget: Cells of each budget in the whole sweep, for exact pending counts. Without it a finished
    ///     sweep has none pending, and a partial one spreads `cellsTotal` evenly over the budgets (exact when every
    ///     candidate runs at every budget, as `selection: group` expands; an estimate for `selection: none`).
    public init(
        name: String, job: String?, model: String, checkpoint: String, selection: String, views: String,
        standard: SweepSpec.Candidate, budgets: [Int], cellsTotal: Int, results: [CellResult],
        unreadable: [UnreadableVideo], chosenOn: String, cellsPerBudget: [Int: Int]? = nil
    ) {
        self.name = name
        self.job = job
        self.model = model
        self.checkpoint = checkpoint
        self.selection = selection
        self.views = views
        self.standard = standard

        var seenCells = Set<Int>()
        grid = results.filter { seenCells.insert($0.cell.index).inserted }.sorted { $0.cell.index < $1.cell.index }
        cellsDone = grid.count
        self.cellsTotal = max(cellsTotal, cellsDone)
        self.budgets = Array(Set(budgets).union(grid.map(\.cell.budget))).sorted()

        var seenVideos = Set<UnreadableVideo>()
        self.unreadable = unreadable.filter { seenVideos.insert($0).inserted }

        let missing = grid.filter { $0.chooseOn == nil }.count
        let onChooseOn = !grid.isEmpty && missing == 0
        self.chosenOn = onChooseOn ? Self.chooseOnBasis : Self.evalBasis
        notes = []
        if chosenOn == Self.chooseOnBasis && !onChooseOn && !grid.isEmpty {
            notes.append(
                "best chosen on eval: \(missing) of \(grid.count) finished cells lack choose_on metrics")
        } else if chosenOn == Self.evalBasis && onChooseOn {
            notes.append("best chosen on choose_on: every finished cell has choose_on metrics")
        }

        let byBudget = Dictionary(grouping: grid, by: \.cell.budget)
        let expected = cellsPerBudget
            ?? (cellsDone == self.cellsTotal
                ? byBudget.mapValues(\.count)
                : Self.evenSplit(self.cellsTotal, over: self.budgets))
        perBudget = self.budgets.map { budget in
            BudgetSummary(
                budget: budget, results: byBudget[budget] ?? [], cells: expected[budget] ?? 0,
                onChooseOn: onChooseOn)
        }
        summary = ""
        summary = summarySentence()
    }

    /// `total` cells spread evenly over `budgets`, earlier budgets taking the remainder.
    private static func evenSplit(_ total: Int, over budgets: [Int]) -> [Int: Int] {
        guard !budgets.isEmpty else { return [:] }
        let base = total / budgets.count, extra = total % budgets.count
        return Dictionary(uniqueKeysWithValues: budgets.enumerated().map { ($1, base + ($0 < extra ? 1 : 0)) })
    }

    enum CodingKeys: String, CodingKey {
        case name, job, model, checkpoint, selection, views, standard, budgets
        case cellsTotal = "cells_total", cellsDone = "cells_done", chosenOn = "chosen_on", grid
        case perBudget = "per_budget", unreadable, notes, summary
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        job = try c.decodeIfPresent(String.self, forKey: .job)
        model = try c.decode(String.self, forKey: .model)
        checkpoint = try c.decode(String.self, forKey: .checkpoint)
        selection = try c.decode(String.self, forKey: .selection)
        views = try c.decode(String.self, forKey: .views)
        standard = try c.decode(CandidateCoding.self, forKey: .standard).candidate
        budgets = try c.decode([Int].self, forKey: .budgets)
        cellsTotal = try c.decode(Int.self, forKey: .cellsTotal)
        cellsDone = try c.decode(Int.self, forKey: .cellsDone)
        chosenOn = try c.decode(String.self, forKey: .chosenOn)
        grid = try c.decode([CellResult].self, forKey: .grid)
        perBudget = try c.decode([BudgetSummary].self, forKey: .perBudget)
        unreadable = try c.decode([UnreadableVideo].self, forKey: .unreadable)
        notes = try c.decode([String].self, forKey: .notes)
        summary = try c.decode(String.self, forKey: .summary)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        // Written as null rather than left out, so every report has the same keys.
        try c.encode(job, forKey: .job)
        try c.encode(model, forKey: .model)
        try c.encode(checkpoint, forKey: .checkpoint)
        try c.encode(selection, forKey: .selection)
        try c.encode(views, forKey: .views)
        try c.encode(CandidateCoding(standard), forKey: .standard)
        try c.encode(budgets, forKey: .budgets)
        try c.encode(cellsTotal, forKey: .cellsTotal)
        try c.encode(cellsDone, forKey: .cellsDone)
        try c.encode(chosenOn, forKey: .chosenOn)
        try c.encode(grid, forKey: .grid)
        try c.encode(perBudget, forKey: .perBudget)
        try c.encode(unreadable, forKey: .unreadable)
        try c.encode(notes, forKey: .notes)
        try c.encode(summary, forKey: .summary)
    }
}

/// One budget of a report: the standard cell beside the TO pick.
public struct BudgetSummary: Codable, Equatable, Sendable {
    /// The token budget.
    public var budget: Int
    /// Cells of this budget in the whole sweep.
    public var cells: Int
    /// Of those, cells not finished yet.
    public var pending: Int
    /// The standard sampling's cell; nil when it is not in the grid (`selection: none` over the budget) or has not
    /// finished.
    public var standard: CellResult?
    /// The TO pick among the finished cells: the highest top-1 on the basis (`chosen_on`), then the higher top-5,
    /// then fewer GMACs, then the lower index.
    public var best: CellResult?
    /// `best.eval.top1 − standard.eval.top1` as a fraction (0.031 is 3.1 points); nil without both.
    public var gain: Double?

    /// A summary; `pending` and `gain` follow from the others.
    public init(budget: Int, cells: Int, done: Int, standard: CellResult?, best: CellResult?) {
        self.budget = budget
        self.cells = max(cells, done)
        pending = self.cells - done
        self.standard = standard
        self.best = best
        if let best, let standard { gain = best.eval.top1 - standard.eval.top1 }
    }

    init(budget: Int, results: [CellResult], cells: Int, onChooseOn: Bool) {
        let metrics = { (result: CellResult) in onChooseOn ? result.chooseOn ?? result.eval : result.eval }
        let best = results.min { a, b in
            let ma = metrics(a), mb = metrics(b)
            if ma.top1 != mb.top1 { return ma.top1 > mb.top1 }
            if ma.top5 != mb.top5 { return ma.top5 > mb.top5 }
            if a.cell.gmacs != b.cell.gmacs { return a.cell.gmacs < b.cell.gmacs }
            return a.cell.index < b.cell.index
        }
        self.init(
            budget: budget, cells: cells, done: results.count, standard: results.first { $0.cell.isStandard },
            best: best)
    }

    enum CodingKeys: String, CodingKey { case budget, cells, pending, standard, best, gain }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        budget = try c.decode(Int.self, forKey: .budget)
        cells = try c.decode(Int.self, forKey: .cells)
        pending = try c.decode(Int.self, forKey: .pending)
        standard = try c.decodeIfPresent(CellResult.self, forKey: .standard)
        best = try c.decodeIfPresent(CellResult.self, forKey: .best)
        gain = try c.decodeIfPresent(Double.self, forKey: .gain)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(budget, forKey: .budget)
        try c.encode(cells, forKey: .cells)
        try c.encode(pending, forKey: .pending)
        try c.encode(standard, forKey: .standard)
        try c.encode(best, forKey: .best)
        try c.encode(gain, forKey: .gain)
    }

    /// The gain in tenths of a point, as the report prints it: 0 is a tie at the printed precision.
    var gainTenths: Int? { gain.map { Int(($0 * 1000).rounded()) } }
}

extension SweepReport {
    /// The verdict in one sentence, honest whichever way it goes: "TO beats the standard 8×224 at 2 of 4 budgets
    /// (512: +3.1 points, 1024: +1.2 points); ties at 2048 (the standard is the best); below at 3072 (-0.4
    /// points)." Budgets without both cells are named with the reason, and a partial sweep says so.
    public func summarySentence() -> String {
        guard cellsDone > 0 else { return "No cells finished yet (0 of \(cellsTotal))." }
        let compared = perBudget.filter { $0.gainTenths != nil }
        let beats = compared.filter { $0.gainTenths! > 0 }
        let ties = compared.filter { $0.gainTenths! == 0 }
        let below = compared.filter { $0.gainTenths! < 0 }
        let points = { (s: BudgetSummary) in "\(s.budget): \(Format.signedPoints(s.gain!)) points" }

        var clauses: [String] = []
        let budgetCount = "\(perBudget.count) budget\(perBudget.count == 1 ? "" : "s")"
        if beats.isEmpty {
            clauses.append("TO does not beat the standard \(standard.label) at any of \(budgetCount)")
        } else {
            clauses.append(
                "TO beats the standard \(standard.label) at \(beats.count) of \(budgetCount) "
                    + "(\(beats.map(points).joined(separator: ", ")))")
        }
        if !ties.isEmpty {
            let same = ties.filter { $0.best?.cell.index == $0.standard?.cell.index }
            let note = same.count == ties.count ? " (the standard is the best)" : same.isEmpty ? "" :
                " (the standard is the best at \(same.map { String($0.budget) }.joined(separator: ", ")))"
            clauses.append("ties at \(ties.map { String($0.budget) }.joined(separator: ", "))\(note)")
        }
        if !below.isEmpty {
            // Only a pick made on other metrics (choose_on) can fall below the standard on eval.
            clauses.append(
                "below at \(below.map(points).joined(separator: ", ")), chosen on \(chosenOn)")
        }
        let uncompared = perBudget.filter { $0.gainTenths == nil }
        if !uncompared.isEmpty {
            let reasons = uncompared.map { s -> String in
                if s.best == nil { return "\(s.budget) (no cell finished)" }
                return "\(s.budget) (\(s.pending > 0 ? "standard pending" : "no standard cell"))"
            }
            clauses.append("no comparison at \(reasons.joined(separator: ", "))")
        }
        var sentence = clauses.joined(separator: "; ") + "."
        if cellsDone < cellsTotal {
            sentence += " Partial sweep: \(cellsDone) of \(cellsTotal) cells done."
        }
        return sentence
    }
}
