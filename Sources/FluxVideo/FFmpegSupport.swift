import CFFmpeg
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// FFmpeg's message for an error code, as `av_strerror` writes it.
func ffmpegReason(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    if av_strerror(code, &buffer, buffer.count) < 0 { return "FFmpeg error \(code)" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// `AVERROR_EOF`: the function-like macro `FFERRTAG('E','O','F',' ')` does not import into Swift.
let averrorEOF: Int32 = -0x2046_4F45
/// `AV_NOPTS_VALUE`, likewise not importable.
let noPTS = Int64.min

/// The one place FluxVideo configures FFmpeg's logging, used by `VideoReader` and `MP4VideoWriter` alike.
///
/// FFmpeg's own lines (`moov atom not found`, `mmco: unref short failure` after a seek, libx264's per-file info)
/// would otherwise reach stderr from every reader and writer, so `install()` sets FFmpeg's level to quiet once per
/// process; `FLUX_FFMPEG_LOG` (`quiet`, `panic`, `fatal`, `error`, `warning`, `info`, `verbose`, `debug`, `trace`)
/// sets another level to debug a file. Nothing is lost for failures: a reader or writer `watch`es its contexts,
/// the error lines FFmpeg logs against them are kept (whatever the level), and `reason(_:contexts:)` appends them
/// to `av_strerror`'s text in the thrown `VideoError`.
enum FFmpegLog {
    /// Error lines kept per watched context; later ones are dropped (the first line is the telling one).
    static let maximumLines = 8

    /// Sets FFmpeg's log level and installs the capturing callback, once per process.
    static func install() {
        installed
    }

    private static let installed: Void = {
        let levels: [String: Int32] = [
            "quiet": AV_LOG_QUIET, "panic": AV_LOG_PANIC, "fatal": AV_LOG_FATAL, "error": AV_LOG_ERROR,
            "warning": AV_LOG_WARNING, "info": AV_LOG_INFO, "verbose": AV_LOG_VERBOSE, "debug": AV_LOG_DEBUG,
            "trace": AV_LOG_TRACE,
        ]
        let requested = getenv("FLUX_FFMPEG_LOG").map { String(cString: $0).lowercased() }
        av_log_set_level(requested.flatMap { levels[$0] } ?? AV_LOG_QUIET)
        av_log_set_callback(captureFFmpegLog)
    }()

    // The callback is process-wide (FFmpeg has one), so the lines it keeps are too; the lock guards them.
    private static let lock = NSLock()
    nonisolated(unsafe) private static var lines: [UInt: [String]] = [:]

    /// Starts keeping the error lines FFmpeg logs against `context` (an `AVFormatContext` or `AVCodecContext`).
    static func watch(_ context: UnsafeMutableRawPointer?) {
        guard let context else { return }
        lock.withLock { lines[UInt(bitPattern: context)] = [] }
    }

    /// Stops keeping lines for `context` and drops what it logged.
    static func unwatch(_ context: UnsafeMutableRawPointer?) {
        guard let context else { return }
        _ = lock.withLock { lines.removeValue(forKey: UInt(bitPattern: context)) }
    }

    /// Returns the lines `contexts` logged since they were watched or last taken, and forgets them.
    static func take(_ contexts: [UnsafeMutableRawPointer?]) -> [String] {
        lock.withLock {
            contexts.compactMap { $0 }.flatMap { context -> [String] in
                let key = UInt(bitPattern: context)
                guard let kept = lines[key] else { return [] }
                lines[key] = []
                return kept
            }
        }
    }

    /// `av_strerror`'s text for `code`, followed by the error lines `contexts` logged, if any:
    /// `Invalid data found when processing input (moov atom not found)`.
    static func reason(_ code: Int32, contexts: [UnsafeMutableRawPointer?]) -> String {
        let logged = take(contexts)
        return ffmpegReason(code) + (logged.isEmpty ? "" : " (" + logged.joined(separator: "; ") + ")")
    }

    /// Whether lines logged against `context` are kept.
    fileprivate static func isWatched(_ context: UnsafeMutableRawPointer) -> Bool {
        lock.withLock { lines[UInt(bitPattern: context)] != nil }
    }

    /// Keeps `line` if `context` is still watched and has room.
    fileprivate static func record(_ line: String, for context: UnsafeMutableRawPointer) {
        lock.withLock {
            let key = UInt(bitPattern: context)
            if let kept = lines[key], kept.count < maximumLines { lines[key] = kept + [line] }
        }
    }
}

/// FFmpeg's log callback: error lines of watched contexts are kept for `FFmpegLog.reason`, and printed too when
/// `FLUX_FFMPEG_LOG` asks for them; every other line goes to FFmpeg's default logger, which applies the level.
private func captureFFmpegLog(
    _ context: UnsafeMutableRawPointer?, _ level: Int32, _ format: UnsafePointer<CChar>?,
    _ arguments: CVaListPointer?
) {
    if let context, let format, let arguments, level <= AV_LOG_ERROR, FFmpegLog.isWatched(context) {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = vsnprintf(&buffer, buffer.count, format, arguments)
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        FFmpegLog.record(line, for: context)
        // The va_list is consumed: print the formatted line where the default logger would have.
        if level <= av_log_get_level() { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        return
    }
    if let arguments { av_log_default_callback(context, level, format, arguments) }
}
