import Foundation
import FluxClient
import FluxProtocol
import FluxTestKit
import FluxWire
import Testing

extension SystemTests {
    /// Keys, allowlists and bad input on both coordinator endpoints (issue 10, tests 5 and 6): refusals are clear or
    /// counted, and the daemons stay up.
    @Suite struct SecurityAndInputTests {
        static func coordinatorLog(_ cluster: TestCluster) -> String {
            (try? String(contentsOf: cluster.directory.appendingPathComponent("logs/coordinator.log"), encoding: .utf8)) ?? ""
        }

        static func endpoints(_ cluster: TestCluster) throws -> ClusterFile { try ClusterFile.load(stateDirectory: cluster.directory) }

        @Test func clientWithUnknownKey_orPlaintext_isRefused_andAllowedClientStillServed() throws {
            let cluster = try TestCluster(workers: 1)
            let file = try Self.endpoints(cluster)
            let serverKey = try CurveKeyPair.loadPublicKey(cluster.directory.appendingPathComponent("keys/coordinator.pub").path)
            let stranger = try FluxClient(endpoint: file.clientEndpoint, keys: try CurveKeyPair.generate(), serverKey: serverKey,
                                          timeout: .seconds(2))
            #expect(throws: ClientError.self) { try stranger.workers() }
            let plain = try FluxClient(endpoint: file.clientEndpoint, keys: nil, serverKey: nil, timeout: .seconds(2))
            #expect(throws: ClientError.self) { try plain.workers() }
            try cluster.eventually("the coordinator logging the refusals", within: 10) {
                Self.coordinatorLog(cluster).contains("fluxwire: refused")
            }
            #expect(try cluster.client.workers().count == 1, "the allowlisted client is still served")
        }

        @Test func workerWithUnknownKey_neverRegisters_andIsLogged() throws {
            let cluster = try TestCluster(workers: 1)
            let file = try Self.endpoints(cluster)
            let folder = cluster.directory.appendingPathComponent("stranger")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            _ = try CurveKeyPair.generate().save(name: "worker", in: folder)
            try FileManager.default.copyItem(at: cluster.directory.appendingPathComponent("keys/coordinator.pub"),
                                             to: folder.appendingPathComponent("coordinator.pub"))
            let process = Process()
            process.executableURL = BuiltTool.url("fluxd")
            process.arguments = ["worker", "--coordinator", file.workerEndpoint, "--state-dir", folder.path,
                                 "--data-endpoint", "ipc://\(folder.path)/ring"]
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
            try cluster.eventually("the coordinator logging the stranger's refused handshake", within: 15) {
                Self.coordinatorLog(cluster).contains("fluxwire: refused")
            }
            // A plaintext worker, too (the stranger stopped first, so what is logged next is about it).
            process.terminate()
            process.waitUntilExit()
            let seen = Self.coordinatorLog(cluster).count
            let plain = Process()
            plain.executableURL = BuiltTool.url("fluxd")
            plain.arguments = ["worker", "--insecure", "--coordinator", file.workerEndpoint, "--state-dir",
                               folder.appendingPathComponent("plain").path, "--data-endpoint", "ipc://\(folder.path)/plain"]
            plain.standardError = FileHandle.nullDevice
            try plain.run()
            defer { plain.terminate(); plain.waitUntilExit() }
            try cluster.eventually("the coordinator logging the plaintext worker's refused handshake", within: 15) {
                Self.coordinatorLog(cluster).dropFirst(seen).contains("fluxwire: refused")
            }
            #expect(try cluster.client.workers().count == 1, "neither stranger is registered")

            // --insecure toward a coordinator that is not on loopback is refused by the worker itself.
            let remote = try BuiltTool.run("fluxd", ["worker", "--insecure", "--coordinator", "tcp://coordinator.example:7400",
                                                     "--state-dir", folder.appendingPathComponent("remote").path])
            #expect(remote.status != 0 && remote.stderr.contains("loopback only"), "\(remote.stderr)")
        }

        /// Raw frames to the client endpoint with the allowlisted client key.
        static func rawClient(_ cluster: TestCluster, _ frames: [Frame]) throws -> Message {
            let file = try endpoints(cluster)
            let context = try ZMQContext()
            defer { context.close() }
            return try context.withSocket(.dealer) { socket in
                try socket.set([.linger(.zero)])
                let keys = try CurveKeyPair.load(keyFile: cluster.directory.appendingPathComponent("keys/client.key").path)
                let server = try CurveKeyPair.loadPublicKey(cluster.directory.appendingPathComponent("keys/coordinator.pub").path)
                try socket.makeCurveClient(keys: keys, serverKey: server)
                try socket.connect(file.clientEndpoint)
                try socket.send(frames, timeout: .seconds(5))
                return try MessageCodec().decode(frames: try socket.receive(timeout: .seconds(5)).map { Data($0.bytes) })
            }
        }

