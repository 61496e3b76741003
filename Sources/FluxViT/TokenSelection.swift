/// Group token selection (spec §4.2): keep, per group of consecutive frames, the tokens whose
/// embedding changes most from the neighbouring frame.
///
/// Deviations from the official code, both documented in docs/architecture.md:
/// - Groups of a single frame have no pair to compare (the official code fails on them): while
///   T/G < 2 we halve G, so T = 4 uses 2 groups of 2.
/// - The official descending sort is not stable, so ties straddling the cut-off (frames 0 and 1 of
///   a group always tie) keep an undefined set; we break ties by the lower token index.
public enum TokenSelection {
    /// Number of groups G for T frames (T even).
    public static func groupCount(frames: Int) -> Int {
        var groups = frames % 4 == 0 ? 4 : (frames == 2 ? 1 : 2)
        while groups > 1 && frames / groups < 2 { groups /= 2 }
        return groups
    }

    /// Tokens kept per group, k = int((1 − r)·(T/G·L)) with r = 1 − budget/N, in float64 exactly
    /// as the official code computes it (so it may round to one fewer than budget/G).
    public static func keptPerGroup(frames: Int, tokensPerFrame: Int, budget: Int) -> Int {
        let groups = groupCount(frames: frames)
        let total = Double(frames * tokensPerFrame)
        let ratio = 1.0 - Double(budget) / total
        return Int((1.0 - ratio) * (Double(frames) / Double(groups) * Double(tokensPerFrame)))
    }

    /// Importance of every patch token of one sample: for frame t of a group and position l,
    /// ‖e[t+1][l] − e[t][l]‖₂ for the group's first frame and ‖e[t][l] − e[t−1][l]‖₂ after it.
    /// embed: [T, L, C] (ld = C); importance: [T, L].
    public static func importance(
        embed: UnsafePointer<Float>, frames: Int, tokensPerFrame: Int, channels: Int,
        into importance: UnsafeMutablePointer<Float>
    ) {
        let groups = groupCount(frames: frames)
        let perGroup = frames / groups
        for g in 0..<groups {
            for local in 0..<(perGroup - 1) {
                let t = g * perGroup + local
                for l in 0..<tokensPerFrame {
                    let a = embed + (t * tokensPerFrame + l) * channels
                    let b = a + tokensPerFrame * channels
                    var sum: Float = 0
                    for c in 0..<channels {
                        let d = b[c] - a[c]
                        sum += d * d
                    }
                    let distance = sum.squareRoot()
                    importance[(t + 1) * tokensPerFrame + l] = distance
                    if local == 0 { importance[t * tokensPerFrame + l] = distance }
                }
            }
        }
    }

    /// Indices (0 ..< T·L, ascending) of the tokens kept under `budget`, G·k of them.
    public static func select(
        importance: UnsafePointer<Float>, frames: Int, tokensPerFrame: Int, budget: Int
    ) -> [Int] {
        let groups = groupCount(frames: frames)
        let groupSize = frames / groups * tokensPerFrame
        let k = keptPerGroup(frames: frames, tokensPerFrame: tokensPerFrame, budget: budget)
        var kept: [Int] = []
        kept.reserveCapacity(groups * k)
        var order = [Int](repeating: 0, count: groupSize)
        for g in 0..<groups {
            let base = g * groupSize
            for i in 0..<groupSize { order[i] = base + i }
            // Stable descending: equal importances keep the lower index first.
            order.sort { importance[$0] > importance[$1] || (importance[$0] == importance[$1] && $0 < $1) }
            kept += order[0..<k].sorted()
        }
        return kept
    }
}
