import Foundation
import FluxWire

/// A cluster on this machine, as `fluxctl up` makes it (design §1): a coordinator and N workers under one state
/// dir, keys generated and allowlisted, loopback endpoints, daemons spawned as processes (never through a shell).
///
/// Layout: `DIR/cluster.json`, `DIR/coordinator.pid`, `DIR/keys/{coordinator,client}.{key,pub}`,
/// `DIR/workers.allow`, `DIR/clients.allow`, `DIR/workers/wN/{worker.key,coordinator.pub,worker.pid}`,
/// `DIR/logs/*.log`. `up` is idempotent: it starts only what is not running.
public struct LocalCluster {
    /// The state dir.
    public let directory: URL
    /// The `fluxd` executable.
    public let fluxd: URL

    /// A cluster in `directory`, driven with `fluxd`.
    public init(directory: URL, fluxd: URL) {
        self.directory = directory.standardizedFileURL
        self.fluxd = fluxd
    }

    /// Whether a process is alive. A zombie is not: a daemon `fluxctl up` started outlives it, so once killed it
    /// waits for init to reap it, and meanwhile `kill(pid, 0)` still succeeds (a restart must not wait for that).
    public static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 else { return false }
        #if os(Linux)
        // /proc/PID/stat: "PID (name) S …" — the state letter follows the last ')'.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
            return state != "Z" && state != "X"
        }
        #endif
        return true
    }

    func pid(at path: URL) -> Int32? {
        (try? String(contentsOf: path, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The coordinator's pid, if it runs.
    public var coordinatorPID: Int32? {
        pid(at: directory.appendingPathComponent("coordinator.pid")).flatMap { Self.isAlive($0) ? $0 : nil }
    }

    /// Every worker folder, `w0`, `w1`, … in order.
    public var workerDirectories: [URL] {
        let root = directory.appendingPathComponent("workers")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { $0.hasPrefix("w") }.sorted { Int($0.dropFirst()) ?? 0 < Int($1.dropFirst()) ?? 0 }
            .map { root.appendingPathComponent($0) }
    }

    /// Running workers' pids by folder.
    public var workerPIDs: [(URL, Int32)] {
        workerDirectories.compactMap { dir in
            pid(at: dir.appendingPathComponent("worker.pid")).flatMap { Self.isAlive($0) ? (dir, $0) : nil }
        }
    }

    /// Starts what is missing so that `workers` workers (at least) run; `add` more on top.
    /// Returns the number of workers expected to be running.
    @discardableResult
    public func up(workers: Int, add: Int = 0, threadsPerWorker: Int, insecure: Bool = false) throws -> Int {
        let fm = FileManager.default
        try fm.createDirectory(at: directory.appendingPathComponent("logs"), withIntermediateDirectories: true)
        try fm.createDirectory(at: directory.appendingPathComponent("keys"), withIntermediateDirectories: true)
        let cluster: ClusterFile
        if let existing = try? ClusterFile.load(stateDirectory: directory) {
            cluster = existing
        } else {
            let ports = try LoopbackPorts.free(2)
            cluster = ClusterFile(workerEndpoint: "tcp://127.0.0.1:\(ports[0])", clientEndpoint: "tcp://127.0.0.1:\(ports[1])",
                                  insecure: insecure)
            try cluster.save(stateDirectory: directory)
        }
        let keys = directory.appendingPathComponent("keys")
        if !cluster.insecure {
            for name in ["coordinator", "client"] where !fm.fileExists(atPath: keys.appendingPathComponent("\(name).key").path) {
                _ = try CurveKeyPair.generate().save(name: name, in: keys)
            }
            try fm.copyItem(atPath: keys.appendingPathComponent("client.pub").path, toFileIfMissing: directory.appendingPathComponent("clients.allow").path)
        }
        let folders = try makeWorkerFolders(count: max(workers, workerDirectories.count) + add, cluster: cluster)
        if coordinatorPID == nil { try startCoordinator() }
        let running = Set(workerPIDs.map(\.0.path))
        for folder in folders where !running.contains(folder.path) {
            try startWorker(in: folder, threadsPerWorker: threadsPerWorker, cluster: cluster)
        }
        return folders.count
    }

    /// Adds one worker to a running cluster (a new folder, key and allowlist line) without restarting any that
    /// stopped; returns its pid.
    public func addWorker(threadsPerWorker: Int) throws -> Int32 {
        let cluster = try ClusterFile.load(stateDirectory: directory)
        let folders = try makeWorkerFolders(count: workerDirectories.count + 1, cluster: cluster)
        return try startWorker(in: folders.last!, threadsPerWorker: threadsPerWorker, cluster: cluster)
    }

    /// Starts the coordinator of this state dir (after it died); returns its pid.
    @discardableResult
    public func startCoordinator() throws -> Int32 {
        let cluster = try ClusterFile.load(stateDirectory: directory)
        var arguments = ["coordinator", "--state-dir", directory.path, "--worker-endpoint", cluster.workerEndpoint,
                         "--client-endpoint", cluster.clientEndpoint]
        if cluster.insecure { arguments.append("--insecure") }
        return try spawn(arguments, log: "coordinator.log")
    }

    /// The existing worker folders, plus new ones (each with its key) up to `count`; the allowlist lists them all.
    private func makeWorkerFolders(count: Int, cluster: ClusterFile) throws -> [URL] {
        let fm = FileManager.default
        let keys = directory.appendingPathComponent("keys")
        var folders = workerDirectories
        while folders.count < count {
            let folder = directory.appendingPathComponent("workers/w\(folders.count)")
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
            if !cluster.insecure {
                _ = try CurveKeyPair.generate().save(name: "worker", in: folder)
                try? fm.removeItem(at: folder.appendingPathComponent("coordinator.pub"))
                try fm.copyItem(at: keys.appendingPathComponent("coordinator.pub"), to: folder.appendingPathComponent("coordinator.pub"))
            }
            folders.append(folder)
        }
        if !cluster.insecure {
            // The allowlist holds every worker's key; a running coordinator reloads it when the file changes.
            let lines = try folders.map { folder in
                try String(contentsOf: folder.appendingPathComponent("worker.pub"), encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines) + " " + folder.lastPathComponent
            }
            try (lines.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("workers.allow"), atomically: true, encoding: .utf8)
        }
        return folders
    }

    @discardableResult
    private func startWorker(in folder: URL, threadsPerWorker: Int, cluster: ClusterFile) throws -> Int32 {
        var arguments = ["worker", "--coordinator", cluster.workerEndpoint, "--state-dir", folder.path,
                         "--data-endpoint", "ipc://\(Self.ringDirectory(for: directory))/\(folder.lastPathComponent)",
                         "--threads", "\(threadsPerWorker)"]
        if cluster.insecure { arguments.append("--insecure") }
        let pid = try spawn(arguments, log: "\(folder.lastPathComponent).log")
        try "\(pid)\n".write(to: folder.appendingPathComponent("worker.pid"), atomically: true, encoding: .utf8)
        return pid
    }

    /// A short folder for the workers' ring sockets (a Unix socket path holds at most 107 bytes).
    public static func ringDirectory(for directory: URL) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in directory.path.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let path = "/tmp/flux-\(getuid())-\(String(hash, radix: 16).prefix(10))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Stops every daemon: SIGTERM to the workers first (each leaves its job at the next commit, which the
    /// coordinator must still be there to see), then to the coordinator; SIGKILL to what still runs after `timeout`.
    public func down(timeout: TimeInterval = 20) -> [Int32] {
        let workers = workerPIDs.map(\.1)
        let coordinator = coordinatorPID
        let deadline = Date().addingTimeInterval(timeout)
        for pid in workers { kill(pid, SIGTERM) }
        while Date() < deadline, workers.contains(where: Self.isAlive) { usleep(50_000) }
        if let coordinator { kill(coordinator, SIGTERM) }
        let all = workers + (coordinator.map { [$0] } ?? [])
        while Date() < deadline.addingTimeInterval(5), all.contains(where: Self.isAlive) { usleep(50_000) }
        for pid in all where Self.isAlive(pid) { kill(pid, SIGKILL) }
        return all
    }

    /// Starts `fluxd ARGS` detached from this process, output appended to `DIR/logs/LOG`; returns its pid.
    func spawn(_ arguments: [String], log: String) throws -> Int32 {
        let process = Process()
        process.executableURL = fluxd
        process.arguments = arguments
        let logURL = directory.appendingPathComponent("logs/\(log)")
        if !FileManager.default.fileExists(atPath: logURL.path) { FileManager.default.createFile(atPath: logURL.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: logURL)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process.processIdentifier
    }
}

extension FileManager {
    func copyItem(atPath source: String, toFileIfMissing destination: String) throws {
        if !fileExists(atPath: destination) { try copyItem(atPath: source, toPath: destination) }
    }
}
