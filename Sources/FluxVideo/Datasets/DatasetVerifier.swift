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

    /// Opens each entry with `VideoReader` (libavformat: the stream info and the packet index) and decodes its first
    /// frame with libavcodec.
    /// - Parameter progress: called after each entry with (entries checked, total).
    public static func verify(_ manifest: Manifest, progress: (Int, Int) -> Void = { _, _ in }) -> Report {
        var failures: [Failure] = []
        for (i, entry) in manifest.entries.enumerated() {
            do {
                // One decoder thread: verification walks many files, and the decoder's error lines (`Invalid NAL
                // unit size`) are logged against the watched context only without frame threads.
                let reader = try VideoReader(path: entry.url.path, threads: 1)
                _ = try reader.frames(at: [0], width: reader.width, height: reader.height)
            } catch {
                let (call, reason) = failedCall(error)
                failures.append(Failure(entry: entry, call: call, reason: reason))
            }
            progress(i + 1, manifest.entries.count)
        }
        return Report(checked: manifest.entries.count, failures: failures)
    }

    /// The FFmpeg call and reason a reader's error names, for the one-line report.
    private static func failedCall(_ error: VideoError) -> (call: String, reason: String) {
        switch error {
        case let .cannotOpen(_, call, reason), let .decodeFailed(_, call, reason):
            (call, reason)
        case let .truncated(_, expected, readable, reason):
            ("av_read_frame", "truncated: \(readable) of \(expected) video packets readable (\(reason))")
        case .noVideoStream:
            ("av_find_best_stream", "no decodable video stream")
        case .frameOutOfRange, .invalidGeometry, .encodeFailed, .noEncoder, .invalidParameter, .cannotWrite:
            ("open", error.description)
        }
    }
}
