import Foundation
import Yams

/// The issues found while reading one spec, in reading order.
final class IssueLog {
    private(set) var issues: [FieldIssue] = []

    func add(_ path: String, _ message: String) {
        issues.append(FieldIssue(path: path, message: message))
    }
}

/// What job and sweep specs share before their own keys: reading the file, and opening the top-level mapping.
enum SpecDocument {
    /// A spec file's text and the folder its relative paths resolve against.
    /// - Throws: `SpecError.unreadable` naming the path.
    static func read(path: String) throws(SpecError) -> (text: String, folder: URL) {
        do {
            return (try String(contentsOfFile: path, encoding: .utf8), URL(fileURLWithPath: path).deletingLastPathComponent())
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// The top-level mapping of `yaml`, its unknown keys reported to `log`.
    /// - Parameter example: a first line of such a spec, for the message when the text is not a mapping.
    /// - Throws: `SpecError.malformed` when the text is not YAML or not a mapping.
    static func top(yaml: String, source: String, keys: [String], log: IssueLog, example: String) throws(SpecError) -> Section {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw .malformed(source: source, reason: "\(error)")
        }
        guard let root, let top = Section(root, path: "", keys: keys, log: log) else {
            throw .malformed(source: source, reason: "expected a mapping of keys to values such as '\(example)'")
        }
        return top
    }
}

/// A constraint on a value and the words that name it in messages ("≥ 1", "in (0, 1]").
struct Rule<Value> {
    let text: String
    let test: (Value) -> Bool

    init(_ text: String, _ test: @escaping (Value) -> Bool) {
        self.text = text
        self.test = test
    }
}

extension Rule where Value == Int {
    static func atLeast(_ bound: Int) -> Rule { Rule("≥ \(bound)") { $0 >= bound } }
    static func atMost(_ bound: Int) -> Rule { Rule("≤ \(bound)") { $0 <= bound } }
}

/// One YAML mapping of a spec, read key by key into typed values.
///
/// Opening a section reports its unknown and duplicate keys; each read reports a missing required key, a value
/// of the wrong type or one that breaks a rule, under the key's dotted path, and then returns nil.
struct Section {
    let path: String
    let mapping: Node.Mapping
    let log: IssueLog

    /// Opens `node` as a mapping whose keys are `keys`; nil, reported, when it is not a mapping.
    init?(_ node: Node, path: String, keys: [String], log: IssueLog) {
        self.path = path
        self.log = log
        guard let mapping = node.mapping else {
            log.add(path, "must be a mapping of keys to values, got \(Self.describe(node))")
            return nil
        }
        self.mapping = mapping
        var seen: Set<String> = []
        for key in mapping.keys.compactMap(\.string) {
            if !seen.insert(key).inserted {
                log.add(fieldPath(key), "duplicate key; give it once")
            } else if !keys.contains(key) {
                log.add(fieldPath(key), Self.unknownKeyMessage(key, known: keys))
            }
        }
    }

    func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The node at `key` (the first, if the key is duplicated).
    subscript(key: String) -> Node? { mapping.first { $0.key.string == key }?.value }

    func has(_ key: String) -> Bool { self[key] != nil }

    /// The mapping at `key`; nil when absent (reported if `required`) or not a mapping (reported).
    func section(_ key: String, keys: [String], required: Bool) -> Section? {
        guard let node = self[key] else {
            if required { log.add(fieldPath(key), "required but missing") }
            return nil
        }
        return Section(node, path: fieldPath(key), keys: keys, log: log)
    }

    /// The value at `key` made by `convert`; nil when absent (reported if `required`) or not convertible.
    func value<T>(_ key: String, required: Bool, expected: String, _ convert: (Node) -> T?) -> T? {
        guard let node = self[key] else {
            if required { log.add(fieldPath(key), "required but missing") }
            return nil
        }
        guard let value = convert(node) else {
            log.add(fieldPath(key), "must be \(expected), got \(Self.describe(node))")
            return nil
        }
        return value
    }

