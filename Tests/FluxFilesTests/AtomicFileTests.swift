import Foundation
import FluxFiles
import Testing

@Suite struct AtomicFileTests {
    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flux-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func write_replacesWholeFile_withExactMode_andLeavesNoTemporary() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("secret.key")
        try AtomicFile.write("a much longer first version\n", to: file, mode: 0o600)
        try AtomicFile.write("second\n", to: file, mode: 0o600)
        #expect(try String(contentsOf: file, encoding: .utf8) == "second\n")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["secret.key"])
    }

    @Test func write_intoMissingFolder_throwsNamingPathAndCall() throws {
        let missing = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)/x")
        do {
            try AtomicFile.write("x", to: missing)
            Issue.record("a write into a missing folder succeeded")
        } catch let .failed(path, operation, reason) {
            #expect(path.hasPrefix("/nonexistent-") && operation == "create" && reason.contains("No such file"))
        }
    }
}
