import ArgumentParser
import Foundation
import FluxVideo

/// `flux-bench video FILE`: the per-clip cost of test-time sparse sampling (open, index, seek, decode, convert),
/// or with `--full` of decoding and converting every frame.
struct VideoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "video",
        abstract: "Time sparse sampling of one clip: open FILE, decode the segment-middle frames, convert to size².",
        discussion: """
            Sparse (default): the spec §6 test clip, --frames segment-middle frames, each the centre square of the \
            short side scaled to --size², normalized to [3, T, size, size]. --full: every frame decoded and \
            converted to RGB24 at --size² (same crop), not normalized.
            """)

    @Argument(help: "A video file FFmpeg can read.") var file: String
    @Option(help: "Frames per clip (spec §6 test sampling, one clip).") var frames: Int = 8
    @Option(help: "Square output size (short-side resize and centre crop).") var size: Int = 224
    @Option(help: "Decoder frame threads.") var threads: Int = 2
    @Option(help: "Timed runs (median reported).") var runs: Int = 10
    @Option(help: "Untimed warm-up runs.") var warmup: Int = 1
    @Flag(help: "Decode and convert every frame instead of sampling --frames.") var full = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        var decoded = 0, frameCount = 0, seeks = 0, dropped = 0
        var width = 0, height = 0, codec = ""
        let (median, all) = try medianSeconds(runs: runs, warmup: warmup) {
            let reader = try VideoReader(path: file, threads: threads)
            if full {
                let crop = ClipTransforms.shortSideCrop(frameWidth: reader.width, frameHeight: reader.height)
                _ = try reader.frames(at: Array(0..<reader.frameCount), width: size, height: size, crop: crop)
            } else {
                let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: frames)
                _ = try reader.testClip(at: indices, size: size)
            }
            decoded = reader.decodedFrameCount
            seeks = reader.seekCount
            dropped = reader.droppedPacketCount
            frameCount = reader.frameCount
            (width, height, codec) = (reader.width, reader.height, reader.codecName)
        }
        if json {
            try printJSON([
                "bench": "video", "file": file, "mode": full ? "full" : "sparse\(frames)", "median_s": median,
                "runs_s": all, "frames": full ? frameCount : frames, "size": size,
                "threads": threads, "frame_count": frameCount, "decoded_frames": decoded, "seeks": seeks,
                "dropped_packets": dropped,
                "width": width, "height": height, "codec": codec,
            ])
        } else {
            print("""
                video \(file) (\(codec) \(width)×\(height), \(frameCount) frames) · \(full ? "all" : "\(frames)") frames → \(size)² · \(threads) threads
                  median \(String(format: "%.4f", median)) s per clip over \(runs) runs · \(decoded) frames decoded · \(seeks) seeks
                """)
        }
    }
}
