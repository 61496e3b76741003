import Foundation
import FluxTestKit
import Testing
@testable import FluxWire

/// `fluxctl keys generate` as a user runs it: the built binary, its files and its exit status.
@Suite struct KeysCommandTests {
    static let fluxctl: URL? = BuiltTool.exists("fluxctl") ? BuiltTool.url("fluxctl") : nil

    @Test(.enabled(if: fluxctl != nil, "needs the built fluxctl"))
    func keysGenerate_writesSecretWithMode0600AndRefusesToOverwrite() throws {
        let folder = temporaryFolder("cli-keys")
        defer { try? FileManager.default.removeItem(at: folder) }
        let dir = folder.appendingPathComponent("keys").path
        let result = try BuiltTool.run("fluxctl", ["keys", "generate", "coordinator", "--dir", dir])
        #expect(result.status == 0, "\(result.stderr)")
        let pair = try CurveKeyPair.load(keyFile: "\(dir)/coordinator.key")
        #expect(result.stdout == "wrote \(dir)/coordinator.key (secret, mode 0600) and \(dir)/coordinator.pub\n"
            + "public key: \(pair.publicKey.z85)\n")
        let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/coordinator.key")[.posixPermissions]
        #expect(mode as? Int == 0o600)
        let pub = try String(contentsOfFile: "\(dir)/coordinator.pub", encoding: .utf8)
        #expect(pub == "\(pair.publicKey.z85) coordinator\n")

        let again = try BuiltTool.run("fluxctl", ["keys", "generate", "coordinator", "--dir", dir])
        #expect(again.status == 1)
        let refusal = "error: \(dir)/coordinator.key exists; refusing to overwrite a key. Pass --force"
        #expect(again.stderr.hasPrefix(refusal), "\(again.stderr)")
        #expect(try CurveKeyPair.load(keyFile: "\(dir)/coordinator.key") == pair)

        let forced = try BuiltTool.run("fluxctl", ["keys", "generate", "coordinator", "--dir", dir, "--force"])
        #expect(forced.status == 0)
        #expect(try CurveKeyPair.load(keyFile: "\(dir)/coordinator.key") != pair)
    }
}
