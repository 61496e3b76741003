import CFFmpeg
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small bridges over FFmpeg's C macros, which Swift does not import.
enum FFmpeg {
    /// `AVERROR(EAGAIN)`: the codec wants the other side of the send/receive pair first.
    static let again: Int32 = -EAGAIN
    /// `AVERROR_EOF`, `FFERRTAG('E','O','F',' ')`.
    static let endOfFile: Int32 = -Int32(bitPattern: UInt32(0x45) | UInt32(0x4F) << 8 | UInt32(0x46) << 16 | UInt32(0x20) << 24)

    /// FFmpeg's own text for an error code, from `av_strerror`.
    static func reason(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        if av_strerror(code, &buffer, buffer.count) < 0 { return "FFmpeg error \(code)" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Keeps libx264's per-file info lines (cpu capabilities, profile, stats) off stderr; errors still show.
    static func quietLogs() {
        if av_log_get_level() > AV_LOG_ERROR { av_log_set_level(AV_LOG_ERROR) }
    }
}
