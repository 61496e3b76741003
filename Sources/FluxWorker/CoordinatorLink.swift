import Foundation
import FluxProtocol
import FluxTensor
import FluxTransport
import FluxWire
import Logging

/// The worker's connection to the coordinator (design §3): a DEALER that registers, heartbeats, notices a silent
/// coordinator (3 missed heartbeats), and reconnects with exponential backoff, re-registering under the same id
/// with the task it still runs. Owned by the worker's control thread.
struct Link {
    let options: WorkerOptions
    let id: WorkerID
    let keys: CurveKeyPair?
    let coordinatorKey: CurveKey?
    let context: ZMQContext
    let logger: Logger
    let codec = MessageCodec()
    var socket: Socket?
    /// The running task and its last commit, for re-registration.
    var runningTask: () -> (TaskRef, Int)? = { nil }
    /// The running training task's committed step hashes, sent again after each registration.
    var hashReplay: () -> Message? = { nil }
    var registered = false
    var heartbeatInterval: Double
    var misses = 3
    var lastHeard = Date()
    var lastSent = Date.distantPast
    var lastRegister = Date.distantPast
    var backoff = 0.1
    var sequence: UInt64 = 0
    /// The last task's ending (`task_finished` or `task_failed`) and its last checkpoint until the coordinator
    /// acknowledged it: a coordinator that was down when they were sent gets them again after re-registration, so a
    /// job that ended meanwhile is not lost.
    var pendingFinal: (task: TaskRef, message: Message)?
    var pendingCheckpoint: CheckpointTransfer?

    init(options: WorkerOptions, id: WorkerID, keys: CurveKeyPair?, coordinatorKey: CurveKey?, context: ZMQContext,
         logger: Logger) {
        self.options = options
        self.id = id
        self.keys = keys
        self.coordinatorKey = coordinatorKey
        self.context = context
        self.logger = logger
        self.heartbeatInterval = options.heartbeatInterval
    }

    /// A fresh DEALER to the coordinator, and a registration.
    mutating func connect() throws {
        socket?.close()
        let socket = try context.makeSocket(.dealer)
        // A short linger: the last messages of an exiting worker (its task's end) still leave.
        try socket.set([.linger(.seconds(1)), .sendHighWaterMark(1000), .reconnectInterval(.milliseconds(100), maximum: .seconds(2))])
        if let keys, let coordinatorKey { try socket.makeCurveClient(keys: keys, serverKey: coordinatorKey) }
        try socket.connect(options.coordinator)
        self.socket = socket
        registered = false
        lastHeard = Date()
        register()
    }

    mutating func register() {
        let running = runningTask() ?? pendingFinal.map { ($0.task, 0) }
        let message = Message.register(Register(
            workerID: id, dataEndpoint: options.dataEndpoint, publicKey: keys?.publicKey.z85, cores: options.threads,
            version: "0.4.0", runningTask: running?.0, pid: Int(getpid()), host: ProcessInfo.processInfo.hostName,
            committedStep: running?.1, kernels: KernelDispatch.signature))
        lastRegister = Date()
        send(message)
    }

    mutating func send(_ message: Message) {
        switch message {
        case let .taskFinished(finished): pendingFinal = (TaskRef(job: finished.job, task: finished.task), message)
        case let .taskFailed(failed): pendingFinal = (TaskRef(job: failed.job, task: failed.task), message)
        case let .checkpoint(transfer): pendingCheckpoint = transfer
        default: break
        }
        guard let socket else { return }
        do {
            _ = try socket.trySend(codec.encode(message).map { Frame($0) })
            lastSent = Date()
        } catch {
            logger.warning("cannot send \(message.type.rawValue) to the coordinator: \(error)")
        }
    }

    /// Messages from the coordinator, waiting at most `timeout` for the first.
    mutating func receive(timeout: Duration) -> [Message] {
        guard let socket else { return [] }
        var messages: [Message] = []
        var wait: Duration? = timeout
        while true {
            let frames: [Frame]?
            do {
                if let limit = wait {
                    var poller = Poller()
                    poller.add(socket)
                    guard try poller.poll(timeout: limit).isReadable(socket) else { break }
                }
                frames = try socket.tryReceive()
            } catch {
                logger.warning("receiving from the coordinator failed: \(error)")
                break
            }
            guard let frames else { break }
            wait = nil
            lastHeard = Date()
            do {
                let message = try codec.decode(frames)
                switch message {
                case let .registered(accepted):
                    registered = true
                    backoff = 0.1
                    heartbeatInterval = Double(accepted.heartbeatIntervalMS) / 1000
                    misses = accepted.heartbeatMisses
                    logger.info("registered with the coordinator as \(id)")
                    // What the coordinator may have missed: the last checkpoint, then how the task ended.
                    if let checkpoint = pendingCheckpoint { send(.checkpoint(checkpoint)) }
                    if let hashes = hashReplay() { send(hashes) }
                    if let final = pendingFinal { send(final.message) }
                case let .checkpointSaved(saved):
                    if pendingCheckpoint?.job == saved.job, pendingCheckpoint?.step == saved.step { pendingCheckpoint = nil }
                case let .rejected(refusal):
                    logger.error("the coordinator refused this worker: \(refusal.message)")
                case let .error(error) where error.code == .notFound:
                    // The coordinator restarted or declared us dead: register again.
                    if Date().timeIntervalSince(lastRegister) > 0.5 { register() }
                case .heartbeat:
                    break
                case let .stopTask(stop):
                    // The coordinator has the task's end (or ended it): nothing to replay any more.
                    // (Matched by task too: a sweep's worker finishes many cells of one job.)
                    if pendingFinal?.task == TaskRef(job: stop.job, task: stop.task) { pendingFinal = nil }
                    if pendingCheckpoint?.job == stop.job { pendingCheckpoint = nil }
                    messages.append(message)
                case let .assign(assign):
                    if pendingFinal?.task.job != assign.job { pendingFinal = nil }
                    messages.append(message)
                default:
                    messages.append(message)
                }
            } catch {
                logger.warning("dropped a message from the coordinator: \(error)")
            }
        }
        return messages
    }

    /// Heartbeats, and a reconnect when the coordinator has been silent for too long.
    mutating func maintain() {
        let now = Date()
        if now.timeIntervalSince(lastSent) >= heartbeatInterval {
            sequence += 1
            send(.heartbeat(Heartbeat(sequence: sequence)))
        }
        if !registered, now.timeIntervalSince(lastRegister) > max(backoff, 0.5) {
            register()
        }
        if now.timeIntervalSince(lastHeard) > heartbeatInterval * Double(misses) + backoff {
            logger.warning("no word from the coordinator for \(Int(now.timeIntervalSince(lastHeard))) s; reconnecting (training goes on)")
            backoff = min(backoff * 2, 5)
            do { try connect() } catch { logger.error("cannot reconnect: \(error)") }
        }
    }
}
