import Foundation

/// The public keys a CURVE server accepts, read from a file like ssh's authorized_keys.
///
/// Grammar, per line: blank; a comment (first non-blank character `#`); or a 40-character Z85 public key
/// followed by an optional label (the content of a `NAME.pub`). `#` is a Z85 character, but no key starts
/// with it: a leading `#` (or `$`) would make the first 5-character group exceed 2³², which Z85 forbids.
/// Errors list every bad line with its number.
public struct Allowlist: Equatable, Sendable {
    /// One allowed key and its label (empty when the line has none).
    public struct Entry: Equatable, Sendable {
        /// The public key.
        public var key: CurveKey
        /// The rest of its line, e.g. the pair's name.
        public var label: String
        /// 1-based line number in the file (0 when built in code).
        public var line: Int
    }

    /// The keys in file order.
    public private(set) var entries: [Entry]
    private var labels: [CurveKey: String]

    /// An allowlist of `keys` (labels empty).
    public init(keys: [CurveKey] = []) {
        self.init(entries: keys.map { Entry(key: $0, label: "", line: 0) })
    }

    /// An allowlist of parsed entries; the first label of a repeated key wins.
    init(entries: [Entry]) {
        self.entries = entries
        labels = Dictionary(entries.map { ($0.key, $0.label) }, uniquingKeysWith: { first, _ in first })
    }

    /// Whether `key` is allowed.
    public func contains(_ key: CurveKey) -> Bool { labels[key] != nil }

    /// The label of an allowed key.
    public func label(of key: CurveKey) -> String? { labels[key] }

    /// The number of distinct keys.
    public var count: Int { labels.count }

    /// Parses allowlist text; `path` names it in errors.
    ///
    /// - Throws: `WireError.allowlist` listing every malformed line.
    public static func parse(_ text: String, path: String) throws -> Allowlist {
        var entries: [Entry] = []
        var issues: [AllowlistIssue] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let first = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) else {
                continue
            }
            if line.hasPrefix("#") { continue }
            if let problem = CurveKey.z85Problem(first) {
                let hint = first == "secret-key" || first == "public-key"
                    ? "this is a line of a NAME.key file; allowlists take the content of NAME.pub"
                    : "expected a public key: \(problem)"
                issues.append(AllowlistIssue(line: index + 1, problem: hint))
                continue
            }
            do {
                let key = try CurveKey(z85: first)
                let label = line.dropFirst(first.count).trimmingCharacters(in: .whitespaces)
                entries.append(Entry(key: key, label: label, line: index + 1))
            } catch {
                issues.append(AllowlistIssue(line: index + 1, problem: "the key does not decode"))
            }
        }
        guard issues.isEmpty else { throw WireError.allowlist(path: path, issues: issues) }
        return Allowlist(entries: entries)
    }

    /// Reads and parses the allowlist file at `path`.
    public static func load(path: String) throws -> Allowlist {
        try parse(readText(path), path: path)
    }
}
