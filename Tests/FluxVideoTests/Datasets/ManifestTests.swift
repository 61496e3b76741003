import Foundation
import Testing
@testable import FluxVideo

@Suite struct ManifestTests {
    static let root = URL(fileURLWithPath: "/data/set", isDirectory: true)

    static func parse(_ text: String) throws -> Manifest { try Manifest.parse(text, file: "m.csv", root: root) }

    @Test func parse_csvWithHeaderCommentsAndBlankLines_readsEntriesWithLineNumbers() throws {
        let manifest = try Self.parse("path,label\n# a comment\n\nvideos/a.mp4,0\n  videos/b c.mp4 , 12 \n/abs/x.mp4,3\n")
        #expect(manifest.entries.map(\.path) == ["videos/a.mp4", "videos/b c.mp4", "/abs/x.mp4"])
        #expect(manifest.entries.map(\.label) == [0, 12, 3])
        #expect(manifest.entries.map(\.line) == [4, 5, 6])
        #expect(manifest.entries.map(\.url.path) == ["/data/set/videos/a.mp4", "/data/set/videos/b c.mp4", "/abs/x.mp4"])
    }

    @Test func parse_kineticsSpaceSeparated_readsEntries() throws {
        let manifest = try Self.parse("abseiling/x1.mp4 0\nair drumming/y.mp4\t1\r\n")
        #expect(manifest.entries.map(\.path) == ["abseiling/x1.mp4", "air drumming/y.mp4"])
        #expect(manifest.entries.map(\.label) == [0, 1])
    }

    @Test func load_defaultRoot_isTheManifestFolder() throws {
        let folder = Fixtures.temporaryFolder("manifest")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("list.txt")
        try "v/a.mp4 2\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try Manifest.load(path: file.path).entries[0].url.path == folder.appendingPathComponent("v/a.mp4").path)
        #expect(try Manifest.load(path: file.path, root: "/elsewhere").entries[0].url.path == "/elsewhere/v/a.mp4")
    }

    @Test func parse_nonIntegerLabel_namesFileAndLine() throws {
        let error = #expect(throws: ManifestError.self) { try Self.parse("path,label\na.mp4,0\nb.mp4,dog\n") }
        #expect(error == .invalidLabel(file: "m.csv", line: 3, label: "dog"))
        #expect(error?.description.hasPrefix("m.csv:3: label 'dog' is not a non-negative integer") == true)
    }

    @Test func parse_negativeLabel_isRejected() throws {
        #expect(throws: ManifestError.invalidLabel(file: "m.csv", line: 1, label: "-1")) { try Self.parse("a.mp4,-1") }
    }

    @Test func parse_unknownHeader_suggestsTheHeaderNames() throws {
        let error = #expect(throws: ManifestError.self) { try Self.parse("clip,category\na.mp4,0\n") }
        #expect(error?.description.contains("name the header columns 'path,label'") == true)
    }

    @Test func parse_lineWithoutLabel_namesTheLine() throws {
        let error = #expect(throws: ManifestError.self) { try Self.parse("a.mp4,0\n\nb.mp4\n") }
        #expect(error == .missingLabel(file: "m.csv", line: 3, text: "b.mp4"))
        #expect(error?.description.contains("m.csv:3:") == true)
    }

    @Test func parse_emptyPath_namesTheLine() throws {
        #expect(throws: ManifestError.emptyPath(file: "m.csv", line: 2)) { try Self.parse("a.mp4,0\n,1\n") }
    }

    @Test func parse_onlyHeaderAndComments_throwsEmpty() throws {
        #expect(throws: ManifestError.empty(file: "m.csv")) { try Self.parse("path,label\n# nothing\n") }
    }

    @Test func validate_labelAtClassCount_namesTheLine() throws {
        let manifest = try Self.parse("a.mp4,0\nb.mp4,4\n")
        #expect(throws: ManifestError.labelOutOfRange(file: "m.csv", line: 2, label: 4, classCount: 4)) {
            try manifest.validate(classCount: 4)
        }
    }

    @Test func load_missingFile_throwsCannotRead() throws {
        let error = #expect(throws: ManifestError.self) { try Manifest.load(path: "/nonexistent/train.csv") }
        guard case let .cannotRead(file, _) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(file == "/nonexistent/train.csv")
    }

    @Test func classNames_duplicate_namesBothLines() throws {
        let folder = Fixtures.temporaryFolder("classes")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("classes.txt")
        try "# names\ncat\ndog\n\ncat\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(throws: ManifestError.duplicateClassName(file: file.path, line: 5, name: "cat", firstLine: 2)) {
            try ClassNames.load(path: file.path)
        }
        try "cat\n dog \n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try ClassNames.load(path: file.path) == ["cat", "dog"])
    }
}