    /// `value` if it keeps every rule; else nil, reporting the first rule broken with the value as written.
    func checked<T>(_ key: String, _ value: T?, _ rules: [Rule<T>]) -> T? {
        guard let value else { return nil }
        if let broken = rules.first(where: { !$0.test(value) }) {
            log.add(fieldPath(key), "must be \(broken.text), got \(self[key]?.scalar?.string ?? "\(value)")")
            return nil
        }
        return value
    }

    func int(_ key: String, required: Bool = false, _ rules: Rule<Int>...) -> Int? {
        checked(key, value(key, required: required, expected: "an integer") { $0.int }, rules)
    }

    /// A number; infinities and NaN are not numbers here.
    func number(_ key: String, _ rules: Rule<Double>...) -> Double? {
        let number = value(key, required: false, expected: "a number") { $0.float.flatMap { $0.isFinite ? $0 : nil } }
        return checked(key, number, rules)
    }

    func seed(_ key: String) -> UInt64? {
        value(key, required: false, expected: "an integer ≥ 0") { $0.scalar.flatMap(UInt64.construct) }
    }

    func bool(_ key: String) -> Bool? {
        value(key, required: false, expected: "true or false") { $0.bool }
    }

    func string(_ key: String, required: Bool = false) -> String? {
        value(key, required: required, expected: "a string") { $0.scalar?.string }
    }

    /// A non-empty path, made absolute against `base` when it is relative and a base is given.
    func filePath(_ key: String, required: Bool = false, base: URL?) -> String? {
        value(key, required: required, expected: "a path") { node in
            node.scalar.map(\.string).flatMap { $0.isEmpty ? nil : Self.resolve($0, against: base) }
        }
    }

    /// A non-empty list of integers, each keeping `rules`.
    func intList(_ key: String, _ rules: [Rule<Int>]) -> [Int]? {
        let list = value(key, required: false, expected: "a list of integers such as [8, 16]") { node -> [Int]? in
            guard let items = node.sequence.map(Array.init) else { return nil }
            let ints = items.compactMap(\.int)
            return ints.count == items.count ? ints : nil
        }
        guard let list else { return nil }
        if list.isEmpty {
            log.add(fieldPath(key), "must not be empty")
            return nil
        }
        for value in list {
            if let broken = rules.first(where: { !$0.test(value) }) {
                log.add(fieldPath(key), "each must be \(broken.text), got \(value)")
                return nil
            }
        }
        return list
    }

    /// Reports unless exactly one of `a` and `b` is present; true when exactly one is.
    func exactlyOne(_ a: String, _ b: String) -> Bool {
        switch (has(a), has(b)) {
        case (true, true):
            log.add(path, "give only one of '\(a)' or '\(b)', not both")
            return false
        case (false, false):
            log.add(path, "give one of '\(a)' or '\(b)'")
            return false
        default:
            return true
        }
    }

    /// A node as a message shows it: `'abc'`, `nothing`, `a list` or `a mapping`.
    static func describe(_ node: Node) -> String {
        switch node {
        case let .scalar(scalar): scalar.string.isEmpty ? "nothing" : "'\(scalar.string)'"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    static func resolve(_ path: String, against base: URL?) -> String {
        guard let base, !path.hasPrefix("/") else { return path }
        return base.appendingPathComponent(path).standardizedFileURL.path
    }

    /// "unknown key", with the one nearest known key when it is a likely typo, else the known keys.
    static func unknownKeyMessage(_ key: String, known: [String]) -> String {
        // Within 2 edits, and fewer edits than the key has characters, so that 'x' does not suggest 'lr'.
        let limit = min(2, key.count - 1)
        let distances = known.map { (key: $0, distance: editDistance(key, $0)) }
        if let best = distances.map(\.distance).min(), best <= limit {
            let nearest = distances.filter { $0.distance == best }
            if nearest.count == 1 { return "unknown key; did you mean '\(nearest[0].key)'?" }
        }
        return "unknown key; known keys: \(known.joined(separator: ", "))"
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
