import Foundation
import FluxFiles
import FluxProtocol
import FluxTransport
import FluxWire

/// How a client reaches a cluster: what `fluxctl up` writes to `DIR/cluster.json`.
public struct ClusterFile: Codable, Sendable, Equatable {
    /// The coordinator's worker endpoint.
    public var workerEndpoint: String
    /// The coordinator's client endpoint.
    public var clientEndpoint: String
    /// Plain TCP on loopback (no keys).
    public var insecure: Bool

    /// A cluster description.
    public init(workerEndpoint: String, clientEndpoint: String, insecure: Bool) {
        self.workerEndpoint = workerEndpoint
        self.clientEndpoint = clientEndpoint
        self.insecure = insecure
    }

    enum CodingKeys: String, CodingKey {
        case workerEndpoint = "worker_endpoint", clientEndpoint = "client_endpoint", insecure
    }

    /// Reads `DIR/cluster.json`.
    public static func load(stateDirectory: URL) throws(ClientError) -> ClusterFile {
        let path = stateDirectory.appendingPathComponent("cluster.json")
        guard let data = FileManager.default.contents(atPath: path.path) else { throw .noCluster(stateDirectory: stateDirectory.path) }
        do { return try JSONDecoder().decode(ClusterFile.self, from: data) } catch {
            throw .noCluster(stateDirectory: stateDirectory.path)
        }
    }

    /// Writes `DIR/cluster.json`.
    public func save(stateDirectory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: stateDirectory.appendingPathComponent("cluster.json"))
    }
}

/// Why a client request failed.
public enum ClientError: Error, CustomStringConvertible, Equatable {
    /// No `cluster.json` in the state dir.
    case noCluster(stateDirectory: String)
    /// The coordinator did not answer in time.
    case noAnswer(endpoint: String, seconds: Int)
    /// The coordinator answered with an `error`.
    case refused(code: String, message: String)
    /// The coordinator answered with an unexpected message.
    case unexpected(String)
    /// Keys could not be read, or the socket could not be made.
    case setup(String)

    public var description: String {
        switch self {
        case let .noCluster(directory):
            "no cluster in '\(directory)' (no cluster.json). Start one with `fluxctl up --workers 2`, or give --state-dir, or --coordinator ENDPOINT --key FILE."
        case let .noAnswer(endpoint, seconds):
            "the coordinator at \(endpoint) did not answer within \(seconds) s. Is it running (`fluxctl up`)? Is your key in its clients.allow?"
        case let .refused(code, message): "the coordinator refused (\(code)): \(message)"
        case let .unexpected(text): "unexpected answer from the coordinator: \(text)"
        case let .setup(text): text
        }
    }
}

/// The typed client of the coordinator's client endpoint (docs/protocol.md): one request in flight, each answered by
/// its reply or an `error`. `fluxctl` and the system tests share it.
public final class FluxClient {
    private let context: ZMQContext
    private let endpoint: String
    private let keys: CurveKeyPair?
    private let serverKey: CurveKey?
    private let timeout: Duration
    private var socket: Socket?
    private let codec = MessageCodec()

    /// A client of `endpoint`; with `keys` and `serverKey` over CURVE, else plain TCP.
    public init(endpoint: String, keys: CurveKeyPair?, serverKey: CurveKey?, timeout: Duration = .seconds(10)) throws(ClientError) {
        do { context = try ZMQContext() } catch { throw .setup("cannot make a ZeroMQ context: \(error)") }
        self.endpoint = endpoint
        self.keys = keys
        self.serverKey = serverKey
        self.timeout = timeout
    }

    /// The client of the cluster `fluxctl up` left in `stateDirectory` (its endpoints and the client key).
    public static func local(stateDirectory: URL, timeout: Duration = .seconds(10)) throws(ClientError) -> FluxClient {
        let cluster = try ClusterFile.load(stateDirectory: stateDirectory)
        if cluster.insecure { return try FluxClient(endpoint: cluster.clientEndpoint, keys: nil, serverKey: nil, timeout: timeout) }
        do {
            let keys = try CurveKeyPair.load(keyFile: stateDirectory.appendingPathComponent("keys/client.key").path)
            let server = try CurveKeyPair.loadPublicKey(stateDirectory.appendingPathComponent("keys/coordinator.pub").path)
            return try FluxClient(endpoint: cluster.clientEndpoint, keys: keys, serverKey: server, timeout: timeout)
        } catch let error as ClientError {
            throw error
        } catch {
            throw .setup("cannot read the client keys in '\(stateDirectory.path)/keys': \(error)")
        }
    }

