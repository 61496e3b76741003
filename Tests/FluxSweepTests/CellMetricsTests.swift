import FluxTraining
import Testing

@testable import FluxSweep

@Suite struct CellMetricsTests {
    @Test func metrics_threeVideos_countTop1Top5AndPerClass() {
        // 6 classes; video 0 (label 0) right; video 1 (label 1) ranks its label second; video 2 (label 5) sixth.
        let scores = VideoScores(
            classes: 6, videos: [0, 1, 2], labels: [0, 1, 5],
            probabilities: [0.5, 0.1, 0.1, 0.1, 0.1, 0.1,
                            0.4, 0.3, 0.1, 0.1, 0.1, 0.0,
                            0.3, 0.2, 0.2, 0.1, 0.1, 0.1],
            unreadable: [UnreadableVideo(index: 3, path: "bad.mp4", line: 5, reason: "no stream")])
        let metrics = CellMetrics(scores: scores)
        #expect(metrics.top1 == 1.0 / 3)
        #expect(metrics.top5 == 2.0 / 3)
        #expect(metrics.perClass == [1, 0, nil, nil, nil, 0])
        #expect(metrics.videos == 3)
        #expect(metrics.unreadable == 1)
    }

    @Test func merged_shardsOutOfOrder_giveOneListInVideoOrder() {
        let a = VideoScores(classes: 2, videos: [2, 3], labels: [1, 0], probabilities: [0, 1, 1, 0])
        let b = VideoScores(classes: 2, videos: [0, 1], labels: [0, 0], probabilities: [1, 0, 0.5, 0.5])
        let merged = VideoScores.merged([a, b])
        #expect(merged.videos == [0, 1, 2, 3])
        #expect(merged.probabilities == [1, 0, 0.5, 0.5, 0, 1, 1, 0])
    }
}
