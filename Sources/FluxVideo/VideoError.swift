/// Everything that can go wrong reading a video; each case names the file, the failing FFmpeg call where there
/// is one, FFmpeg's own reason (`av_strerror`) and what to do about it.
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
        }
    }
}
