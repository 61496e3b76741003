import Foundation

/// One line of training progress for a terminal: step of total, a bar, the loss, clips/s and the
/// time left. Pure formatting, so it is tested without a terminal.
public struct ProgressLine: Sendable {
    public var total: Int
    public var width: Int = 24
    /// The step this run started after (a resumed run's first step); the time left is paced by this run alone.
    public var firstStep: Int = 0

    public init(total: Int, width: Int = 24, firstStep: Int = 0) {
        self.total = total
        self.width = width
        self.firstStep = firstStep
    }

    /// The line after `step` of `total` steps (1-based), `elapsed` seconds since this run started.
    public func render(step: Int, loss: Double, clipsPerSecond: Double, elapsed: Double) -> String {
        let fraction = total > 0 ? min(1, Double(step) / Double(total)) : 1
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let done = step - firstStep
        let remaining = done > 0 ? elapsed / Double(done) * Double(max(total - step, 0)) : 0
        let digits = String(total).count
        let stepText = String(repeating: " ", count: max(0, digits - String(step).count)) + String(step)
        return "step \(stepText)/\(total) \(bar) loss \(String(format: "%.4f", loss)) · "
            + "\(String(format: "%.1f", clipsPerSecond)) clips/s · ETA \(Self.duration(remaining))"
    }

    /// The line after `done` of `total` items (`unit`s, plural), `elapsed` seconds since this run started:
    /// "videos  3/8 █████████··············· 2.1 videos/s · ETA 2s".
    public func render(done: Int, unit: String, elapsed: Double) -> String {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let counted = done - firstStep
        let rate = elapsed > 0 ? Double(counted) / elapsed : 0
        let remaining = counted > 0 ? elapsed / Double(counted) * Double(max(total - done, 0)) : 0
        let digits = String(total).count
        let doneText = String(repeating: " ", count: max(0, digits - String(done).count)) + String(done)
        return "\(unit) \(doneText)/\(total) \(bar) \(String(format: "%.1f", rate)) \(unit)/s · ETA \(Self.duration(remaining))"
    }

    /// "42s", "3m05s", "1h02m".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, s % 3600 / 60)
    }
}
