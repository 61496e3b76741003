/// A failure to write or read a video dataset file through FFmpeg, or an invalid dataset request.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    /// An FFmpeg call failed on `path`; `reason` is FFmpeg's own text from `av_strerror`.
    case ffmpeg(path: String, call: String, reason: String)
    /// No usable encoder is present in this FFmpeg build.
    case noEncoder(tried: [String])
    /// A synthetic dataset parameter is out of range.
    case invalidParameter(name: String, value: Int, expected: String)
    /// A file or folder could not be created.
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case let .ffmpeg(path, call, reason):
            "video '\(path)': \(call) failed: \(reason). Check that the file exists and that FFmpeg can read or write it."
        case let .noEncoder(tried):
            "no video encoder found (tried \(tried.joined(separator: ", "))); install an FFmpeg build with libx264 or mpeg4."
        case let .invalidParameter(name, value, expected):
            "\(name) is \(value), expected \(expected)."
        case let .cannotWrite(path, reason):
            "cannot write '\(path)': \(reason). Check that the folder is writable and the disk has space."
        }
    }
}