    deinit {
        socket?.close()
        context.close()
    }

    /// Sends `request` and returns the reply (an `error` reply is thrown).
    public func request(_ request: Message) throws(ClientError) -> Message {
        do {
            if socket == nil {
                let socket = try context.makeSocket(.dealer)
                try socket.set([.linger(.zero)])
                if let keys, let serverKey { try socket.makeCurveClient(keys: keys, serverKey: serverKey) }
                try socket.connect(endpoint)
                self.socket = socket
            }
            try socket!.send(request, timeout: timeout)
            let frames = try socket!.receive(timeout: timeout)
            let reply = try codec.decode(frames)
            if case let .error(error) = reply { throw ClientError.refused(code: error.code.rawValue, message: error.message) }
            return reply
        } catch let error as ClientError {
            throw error
        } catch {
            // A late reply must never answer the next request: start over with a new socket.
            socket?.close()
            socket = nil
            if case WireError.timedOut = error {
                throw .noAnswer(endpoint: endpoint, seconds: Int(timeout.components.seconds))
            }
            throw .noAnswer(endpoint: endpoint, seconds: Int(timeout.components.seconds))
        }
    }

    /// Submits a job spec; returns its id.
    public func submit(specYAML: String) throws(ClientError) -> JobID {
        guard case let .submitted(reply) = try request(.submit(Submit(specYAML: specYAML))) else { throw .unexpected("to submit") }
        return reply.job
    }

    /// The state of one job, or of all.
    public func status(_ job: JobID? = nil) throws(ClientError) -> [JobStatus] {
        guard case let .statusReply(reply) = try request(.status(StatusRequest(job: job))) else { throw .unexpected("to status") }
        return reply.jobs
    }

    /// Log lines after `after`.
    public func logs(_ job: JobID, after: UInt64 = 0) throws(ClientError) -> LogsReply {
        guard case let .logsReply(reply) = try request(.logs(LogsRequest(job: job, after: after))) else { throw .unexpected("to logs") }
        return reply
    }

    /// A job's events.
    public func events(_ job: JobID) throws(ClientError) -> [JobEvent] {
        guard case let .eventsReply(reply) = try request(.events(EventsRequest(job: job))) else { throw .unexpected("to events") }
        return reply.events
    }

    /// A job's step hashes (`step_hashes`), by step, and the steps reported again with other bits.
    public func hashes(_ job: JobID) throws(ClientError) -> HashesReply {
        guard case let .hashesReply(reply) = try request(.hashes(HashesRequest(job: job))) else { throw .unexpected("to hashes") }
        return reply
    }

    /// A job's checkpoints.
    public func checkpoints(_ job: JobID) throws(ClientError) -> [CheckpointInfo] {
        guard case let .checkpointsReply(reply) = try request(.checkpoints(CheckpointsRequest(job: job))) else {
            throw .unexpected("to checkpoints")
        }
        return reply.checkpoints
    }

    /// A job's results: rows, and a sweep's report as JSON.
    public func results(_ job: JobID) throws(ClientError) -> ResultsReply {
        guard case let .resultsReply(reply) = try request(.results(ResultsRequest(job: job))) else { throw .unexpected("to results") }
        return reply
    }

    /// Cancels a job.
    public func cancel(_ job: JobID) throws(ClientError) {
        guard case .cancelled = try request(.cancel(CancelRequest(job: job))) else { throw .unexpected("to cancel") }
    }

    /// The registered workers.
    public func workers() throws(ClientError) -> [WorkerInfo] {
        guard case let .workersReply(reply) = try request(.workers(WorkersRequest())) else { throw .unexpected("to workers") }
        return reply.workers
    }
}
