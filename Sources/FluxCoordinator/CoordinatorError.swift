import Foundation

/// What stops the coordinator from starting or storing (input from workers and clients never throws this: it is
/// answered with an `error` message and counted).
public enum CoordinatorError: Error, CustomStringConvertible, Equatable {
    /// The SQLite store failed.
    case store(path: String, reason: String)
    /// Another coordinator holds the state dir.
    case stateDirectoryLocked(path: String, pid: String)
    /// The state dir cannot be created or written.
    case stateDirectory(path: String, reason: String)
    /// Plain TCP was asked for on an address other than loopback.
    case insecureNotLoopback(endpoint: String)
    /// A key or allowlist file is missing or unreadable.
    case keys(reason: String)
    /// libzmq refused an endpoint.
    case endpoint(String, reason: String)

    public var description: String {
        switch self {
        case let .store(path, reason):
            "the coordinator's store '\(path)' failed: \(reason). Check the disk and that no other program writes it."
        case let .stateDirectoryLocked(path, pid):
            "another coordinator (pid \(pid)) holds the state dir '\(path)'. Stop it (`fluxctl down`) or use another --state-dir."
        case let .stateDirectory(path, reason):
            "cannot use the state dir '\(path)': \(reason). Check the path and its permissions."
        case let .insecureNotLoopback(endpoint):
            "--insecure on '\(endpoint)': plain TCP is allowed on loopback only (127.0.0.1). Drop --insecure to use CURVE keys."
        case let .keys(reason):
            "\(reason). Run `fluxctl up` (it generates keys) or `fluxctl keys generate`."
        case let .endpoint(endpoint, reason):
            "cannot bind '\(endpoint)': \(reason). Choose a free port or stop what holds it."
        }
    }
}

/// An exclusive `flock` on `DIR/coordinator.lock`, held for the life of the process (the kernel drops it when the
/// process dies, so a SIGKILLed coordinator never leaves a stale lock).
public final class StateDirectoryLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock or throws `stateDirectoryLocked` naming the holder's pid.
    public init(directory: URL) throws(CoordinatorError) {
        let path = directory.appendingPathComponent("coordinator.lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .stateDirectory(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: directory.appendingPathComponent("coordinator.pid").path, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw .stateDirectoryLocked(path: directory.path, pid: holder)
        }
        descriptor = fd
    }

    deinit { close(descriptor) }
}
