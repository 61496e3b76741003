import Foundation

/// Writes a synthetic video-classification dataset whose classes differ only by motion over time.
///
/// Layout of the folder: `videos/NNNNN.mp4` (one encoded file per video), `train.csv` and `val.csv`
/// (`path,label` with a header, paths relative to the folder, a per-class split), and `classes.txt` (one
/// `MotionClass` name a line, in label order). Video `c·N + n` is the n-th video of class c; its pixels depend only
/// on (seed, video index, class), so the same request always writes the same frames (and, on one machine, the same
/// file bytes).
public struct SyntheticVideoDataset: Sendable {
    /// Number of classes K (1 … `MotionClass.maximumCount`).
    public var classes: Int
    /// Videos N written for each class.
    public var videosPerClass: Int
    /// Frames F in each video.
    public var frames: Int
    /// Frame width and height S in pixels (even, ≥ 16).
    public var size: Int
    /// Seed for every random choice.
    public var seed: UInt64
    /// Fraction of each class's videos that goes to `val.csv` (at least one when a class has two or more videos).
    public var validationFraction: Double = 0.2
    /// Frame rate stored in the files.
    public var framesPerSecond: Int = 25
    /// The encoder to use.
    public var encoder: VideoEncoderChoice = .automatic
    /// The single-frame control: each video shows one frame of its moving version, picked uniformly (keyed by
    /// seed and video), for all F frames. Same files, manifests and class names; no motion left to learn from.
    public var still = false

    /// A request for K classes of N videos of F frames at S×S pixels.
    public init(classes: Int, videosPerClass: Int, frames: Int, size: Int, seed: UInt64) {
        self.classes = classes
        self.videosPerClass = videosPerClass
        self.frames = frames
        self.size = size
        self.seed = seed
    }

    /// What `write(to:progress:)` produced.
    public struct Summary: Sendable, Equatable {
        /// The dataset folder.
        public var folder: URL
        /// Class names in label order, as written to `classes.txt`.
        public var classNames: [String]
        /// Entries in `train.csv` and in `val.csv`.
        public var trainCount: Int, validationCount: Int
        /// The FFmpeg encoder used (`libx264` or `mpeg4`).
        public var encoder: String
        /// Total size of the video files in bytes.
        public var bytes: Int
    }

    /// Writes K·N videos and the manifests into `folder`, creating it if needed.
    ///
    /// - Parameter progress: called after each video with (videos written, total).
    /// - Throws: `VideoError.invalidParameter` for an out-of-range request, `VideoError.encodeFailed` when encoding
    ///   fails (the partial file is removed), `VideoError.cannotWrite` for file-system failures.
    @discardableResult
    public func write(to folder: URL, progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        try validate()
        let videos = folder.appendingPathComponent("videos")
        do {
            try FileManager.default.createDirectory(at: videos, withIntermediateDirectories: true)
        } catch {
            throw VideoError.cannotWrite(path: videos.path, reason: error.localizedDescription)
        }
        let total = classes * videosPerClass
        let validationPerClass = videosPerClass < 2
            ? 0 : max(1, Int((Double(videosPerClass) * validationFraction).rounded()))
        var train = "path,label\n", validation = "path,label\n"
        var encoderName = "", bytes = 0
        for label in 0..<classes {
            for n in 0..<videosPerClass {
                let index = label * videosPerClass + n
                let relative = "videos/" + Self.fileName(index: index, total: total)
                let path = folder.appendingPathComponent(relative).path
                encoderName = try writeVideo(path: path, index: index)
                bytes += (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                if n < videosPerClass - validationPerClass {
                    train += "\(relative),\(label)\n"
                } else {
                    validation += "\(relative),\(label)\n"
                }
                progress(index + 1, total)
            }
        }
        let names = (0..<classes).map { MotionClass(index: $0).name }
        try Self.writeText(train, to: folder.appendingPathComponent("train.csv"))
        try Self.writeText(validation, to: folder.appendingPathComponent("val.csv"))
        try Self.writeText(names.joined(separator: "\n") + "\n", to: folder.appendingPathComponent("classes.txt"))
        return Summary(folder: folder, classNames: names, trainCount: classes * (videosPerClass - validationPerClass),
                       validationCount: classes * validationPerClass, encoder: encoderName, bytes: bytes)
    }

    /// Writes a K-class dataset of N videos per class, F frames of S×S pixels, into `folder`.
    @discardableResult
    public static func write(to folder: URL, classes: Int, videosPerClass: Int, frames: Int, size: Int,
                             seed: UInt64, progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        try SyntheticVideoDataset(classes: classes, videosPerClass: videosPerClass, frames: frames, size: size,
                                  seed: seed).write(to: folder, progress: progress)
    }

    /// The scene of video `index` (class `index / videosPerClass`).
    public func scene(index: Int) -> SyntheticScene {
        SyntheticScene(size: size, frames: frames, motion: MotionClass(index: index / videosPerClass), seed: seed,
                       video: index, fastestSpeed: fastestSpeed)
    }

    /// The largest class speed among the K classes (their single frames share one position law at that speed).
    var fastestSpeed: Double { (0..<max(1, classes)).map { MotionClass(index: $0).speed }.max() ?? 1 }

    /// Checks the request; every problem a user can fix with a flag throws here, before any file is written.
    public func validate() throws {
        if !(1...MotionClass.maximumCount).contains(classes) {
            throw VideoError.invalidParameter(name: "classes", value: classes,
                                              expected: "1…\(MotionClass.maximumCount) (one per motion pattern)")
        }
        if videosPerClass < 1 {
            throw VideoError.invalidParameter(name: "videos per class", value: videosPerClass, expected: "≥ 1")
        }
        if frames < 2 {
            throw VideoError.invalidParameter(
                name: "frames", value: frames, expected: "≥ 2 (motion needs two frames)")
        }
        if size < 16 || size % 2 != 0 {
            throw VideoError.invalidParameter(name: "size", value: size, expected: "an even number of pixels ≥ 16")
        }
        if !(validationFraction >= 0 && validationFraction < 1) {
            throw VideoError.invalidParameter(name: "validation percent", value: Int(validationFraction * 100),
                                              expected: "0…99")
        }
    }

    private func writeVideo(path: String, index: Int) throws -> String {
        let scene = self.scene(index: index)
        do {
            let writer = try MP4VideoWriter(path: path, width: size, height: size,
                                            framesPerSecond: framesPerSecond, encoder: encoder)
            if still {
                var pick = SceneRandom(seed: seed, video: index, purpose: .stillFrame)
                let frame = scene.render(frame: pick.below(frames))
                for _ in 0..<frames { try writer.append(rgb: frame) }
            } else {
                for t in 0..<frames { try writer.append(rgb: scene.render(frame: t)) }
            }
            try writer.finish()
            return writer.encoderName
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
    }

    static func fileName(index: Int, total: Int) -> String {
        let digits = max(5, String(total - 1).count)
        let number = String(index)
        return String(repeating: "0", count: max(0, digits - number.count)) + number + ".mp4"
    }

    static func writeText(_ text: String, to url: URL) throws {
        do {
            try text.write(to: url, atomically: true, encoding: .utf8)
        } catch {
            throw VideoError.cannotWrite(path: url.path, reason: error.localizedDescription)
        }
    }
}
