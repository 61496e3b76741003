import CFFmpeg
import Foundation
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
    static let endOfFile: Int32 = -Int32(
        bitPattern: UInt32(0x45) | UInt32(0x4F) << 8 | UInt32(0x46) << 16 | UInt32(0x20) << 24)

    /// FFmpeg's own text for an error code, from `av_strerror`.
    static func reason(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        if av_strerror(code, &buffer, buffer.count) < 0 { return "FFmpeg error \(code)" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Keeps libx264's per-file info lines (cpu capabilities, profile, stats) off stderr, and routes the error
    /// lines of watched contexts into `LogCapture` instead of stderr.
    static func quietLogs() {
        installLogHook
    }

    private static let installLogHook: Void = {
        if av_log_get_level() > AV_LOG_ERROR { av_log_set_level(AV_LOG_ERROR) }
        av_log_set_callback(captureLog)
    }()
}

/// FFmpeg's own error lines (`moov atom not found`) for the contexts a reader watches, so a failure can say more
/// than `av_strerror`'s generic text. Lines of other contexts go to FFmpeg's default logger.
enum LogCapture {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var lines: [UInt: [String]] = [:]

    /// Starts collecting error lines logged against `context`.
    static func watch(_ context: UnsafeMutableRawPointer?) {
        guard let context else { return }
        lock.withLock { lines[UInt(bitPattern: context)] = [] }
    }

    /// Stops collecting for `context` and returns what it logged.
    @discardableResult
    static func unwatch(_ context: UnsafeMutableRawPointer?) -> [String] {
        guard let context else { return [] }
        return lock.withLock { lines.removeValue(forKey: UInt(bitPattern: context)) ?? [] }
    }

    /// What `context` logged so far.
    static func lines(of context: UnsafeMutableRawPointer?) -> [String] {
        guard let context else { return [] }
        return lock.withLock { lines[UInt(bitPattern: context)] ?? [] }
    }

    /// Records `line` if `context` is watched; returns false otherwise.
    fileprivate static func record(_ line: String, for context: UnsafeMutableRawPointer) -> Bool {
        lock.withLock {
            let key = UInt(bitPattern: context)
            guard lines[key] != nil else { return false }
            lines[key]!.append(line)
            return true
        }
    }
}

private func captureLog(_ context: UnsafeMutableRawPointer?, _ level: Int32, _ format: UnsafePointer<CChar>?,
                        _ arguments: CVaListPointer?) {
    if let context, let format, let arguments, level <= AV_LOG_ERROR {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = vsnprintf(&buffer, buffer.count, format, arguments)
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if LogCapture.record(line, for: context) { return }
        // Already consumed the va_list: print the formatted line the way the default logger would.
        if level <= av_log_get_level() { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        return
    }
    if let arguments { av_log_default_callback(context, level, format, arguments) }
}
