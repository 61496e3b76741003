import FluxTraining

/// Accuracy of one evaluation setting, from its per-video scores (spec §6: a video's prediction is the mean of
/// its views' softmax, already in `VideoScores`).
public struct CellMetrics: Sendable, Equatable, Codable {
    /// Fraction of scored videos whose most probable class is the label.
    public var top1: Double
    /// Fraction whose label is among the five most probable classes.
    public var top5: Double
    /// Top-1 accuracy of each class's videos; nil for a class without videos.
    public var perClass: [Double?]
    /// Videos scored.
    public var videos: Int
    /// Videos that could not be read (not counted in the accuracies; named in the report).
    public var unreadable: Int

    /// The metrics of `scores`. Ties rank the lower class index first.
    public init(scores: VideoScores) {
        let K = scores.classes
        var correct1 = 0, correct5 = 0
        var classVideos = [Int](repeating: 0, count: K), classCorrect = classVideos
        for (i, label) in scores.labels.enumerated() {
            let row = scores.probabilities[i * K..<(i + 1) * K]
            let top = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                .prefix(5).map { $0 - i * K }
            if label >= 0 && label < K { classVideos[label] += 1 }
            if top.first == label {
                correct1 += 1
                if label >= 0 && label < K { classCorrect[label] += 1 }
            }
            if top.contains(label) { correct5 += 1 }
        }
        let n = scores.videos.count
        top1 = n == 0 ? 0 : Double(correct1) / Double(n)
        top5 = n == 0 ? 0 : Double(correct5) / Double(n)
        perClass = (0..<K).map { classVideos[$0] == 0 ? nil : Double(classCorrect[$0]) / Double(classVideos[$0]) }
        videos = n
        unreadable = scores.unreadable.count
    }

    enum CodingKeys: String, CodingKey { case top1, top5, perClass = "per_class", videos, unreadable }
}
