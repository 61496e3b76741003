import ArgumentParser
import Foundation
import FluxCoordinator
import FluxWorker
import Logging
import ServiceLifecycle

/// `fluxd`: the daemons. A thin command tree; the coordinator and the worker live in their libraries.
@main
struct Fluxd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fluxd", abstract: "The Flux daemons: the coordinator and the workers (design §1).",
        subcommands: [CoordinatorCommand.self, WorkerCommand.self])
}

/// Options every daemon takes.
struct DaemonOptions: ParsableArguments {
    @Option(help: "Log format: text or json (one object a line).") var logFormat: LogFormat = .text
    @Option(help: "Log level: debug, info, warning, error.") var logLevel: String = "info"

    enum LogFormat: String, ExpressibleByArgument { case text, json }

    func logger(_ label: String) -> Logger {
        let format = logFormat
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label, json: format == .json)
            handler.logLevel = .info
            return handler
        }
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }
}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator", abstract: "Run the coordinator: jobs, workers, rings, checkpoints.")

    @Option(help: "State dir (SQLite store, keys, allowlists, checkpoints).") var stateDir: String
    @Option(help: "Worker endpoint.") var workerEndpoint: String = "tcp://127.0.0.1:7400"
    @Option(help: "Client endpoint.") var clientEndpoint: String = "tcp://127.0.0.1:7401"
    @Flag(help: "Plain TCP, loopback only (no keys).") var insecure = false
    @Option(help: "Heartbeat interval, seconds.") var heartbeat: Double = 1
    @Option(help: "A running job fails after this many seconds below its workers.min.") var grace: Double = 30
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        let logger = daemon.logger("flux.coordinator")
        var options = CoordinatorOptions(stateDirectory: URL(fileURLWithPath: stateDir))
        options.workerEndpoint = workerEndpoint
        options.clientEndpoint = clientEndpoint
        options.insecure = insecure
        options.settings.heartbeatInterval = heartbeat
        options.settings.gracePeriod = grace
        let coordinator = Coordinator(options: options, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [coordinator], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run a worker: training ranks with the FluxViT core, ring all-reduce with its peers.")

    @Option(help: "The coordinator's worker endpoint.") var coordinator: String = "tcp://127.0.0.1:7400"
    @Option(help: "State dir (stable id, worker.key, coordinator.pub).") var stateDir: String
    @Option(help: "Ring endpoint: tcp://HOST:PORT (uses PORT…PORT+7) or ipc://PATH (one host).") var dataEndpoint: String = "tcp://127.0.0.1:7410"
    @Option(help: "Host peers reach this worker at, when it differs from --data-endpoint's.") var advertise: String?
    @Option(help: "Compute threads.") var threads: Int = 2
    @Flag(help: "Plain TCP to the coordinator, loopback only.") var insecure = false
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        let logger = daemon.logger("flux.worker")
        var endpoint = dataEndpoint
        if let advertise, endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") {
            endpoint = "tcp://\(advertise)\(endpoint[colon...])"
        }
        var options = WorkerOptions(coordinator: coordinator, stateDirectory: URL(fileURLWithPath: stateDir), dataEndpoint: endpoint)
        options.threads = threads
        options.insecure = insecure
        let worker = Worker(options: options, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
    }
}

/// One line per log record on stderr: text (`2026-12-07T21:00:00Z info flux.worker: message`) or JSON.
struct LineLogHandler: LogHandler {
    let label: String
    let json: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let time = formatter.string(from: Date())
        let line: String
        if json {
            let object: [String: String] = ["time": time, "level": event.level.rawValue, "label": label,
                                            "message": "\(event.message)"]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        } else {
            line = "\(time) \(event.level.rawValue) \(label): \(event.message)"
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
