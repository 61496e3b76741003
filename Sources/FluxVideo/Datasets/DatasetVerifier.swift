/// Checks that every video of a manifest opens and decodes, and reports the ones that do not.
public enum DatasetVerifier {
    /// One unreadable video.
    public struct Failure: Sendable, Equatable, CustomStringConvertible {
        /// The manifest entry.
        public var entry: ManifestEntry
        /// The FFmpeg call that failed.
        public var call: String
        /// FFmpeg's reason, from `av_strerror`.
        public var reason: String

        /// `path (manifest line N): call: reason`.
        public var description: String { "\(entry.url.path) (line \(entry.line)): \(call) failed: \(reason)" }
    }

    /// The outcome of a verification run.
    public struct Report: Sendable, Equatable {
        /// Entries checked.
        public var checked: Int
        /// The entries that failed, in manifest order.
        public var failures: [Failure]
        /// Whether every entry decoded.
        public var isClean: Bool { failures.isEmpty }
    }

    /// Opens each entry with libavformat, reads its stream info and decodes its first frame with libavcodec.
    /// - Parameter progress: called after each entry with (entries checked, total).
    public static func verify(_ manifest: Manifest, progress: (Int, Int) -> Void = { _, _ in }) -> Report {
        var failures: [Failure] = []
        for (i, entry) in manifest.entries.enumerated() {
            do {
                _ = try VideoFileReader.probe(path: entry.url.path)
            } catch let DatasetError.ffmpeg(_, call, reason) {
                failures.append(Failure(entry: entry, call: call, reason: reason))
            } catch {
                failures.append(Failure(entry: entry, call: "open", reason: "\(error)"))
            }
            progress(i + 1, manifest.entries.count)
        }
        return Report(checked: manifest.entries.count, failures: failures)
    }
}
