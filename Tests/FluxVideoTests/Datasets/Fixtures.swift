import Foundation
@testable import FluxVideo

/// A small synthetic dataset written once per test process and shared by the suites that only read it.
enum Fixtures {
    static let classes = 4, videosPerClass = 6, frames = 16, size = 64, seed: UInt64 = 7

    static let sharedFolder = temporaryFolder("synth")
    private static let written = Result {
        // Removed when the test process exits; every suite that reads it runs before that.
        atexit { try? FileManager.default.removeItem(at: Fixtures.sharedFolder) }
        return try SyntheticVideoDataset.write(
            to: sharedFolder, classes: classes, videosPerClass: videosPerClass, frames: frames, size: size, seed: seed)
    }

    /// The shared dataset's folder and summary; a writing failure fails each test that needs it.
    static func dataset() throws -> (folder: URL, summary: SyntheticVideoDataset.Summary) {
        (sharedFolder, try written.get())
    }

    /// A fresh empty folder under the system's temporary directory.
    static func temporaryFolder(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("flux-datasets-tests-\(getpid())-\(name)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A decoded video as packed RGB24 frames, as `dominantShift` reads it.
    struct DecodedVideo {
        var width: Int, height: Int
        /// The frames in display order, each `width·height·3` bytes.
        var frames: [[UInt8]]
    }

    /// Every frame of `path` at its coded size, through `VideoReader`.
    static func decodeAll(path: String) throws -> DecodedVideo {
        let reader = try VideoReader(path: path, threads: 1)
        let frames = try reader.frames(at: Array(0..<reader.frameCount), width: reader.width, height: reader.height)
        return DecodedVideo(width: reader.width, height: reader.height, frames: frames.map(\.pixels))
    }

    /// Luma (BT.601) of packed RGB24 pixels.
    static func luma(_ rgb: [UInt8]) -> [Double] {
        var out = [Double](repeating: 0, count: rgb.count / 3)
        for i in out.indices {
            let r = 0.299 * Double(rgb[3 * i]), g = 0.587 * Double(rgb[3 * i + 1]), b = 0.114 * Double(rgb[3 * i + 2])
            out[i] = r + g + b
        }
        return out
    }

    /// Welch's t statistic for the difference of two sample means.
    static func welchT(_ a: [Double], _ b: [Double]) -> Double {
        func meanVar(_ x: [Double]) -> (Double, Double) {
            let m = x.reduce(0, +) / Double(x.count)
            return (m, x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1))
        }
        let (ma, va) = meanVar(a), (mb, vb) = meanVar(b)
        let se = (va / Double(a.count) + vb / Double(b.count)).squareRoot()
        return se == 0 ? 0 : (ma - mb) / se
    }

    /// The dominant motion of the pixels that change between frames, in pixels a frame.
    ///
    /// For every shift (dx, dy) in ±`reach`, counts the changed pixels of frame t+1 that frame t shifted by
    /// (dx, dy) explains, summed over all frame pairs (the frame wraps, as the scene does); returns the best shift.
    static func dominantShift(_ video: DecodedVideo, reach: Int = 4) -> (dx: Int, dy: Int) {
        let (w, h) = (video.width, video.height)
        let frames = video.frames.map(luma)
        var score = [Int](repeating: 0, count: (2 * reach + 1) * (2 * reach + 1))
        for t in 0..<(frames.count - 1) {
            let (a, b) = (frames[t], frames[t + 1])
            for y in 0..<h {
                for x in 0..<w where abs(b[y * w + x] - a[y * w + x]) > 40 {
                    var k = 0
                    for dy in -reach...reach {
                        for dx in -reach...reach {
                            let sx = (x - dx + w) % w, sy = (y - dy + h) % h
                            if abs(b[y * w + x] - a[sy * w + sx]) < 16 { score[k] += 1 }
                            k += 1
                        }
                    }
                }
            }
        }
        let best = score.indices.max { score[$0] < score[$1] }!
        return (best % (2 * reach + 1) - reach, best / (2 * reach + 1) - reach)
    }
}
