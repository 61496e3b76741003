import ArgumentParser
import Foundation
import FluxWire

/// `flux-bench zmq-throughput`: raw ZeroMQ PUSH/PULL throughput between two processes on loopback, the ceiling the
/// ring all-reduce is compared with (design §6).
///
/// This process binds a PULL and receives; a child `flux-bench zmq-throughput --role push` connects a PUSH and sends
/// `--messages` messages of `--message-bytes` from one immutable buffer without copying. The receiver's clock runs
/// from the first message to the last (`gb_per_s` = bytes after the first / that time, GB = 10⁹ bytes), so process
/// start-up is not counted.
struct ZMQThroughputBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zmq-throughput", abstract: "Raw ZeroMQ PUSH/PULL throughput between two processes on loopback.")

    @Option(help: "Bytes per message.") var messageBytes: Int = 1 << 20
    @Option(help: "Messages sent.") var messages: Int = 3000
    @Option(help: "Security: none or curve.") var security: String = "none"
    @Option(help: "Internal: push (the child).") var role: String = "pull"
    @Option(help: "Internal: the endpoint to connect.") var endpoint: String?
    @Option(help: "Internal: the server's public key (Z85), for curve.") var serverKey: String?
    @Option(help: "Transport: tcp (127.0.0.1) or ipc (a Unix domain socket).") var transport = "tcp"
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let context = try ZMQContext()
        if role == "push" { return try push(context) }
        let pull = try context.makeSocket(.pull)
        defer { pull.close() }
        var authenticator: Authenticator?
        var serverPublic: String?
        let clientKeys = try security == "curve" ? CurveKeyPair.generate() : nil
        if let clientKeys {
            let server = try CurveKeyPair.generate()
            authenticator = try Authenticator(context: context, allowlist: Allowlist(keys: [clientKeys.publicKey]))
            try pull.makeCurveServer(keys: server)
            serverPublic = server.publicKey.z85
        }
        let bound = try pull.bind(transport == "ipc"
            ? "ipc://\(NSTemporaryDirectory())flux-zmq-throughput-\(getpid()).sock" : "tcp://127.0.0.1:*")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        child.arguments = ["zmq-throughput", "--role", "push", "--endpoint", bound,
                           "--message-bytes", "\(messageBytes)", "--messages", "\(messages)", "--security", security]
            + (serverPublic.map { ["--server-key", $0] } ?? [])
        var environment = ProcessInfo.processInfo.environment
        if let clientKeys { environment["FLUX_BENCH_CLIENT_SECRET"] = clientKeys.secretKey.z85 }
        child.environment = environment
        try child.run()
        var received = 0
        var bytes = 0
        var start = ContinuousClock.now
        var poller = Poller()
        poller.add(pull, for: .readable)
        while received < messages {
            guard try pull.tryReceiveBorrowing({ message in
                bytes += message.parts.reduce(0) { $0 + $1.count }
            }) != nil else {
                if try poller.poll(timeout: .seconds(30)).isEmpty { throw ValidationError("the sender stalled") }
                continue
            }
            received += 1
            if received == 1 {
                start = ContinuousClock.now
                bytes = 0
            }
        }
        let elapsed = seconds(ContinuousClock.now - start)
        child.waitUntilExit()
        authenticator?.stop()
        let rate = Double(bytes) / elapsed / 1e9
        if json {
            try printJSON(["bench": "zmq_throughput", "message_bytes": messageBytes, "messages": messages,
                           "security": security, "transport": transport, "seconds": elapsed, "gb_per_s": rate])
        } else {
            print(String(format: "ZeroMQ PUSH/PULL, 2 processes, %d × %d B, %@: %.2f GB/s", messages, messageBytes,
                         security, rate))
        }
    }

    private func push(_ context: ZMQContext) throws {
        guard let endpoint else { throw ValidationError("--role push needs --endpoint") }
        let socket = try context.makeSocket(.push)
        defer { socket.close() }
        try socket.set(.linger(nil))
        if let serverKey, let secret = ProcessInfo.processInfo.environment["FLUX_BENCH_CLIENT_SECRET"] {
            try socket.makeCurveClient(keys: CurveKeyPair(secretKey: CurveKey(z85: secret)),
                                       serverKey: CurveKey(z85: serverKey))
        }
        try socket.connect(endpoint)
        let payload = ZeroCopyBuffer(count: messageBytes) { $0.initializeMemory(as: UInt8.self, repeating: 7) }
        for _ in 0..<messages { try socket.sendZeroCopy(payload) }
    }
}
