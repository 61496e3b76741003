import Foundation

/// Durable file writes, the one helper every target uses (checkpoints, keys, state files): write to a temporary
/// name in the same folder, fsync it, rename it over the target, fsync the folder. A crash leaves the old file or
/// the new one, never half of one.
public enum AtomicFile {
    /// Writes `data` to `url` atomically, with exactly `mode` (the umask cannot narrow it).
    public static func write(_ data: Data, to url: URL, mode: mode_t = 0o644) throws(FileWriteError) {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        try writeSynced(data, to: temporary, mode: mode)
        guard rename(temporary, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .failed(path: url.path, operation: "rename", reason: reason)
        }
        try syncDirectory(url.deletingLastPathComponent())
    }

    /// Writes `text` as UTF-8 (see `write(_:to:mode:)`).
    public static func write(_ text: String, to url: URL, mode: mode_t = 0o644) throws(FileWriteError) {
        try write(Data(text.utf8), to: url, mode: mode)
    }

    /// Writes `data` to `path` and fsyncs it, without a rename (for files inside a folder that is itself renamed into
    /// place once complete).
    public static func writeSynced(_ data: Data, to path: String, mode: mode_t = 0o644) throws(FileWriteError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .failed(path: path, operation: "create", reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else {
            throw .failed(path: path, operation: "chmod", reason: String(cString: strerror(errno)))
        }
        var written = 0
        let failure: String? = data.withUnsafeBytes { raw -> String? in
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0, errno == EINTR { continue }
                if n <= 0 { return String(cString: strerror(errno)) }
                written += n
            }
            return nil
        }
        if let failure { throw .failed(path: path, operation: "write", reason: failure) }
        guard fsync(fd) == 0 else { throw .failed(path: path, operation: "fsync", reason: String(cString: strerror(errno))) }
    }

    /// Makes a folder's entries (a rename into it) durable.
    public static func syncDirectory(_ url: URL) throws(FileWriteError) {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failed(path: url.path, operation: "open", reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .failed(path: url.path, operation: "fsync", reason: String(cString: strerror(errno))) }
    }
}

/// A durable write that failed: the path, the system call and its reason.
public enum FileWriteError: Error, Equatable, CustomStringConvertible {
    case failed(path: String, operation: String, reason: String)

    public var description: String {
        switch self {
        case let .failed(path, operation, reason):
            "cannot write '\(path)': \(operation) failed: \(reason). Check free space and permissions."
        }
    }
}