        /// Raw frames to the worker endpoint with a registered worker's key.
        static func rawWorker(_ cluster: TestCluster, _ frames: [Frame]) throws -> Message {
            let file = try endpoints(cluster)
            let context = try ZMQContext()
            defer { context.close() }
            return try context.withSocket(.dealer) { socket in
                try socket.set([.linger(.zero)])
                let w0 = cluster.directory.appendingPathComponent("workers/w0")
                let keys = try CurveKeyPair.load(keyFile: w0.appendingPathComponent("worker.key").path)
                let server = try CurveKeyPair.loadPublicKey(w0.appendingPathComponent("coordinator.pub").path)
                try socket.makeCurveClient(keys: keys, serverKey: server)
                try socket.connect(file.workerEndpoint)
                try socket.send(frames, timeout: .seconds(5))
                return try MessageCodec().decode(frames: try socket.receive(timeout: .seconds(5)).map { Data($0.bytes) })
            }
        }

        /// The coordinator's refusal of what `body` sends, or nil when it was accepted.
        static func refusal(_ body: () throws -> Void) -> (code: String, message: String)? {
            do {
                try body()
                return nil
            } catch {
                guard let clientError = error as? ClientError, case let .refused(code, message) = clientError else {
                    return ("unexpected", "\(error)")
                }
                return (code, message)
            }
        }

        static func errorCode(_ message: Message) -> String? {
            if case let .error(error) = message { error.code.rawValue } else { nil }
        }

        @Test func garbageAndOldVersions_onBothEndpoints_getErrors_andDaemonsStayUp() throws {
            let cluster = try TestCluster(workers: 1)
            let garbage: [Frame] = [Frame([0xFF, 0x00, 0x13, 0x37])]
            let old: [Frame] = [Frame(#"{"v":0,"type":"status"}"#)]
            let unknown: [Frame] = [Frame(#"{"v":1,"type":"teleport"}"#)]
            #expect(Self.errorCode(try Self.rawClient(cluster, garbage)) == "bad_request")
            #expect(Self.errorCode(try Self.rawClient(cluster, old)) == "unsupported_version")
            #expect(Self.errorCode(try Self.rawClient(cluster, unknown)) == "unknown_type")
            #expect(Self.errorCode(try Self.rawWorker(cluster, garbage)) == "bad_request")
            #expect(Self.errorCode(try Self.rawWorker(cluster, old)) == "unsupported_version")
            #expect(try cluster.client.workers().count == 1, "the coordinator still serves, the worker is still registered")
            #expect(cluster.local.coordinatorPID != nil && cluster.local.workerPIDs.count == 1)
        }

        @Test func malformedSpec_unknownPreset_unreadableDataset_clearErrors() throws {
            let cluster = try TestCluster(workers: 1)
            let invalid = Self.refusal {
                _ = try cluster.client.submit(specYAML: "name: x\ntrain: {global_batch: 0, steps: 3}\nworkers: {min: 1, max: 1}\n")
            }
            #expect(invalid?.code == "invalid_spec")
            #expect(invalid?.message.contains("train.global_batch") == true, "\(String(describing: invalid))")
            #expect(invalid?.message.contains("model") == true, "the missing model is reported too")
            let preset = Self.refusal {
                _ = try cluster.client.submit(specYAML: SystemData.spec(name: "p", steps: 3, min: 1, max: 1)
                    .replacingOccurrences(of: "model: \(SystemData.repository.path)/configs/models/tiny-motion.yaml",
                                          with: "model: fluxvit-huge"))
            }
            #expect(preset?.code == "invalid_spec")
            #expect(preset?.message.contains("fluxvit-huge") == true && preset?.message.contains("fluxvit-small") == true,
                    "\(String(describing: preset))")
            let missing = "/nonexistent-\(UUID().uuidString.prefix(6))/train.csv"
            let job = try cluster.submit(SystemData.spec(name: "bad-data", steps: 3, min: 1, max: 1)
                .replacingOccurrences(of: "\(SystemData.folder.path)/train.csv", with: missing))
            try cluster.eventually("the job failing", within: 60) { try cluster.status(job).state == .failed }
            let message = try cluster.status(job).message ?? ""
            #expect(message.contains(missing), "the failure names the manifest: \(message)")
            #expect(try cluster.client.workers().first?.state == .idle, "the worker is up and free again")
            let explain = try BuiltTool.run("fluxctl", ["explain", job.rawValue, "--state-dir", cluster.directory.path])
            #expect(explain.status == 0, "\(explain.stderr)")
            #expect(explain.stdout.contains("First cause:") && explain.stdout.contains(missing), "\(explain.stdout)")
            #expect(explain.stdout.contains("Its last log lines:"), "\(explain.stdout)")
            #expect(explain.stdout.contains("What to do: check the data paths"), "\(explain.stdout)")
        }
    }
}
