/// Everything that can go wrong reading or writing a video, or in a synthetic dataset request; each case names the
/// file, the failing FFmpeg call where there is one, FFmpeg's own reason (`av_strerror`, plus the error lines FFmpeg
/// logged) and what to do about it. Manifest text errors are `ManifestError` (file and line, no FFmpeg).
public enum VideoError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened, demuxed or its decoder set up.
    case cannotOpen(path: String, call: String, reason: String)
    /// The file holds no video stream that FFmpeg can decode.
    case noVideoStream(path: String)
    /// A frame index outside `0..<frameCount`.
    case frameOutOfRange(path: String, index: Int, frameCount: Int)
    /// A requested output size or crop rectangle that cannot be produced.
    case invalidGeometry(path: String, detail: String)
    /// Decoding or converting a requested frame failed.
    case decodeFailed(path: String, call: String, reason: String)
    /// The file ends before the data its container promises (a partial download or copy).
    case truncated(path: String, expectedPackets: Int, readablePackets: Int, reason: String)
    /// An FFmpeg call failed while encoding or muxing `path` (`MP4VideoWriter`).
    case encodeFailed(path: String, call: String, reason: String)
    /// No usable encoder is present in this FFmpeg build.
    case noEncoder(tried: [String])
    /// A synthetic dataset or writer parameter is out of range.
    case invalidParameter(name: String, value: Int, expected: String)
    /// A file or folder of a dataset could not be created.
    case cannotWrite(path: String, reason: String)

    /// What failed, in which file, FFmpeg's reason, and how to fix it.
    public var description: String {
        switch self {
        case let .cannotOpen(p, call, r):
            "cannot open video '\(p)': \(call) failed: \(r). Check the path and that FFmpeg can demux it (`ffprobe '\(p)'`)."
        case let .noVideoStream(p):
            "'\(p)' has no decodable video stream. Check it with `ffprobe '\(p)'`; audio-only files cannot be sampled."
        case let .frameOutOfRange(p, i, n):
            "frame \(i) requested from '\(p)', which has \(n) frames (valid indices 0...\(max(n - 1, 0))). Sample indices with FrameSampling from the reader's frameCount."
        case let .invalidGeometry(p, d):
            "cannot convert frames of '\(p)': \(d). Request a positive output size and a crop inside the frame."
        case let .decodeFailed(p, call, r):
            "decoding '\(p)' failed: \(call): \(r). The file may be corrupt; check it with `ffmpeg -v error -i '\(p)' -f null -`."
        case let .truncated(p, expected, readable, r):
            "'\(p)' is truncated: its container indexes \(expected) video packets but only \(readable) can be read (\(r)). Re-download or re-encode the file."
        case let .encodeFailed(p, call, r):
            "writing video '\(p)': \(call) failed: \(r). Check that the folder is writable and that FFmpeg can encode mp4 (`ffmpeg -encoders`)."
        case let .noEncoder(tried):
            "no video encoder found (tried \(tried.joined(separator: ", "))); install an FFmpeg build with libx264 or mpeg4."
        case let .invalidParameter(name, value, expected):
            "\(name) is \(value), expected \(expected)."
        case let .cannotWrite(p, r):
            "cannot write '\(p)': \(r). Check that the folder is writable and the disk has space."
        }
    }
}
