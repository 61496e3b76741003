import ArgumentParser
import Foundation
import FluxVideo

/// `flux-bench video FILE`: the per-clip cost of test-time sparse sampling (open, index, seek, decode, convert).
struct VideoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "video",
        abstract: "Time sparse sampling of one clip: open FILE, decode the segment-middle frames, convert to size².")

    @Argument(help: "A video file FFmpeg can read.") var file: String
    @Option(help: "Frames per clip (spec §6 test sampling, one clip).") var frames: Int = 8
    @Option(help: "Square output size (short-side resize and centre crop).") var size: Int = 224
    @Option(help: "Decoder frame threads.") var threads: Int = 2
    @Option(help: "Timed runs (median reported).") var runs: Int = 10
    @Option(help: "Untimed warm-up runs.") var warmup: Int = 1
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        var decoded = 0, frameCount = 0, seeks = 0
        var width = 0, height = 0, codec = ""
        let (median, all) = try medianSeconds(runs: runs, warmup: warmup) {
            let reader = try VideoReader(path: file, threads: threads)
            let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: frames)
            _ = try reader.testClip(at: indices, size: size)
            decoded = reader.decodedFrameCount
            seeks = reader.seekCount
            frameCount = reader.frameCount
            (width, height, codec) = (reader.width, reader.height, reader.codecName)
        }
        if json {
            try printJSON([
                "bench": "video", "file": file, "median_s": median, "runs_s": all, "frames": frames, "size": size,
                "threads": threads, "frame_count": frameCount, "decoded_frames": decoded, "seeks": seeks,
                "width": width, "height": height, "codec": codec,
            ])
        } else {
            print("""
                video \(file) (\(codec) \(width)×\(height), \(frameCount) frames) · \(frames) frames → \(size)² · \(threads) threads
                  median \(String(format: "%.4f", median)) s per clip over \(runs) runs · \(decoded) frames decoded · \(seeks) seeks
                """)
        }
    }
}
