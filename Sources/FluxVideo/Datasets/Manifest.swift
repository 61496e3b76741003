import Foundation

/// A malformed manifest or class-names file; each case names the file, the line and the fix.
public enum ManifestError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read.
    case cannotRead(file: String, reason: String)
    /// A line has no label column.
    case missingLabel(file: String, line: Int, text: String)
    /// A line's path column is empty.
    case emptyPath(file: String, line: Int)
    /// A label that is not a non-negative integer.
    case invalidLabel(file: String, line: Int, label: String)
    /// A label at or above the number of classes.
    case labelOutOfRange(file: String, line: Int, label: Int, classCount: Int)
    /// The file lists no entries.
    case empty(file: String)
    /// A class name listed twice.
    case duplicateClassName(file: String, line: Int, name: String, firstLine: Int)

    public var description: String {
        switch self {
        case let .cannotRead(file, reason):
            "cannot read '\(file)': \(reason). Check the path."
        case let .missingLabel(file, line, text):
            "\(file):\(line): expected 'path,label' or 'path label', found '\(text)'. Add the integer class label after the path."
        case let .emptyPath(file, line):
            "\(file):\(line): the path is empty. Write the video's path (relative to the manifest's folder or absolute) before the label."
        case let .invalidLabel(file, line, label):
            "\(file):\(line): label '\(label)' is not a non-negative integer. Use the class index (0-based, the line number in the class-names file minus one)"
                + (line == 1 ? ", or name the header columns 'path,label'." : ".")
        case let .labelOutOfRange(file, line, label, count):
            "\(file):\(line): label \(label) is out of range for \(count) classes. Use 0…\(count - 1) or add the class to the class-names file."
        case let .empty(file):
            "'\(file)' lists no videos. Add 'path,label' lines."
        case let .duplicateClassName(file, line, name, first):
            "\(file):\(line): class name '\(name)' already appears on line \(first). Class names must be unique."
        }
    }
}

/// One manifest line: a video and its class.
public struct ManifestEntry: Sendable, Equatable {
    /// The path as written in the manifest.
    public var path: String
    /// The video's location: `path` resolved against the manifest's root.
    public var url: URL
    /// The 0-based class index.
    public var label: Int
    /// The 1-based line number in the manifest, for error messages.
    public var line: Int

    public init(path: String, url: URL, label: Int, line: Int) {
        self.path = path
        self.url = url
        self.label = label
        self.line = line
    }
}

/// A list of labelled videos read from a manifest file.
///
/// Two formats, chosen per line: CSV (`path,label`, split at the last comma) and the Kinetics list style
/// (`path label`, split at the last run of spaces or tabs). A first line whose columns are header names
/// (`path,label`, `video,class`, …) is skipped; blank lines and lines starting with `#` are skipped everywhere.
/// Relative paths resolve against `root`, by default the manifest's folder.
public struct Manifest: Sendable, Equatable {
    /// The manifest file.
    public var file: String
    /// The folder relative paths resolve against.
    public var root: URL
    /// The entries in file order.
    public var entries: [ManifestEntry]

    static let pathHeaders: Set<String> = ["path", "video", "file", "filename", "video_path", "youtube_id"]
    static let labelHeaders: Set<String> = ["label", "class", "label_id", "class_id", "target", "y"]

    /// Reads the manifest at `path`.
    /// - Parameter root: the folder relative video paths resolve against; defaults to the manifest's folder.
    /// - Throws: `ManifestError` naming the file and the first bad line.
    public static func load(path: String, root: String? = nil) throws -> Manifest {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ManifestError.cannotRead(file: path, reason: (error as NSError).localizedDescription)
        }
        let rootURL = root.map { URL(fileURLWithPath: $0, isDirectory: true) }
            ?? URL(fileURLWithPath: path).deletingLastPathComponent()
        return try parse(text, file: path, root: rootURL)
    }

    /// Parses manifest text; `file` names the source in errors.
    public static func parse(_ text: String, file: String, root: URL) throws -> Manifest {
        var entries: [ManifestEntry] = []
        var sawFirstLine = false
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = offset + 1
            let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let isFirst = !sawFirstLine
            sawFirstLine = true
            let columns: (String, String)
            if let comma = trimmed.lastIndex(of: ",") {
                columns = (String(trimmed[..<comma]), String(trimmed[trimmed.index(after: comma)...]))
            } else if let gap = trimmed.lastIndex(where: { $0 == " " || $0 == "\t" }) {
                columns = (String(trimmed[..<gap]), String(trimmed[trimmed.index(after: gap)...]))
            } else {
                throw ManifestError.missingLabel(file: file, line: line, text: trimmed)
            }
            let videoPath = columns.0.trimmingCharacters(in: .whitespaces)
            let labelText = columns.1.trimmingCharacters(in: .whitespaces)
            let isHeader = pathHeaders.contains(videoPath.lowercased()) && labelHeaders.contains(labelText.lowercased())
            if isFirst && isHeader {
                continue
            }
            if videoPath.isEmpty { throw ManifestError.emptyPath(file: file, line: line) }
            guard let label = Int(labelText), label >= 0 else {
                throw ManifestError.invalidLabel(file: file, line: line, label: labelText)
            }
            let url = videoPath.hasPrefix("/")
                ? URL(fileURLWithPath: videoPath) : root.appendingPathComponent(videoPath)
            entries.append(ManifestEntry(path: videoPath, url: url, label: label, line: line))
        }
        if entries.isEmpty { throw ManifestError.empty(file: file) }
        return Manifest(file: file, root: root, entries: entries)
    }

    /// Checks that every label is below `classCount`.
    /// - Throws: `ManifestError.labelOutOfRange` for the first entry that is not.
    public func validate(classCount: Int) throws {
        if let bad = entries.first(where: { $0.label >= classCount }) {
            throw ManifestError.labelOutOfRange(file: file, line: bad.line, label: bad.label, classCount: classCount)
        }
    }
}

/// Class names in label order, read from a file with one name a line (`classes.txt`).
public enum ClassNames {
    /// Reads the names; blank lines and `#` comments are skipped, surrounding spaces trimmed.
    /// - Throws: `ManifestError` for an unreadable or empty file or a repeated name.
    public static func load(path: String) throws -> [String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ManifestError.cannotRead(file: path, reason: (error as NSError).localizedDescription)
        }
        var names: [String] = []
        var seen: [String: Int] = [:]
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if name.isEmpty || name.hasPrefix("#") { continue }
            if let first = seen[name] {
                throw ManifestError.duplicateClassName(file: path, line: offset + 1, name: name, firstLine: first)
            }
            seen[name] = offset + 1
            names.append(name)
        }
        if names.isEmpty { throw ManifestError.empty(file: path) }
        return names
    }
}
