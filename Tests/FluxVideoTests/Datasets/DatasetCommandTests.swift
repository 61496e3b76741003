import Foundation
import FluxTestKit
import Testing
@testable import FluxVideo

/// `fluxctl dataset …` as a user runs it: the built binary, its output and its exit status.
///
/// These belong in FluxSystemTests once that target exists; they need only the fluxctl that `swift build`
/// puts next to the test bundle.
@Suite struct DatasetCommandTests {
    static let fluxctl: URL? = BuiltTool.exists("fluxctl") ? BuiltTool.url("fluxctl") : nil

    static func run(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let result = try BuiltTool.run("fluxctl", arguments)
        return (result.status, result.stdout, result.stderr)
    }

    @Test(.enabled(if: fluxctl != nil, "needs the built fluxctl"))
    func datasetSynth_smallRequest_writesAndPrintsOneSummaryLine() throws {
        let folder = Fixtures.temporaryFolder("cli-synth")
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try Self.run(["dataset", "synth", "--out", folder.path, "--classes", "2", "--videos-per-class", "2",
                                   "--frames", "4", "--size", "32", "--seed", "1"])
        #expect(result.status == 0)
        #expect(result.err == "", "no progress bar when stderr is not a terminal")
        let lines = result.out.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("wrote 4 videos (2 train, 2 val, 2 classes, 4 frames of 32×32, ") == true, "\(result.out)")

        let verified = try Self.run(["dataset", "verify", folder.appendingPathComponent("val.csv").path])
        #expect(verified.status == 0)
        #expect(verified.out == "checked 2 videos from \(folder.appendingPathComponent("val.csv").path): all decode\n")
    }

    @Test(.enabled(if: fluxctl != nil, "needs the built fluxctl"))
    func datasetVerify_unreadableEntry_exitsOneNamingFileAndReason() throws {
        let folder = Fixtures.temporaryFolder("cli-verify")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("not a video".utf8).write(to: folder.appendingPathComponent("junk.mp4"))
        // The manifest lives in lists/; --root points its relative paths at the folder above.
        let lists = folder.appendingPathComponent("lists")
        try FileManager.default.createDirectory(at: lists, withIntermediateDirectories: true)
        let manifest = lists.appendingPathComponent("list.csv").path
        try "junk.mp4,0\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        let result = try Self.run(["dataset", "verify", manifest, "--root", folder.path])
        #expect(result.status == 1)
        #expect(result.out.hasPrefix("unreadable: \(folder.path)/junk.mp4 (line 1): avformat_open_input failed: "), "\(result.out)")
        #expect(result.out.hasSuffix("checked 1 videos from \(manifest): 1 unreadable\n"), "\(result.out)")
    }

    @Test(.enabled(if: fluxctl != nil, "needs the built fluxctl"))
    func datasetVerify_malformedManifest_exitsOneNamingTheLine() throws {
        let folder = Fixtures.temporaryFolder("cli-manifest")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("list.csv")
        try "a.mp4,0\nb.mp4,cat\n".write(to: file, atomically: true, encoding: .utf8)
        let result = try Self.run(["dataset", "verify", file.path])
        #expect(result.status == 1)
        #expect(result.err.hasPrefix("error: \(file.path):2: label 'cat' is not a non-negative integer."), "\(result.err)")
    }

    @Test(.enabled(if: fluxctl != nil, "needs the built fluxctl"))
    func datasetSynth_tooManyClasses_exitsOneWithTheRange() throws {
        let result = try Self.run(["dataset", "synth", "--out", "/nonexistent/never", "--classes", "30"])
        #expect(result.status == 1)
        #expect(result.err == "error: classes is 30, expected 1…24 (one per motion pattern).\n")
    }
}
