import ArgumentParser
import FluxVideo
import Foundation

/// `fluxctl dataset`: write and check video datasets.
struct Dataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a synthetic video dataset or verify that a manifest's videos decode.",
        subcommands: [Synth.self, Verify.self])
}

extension VideoEncoderChoice: ExpressibleByArgument {}

extension Dataset {
    /// `fluxctl dataset synth`: a motion-only classification dataset, encoded with FFmpeg.
    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a synthetic dataset whose classes differ only by motion.",
            discussion: """
                Writes DIR/videos/NNNNN.mp4 (one file per video), DIR/train.csv and DIR/val.csv ('path,label', \
                paths relative to DIR, a per-class split) and DIR/classes.txt. Class k moves its bright shapes \
                right, left, up or down (k mod 4) across a dark textured background, twice as fast for \
                (k / 4) mod 2 = 1, and spins them clockwise or counter-clockwise for k / 8 = 1 or 2; smaller \
                shapes jitter in place as distractors. A single frame cannot tell the class; --still writes that \
                control (each video one frame of its moving version, repeated).
                """)

        @Option(help: ArgumentHelp("Output folder (created if needed).", valueName: "dir"))
        var out: String

        @Option(help: "Number of classes (1…\(MotionClass.maximumCount)).")
        var classes: Int = 4

        @Option(name: .customLong("videos-per-class"), help: "Videos for each class.")
        var videosPerClass: Int = 500

        @Option(help: "Frames in each video.")
        var frames: Int = 16

        @Option(help: "Frame width and height in pixels (even).")
        var size: Int = 64

        @Option(help: "Seed for every random choice; the same seed writes the same frames.")
        var seed: UInt64 = 0

        @Option(name: .customLong("val-percent"), help: "Percent of each class's videos listed in val.csv.")
        var valPercent: Int = 20

        @Option(help: "Encoder: automatic (libx264 if present, else mpeg4), h264 or mpeg4.")
        var encoder: VideoEncoderChoice = .automatic

        @Flag(help: "The single-frame control: every video repeats one frame of its moving version.")
        var still = false

        func run() throws {
            var request = SyntheticVideoDataset(
                classes: classes, videosPerClass: videosPerClass, frames: frames, size: size, seed: seed)
            request.validationFraction = Double(valPercent) / 100
            request.encoder = encoder
            request.still = still
            let bar = ProgressBar(label: "writing")
            let start = ContinuousClock.now
            let summary = try reportingErrors {
                try request.write(to: URL(fileURLWithPath: out, isDirectory: true)) { bar.update($0, of: $1) }
            }
            bar.finish()
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            print("wrote \(summary.trainCount + summary.validationCount) videos (\(summary.trainCount) train, "
                  + "\(summary.validationCount) val, \(summary.classNames.count) classes, \(frames) frames of "
                  + "\(size)×\(size), \(summary.encoder), \(summary.bytes / 1024) KiB) to \(summary.folder.path) in "
                  + String(format: "%.1f s", seconds))
        }
    }

    /// `fluxctl dataset verify`: decode the first frame of every video a manifest lists.
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that every video in a manifest opens and decodes.",
            discussion: """
                Opens each entry with libavformat, reads its stream info and packet index, and decodes its first \
                frame with libavcodec. Prints one line per unreadable file with FFmpeg's reason, and exits with \
                status 1 if there is any.
                """)

        @Argument(help: "Manifest: 'path,label' CSV or 'path label' lines.")
        var manifest: String

        @Option(help: ArgumentHelp("Folder that relative paths are under (default: the manifest's folder).", valueName: "dir"))
        var root: String?

        func run() throws {
            let list = try reportingErrors { try Manifest.load(path: manifest, root: root) }
            let bar = ProgressBar(label: "verifying")
            let report = DatasetVerifier.verify(list) { bar.update($0, of: $1) }
            bar.finish()
            for failure in report.failures { print("unreadable: \(failure)") }
            print("checked \(report.checked) videos from \(manifest): "
                  + (report.isClean ? "all decode" : "\(report.failures.count) unreadable"))
            if !report.isClean { throw ExitCode.failure }
        }
    }
}

/// Runs `body`, printing a typed error's actionable message on stderr and exiting with status 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    private let label: String
    private let enabled = isatty(STDERR_FILENO) != 0
    private var drawn = false

    init(label: String) { self.label = label }

    func update(_ done: Int, of total: Int) {
        guard enabled, total > 0 else { return }
        let width = 30, filled = width * done / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
