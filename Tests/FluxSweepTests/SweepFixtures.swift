import FluxJobs
import FluxTraining

@testable import FluxSweep

/// Synthetic sweeps: cells expanded as `SweepSpec.cells(model:)` orders them (budget, then frames, then size), with
/// a patch of 14 and a cost model shaped like spec §7's count, and metrics chosen per test.
enum SweepFixture {
    static let standard = SweepSpec.Candidate(frames: 8, size: 224)

    /// Every cell of `budgets` × `frames` × `sizes`. `gmacsPerToken` scales the cost: 0.03 gives FluxViT-S-like
    /// 13–80 GMACs, 0.000004 a tiny model's thousandths.
    static func cells(
        budgets: [Int] = [512, 1024, 2048], frames: [Int] = [6, 8], sizes: [Int] = [168, 224],
        gmacsPerToken: Double = 0.03, selection: Bool = true
    ) -> [SweepCell] {
        var cells: [SweepCell] = []
        for budget in budgets {
            for t in frames {
                for r in sizes {
                    let sampled = t * (r / 14) * (r / 14)
                    if !selection && sampled > budget { continue }
                    let kept = min(sampled, budget)
                    // Blocks grow a little faster than linearly in the kept tokens; the patch embedding sees all.
                    let gmacs = gmacsPerToken * (Double(kept) * (1 + Double(kept) / 4096) + 0.05 * Double(sampled))
                    cells.append(
                        SweepCell(
                            index: cells.count, budget: budget, candidate: .init(frames: t, size: r),
                            sampledTokens: sampled, keptTokens: kept, head: budget >= 2048 ? 0 : budget >= 1024 ? 1 : 2,
                            gmacs: gmacs, isStandard: t == standard.frames && r == standard.size))
                }
            }
        }
        return cells
    }

    /// Results for `cells`, with eval top-1 from `top1(cell)` (top-5 a bit higher) and optional choose_on top-1.
    static func results(
        _ cells: [SweepCell], top1: (SweepCell) -> Double, top5: ((SweepCell) -> Double)? = nil,
        chooseOn: ((SweepCell) -> Double)? = nil
    ) -> [CellResult] {
        cells.map { cell in
            let t1 = top1(cell)
            return CellResult(
                cell: cell,
                eval: CellMetrics(top1: t1, top5: top5?(cell) ?? min(1, t1 + 0.15), videos: 200, unreadable: 1),
                chooseOn: chooseOn.map { f in CellMetrics(top1: f(cell), top5: min(1, f(cell) + 0.1), videos: 100) })
        }
    }

    /// A plausible accuracy surface: more frames and pixels help, the budget helps most, and at 512 tokens a
    /// smaller sampling beats the standard 8×224 (the point of Token Optimization).
    static func plausibleTop1(_ cell: SweepCell) -> Double {
        let base = [512: 0.62, 1024: 0.70, 2048: 0.74][cell.budget] ?? 0.6
        let sampling = cell.candidate.frames == 8 && cell.candidate.size == 224 ? 0.0
            : cell.candidate.frames == 6 && cell.candidate.size == 224 ? (cell.budget == 512 ? 0.031 : 0.004)
            : cell.candidate.frames == 8 && cell.candidate.size == 168 ? (cell.budget == 2048 ? -0.01 : 0.012)
            : -0.02
        return base + sampling
    }

    static func report(
        name: String = "to-k400-s", cells: [SweepCell], results: [CellResult], chosenOn: String = "eval",
        budgets: [Int] = [512, 1024, 2048], unreadable: [UnreadableVideo] = [], cellsPerBudget: [Int: Int]? = nil
    ) -> SweepReport {
        SweepReport(
            name: name, job: "j-000007", model: "FluxViT-S (22M parameters, patch 14)",
            checkpoint: "/runs/fluxvit-s/step-000500", selection: "group", views: "1×3", standard: standard,
            budgets: budgets, cellsTotal: cells.count, results: results, unreadable: unreadable, chosenOn: chosenOn,
            cellsPerBudget: cellsPerBudget)
    }
}
