import Foundation
import FluxData
import FluxVideo
import FluxTensor
import FluxTraining
import Testing

/// `VideoDataset` on real encoded videos: the same step gives the same clips however the global
/// batch is split across ranks, and an unreadable video is skipped and reported, never replaced.
@Suite struct VideoDatasetTests {
    static func dataset() throws -> (folder: URL, manifest: Manifest) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-videodataset-\(UUID().uuidString)")
        _ = try SyntheticVideoDataset.write(to: folder, classes: 4, videosPerClass: 3, frames: 12, size: 32, seed: 5)
        // One entry that is not a video at all.
        try Data(repeating: 0x5A, count: 512).write(to: folder.appendingPathComponent("broken.mp4"))
        var manifest = try Manifest.load(path: folder.appendingPathComponent("train.csv").path)
        manifest.entries.append(ManifestEntry(path: "broken.mp4", url: folder.appendingPathComponent("broken.mp4"), label: 1, line: 99))
        return (folder, manifest)
    }

    @Test func batches_areTheSameOnAnyNumberOfRanks_andSkipUnreadableVideos() throws {
        let (folder, manifest) = try Self.dataset()
        defer { try? FileManager.default.removeItem(at: folder) }
        let plan = SamplingPlan(frames: 4, resolution: 32, tokens: 16)
        let batch = manifest.entries.count  // one step covers every entry, the broken one included
        var perWorld: [[Tensor]] = []
        for world in [1, 2, 3] {
            var clips: [Tensor] = []
            var skipped: [Int] = []
            for rank in 0..<world {
                let data = VideoDataset(manifest: manifest, seed: 9, augment: true, flip: false)
                let part = try data.batch(epoch: 1, step: 0, rank: rank, worldSize: world, globalBatch: batch, plan: plan)
                clips += part.samples.map(\.clip)
                skipped += part.skipped
                #expect(part.samples.allSatisfy { $0.clip.shape == [3, 4, 32, 32] })
            }
            #expect(skipped == [manifest.entries.count - 1], "the broken video is skipped, not replaced")
            #expect(clips.count == manifest.entries.count - 1)
            perWorld.append(clips)
        }
        #expect(perWorld[0] == perWorld[1] && perWorld[0] == perWorld[2], "clips must not depend on the world size")

        let data = VideoDataset(manifest: manifest, seed: 9, augment: false)
        #expect(data.testSample(index: manifest.entries.count - 1, frames: 4, size: 32) == nil)
        #expect(data.unreadable.first?.line == 99)
        let clip = try #require(data.testSample(index: 0, frames: 4, size: 32))
        #expect(clip.label == manifest.entries[0].label && clip.clip.maxAbs > 0)
    }
}
