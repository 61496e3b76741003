import Foundation
import FluxViT
import Yams

extension SweepSpec {
    /// Reads a sweep spec file; relative paths in it resolve against the file's folder.
    /// - Throws: `SpecError.unreadable` naming the path, or what `parse` throws.
    public static func load(path: String) throws(SpecError) -> SweepSpec {
        let (text, folder) = try SpecDocument.read(path: path)
        return try parse(yaml: text, source: "'\(path)'", baseDirectory: folder)
    }

    /// Parses and validates a sweep spec (the format of `configs/sweeps/quickstart.yaml`).
    ///
    /// Every problem is reported at once, each at its field path: a missing or wrong `kind`, unknown keys (with a
    /// suggestion for a likely typo), missing keys, wrong types, values out of range, repeated budgets or grid
    /// values, frame counts that group selection cannot take (odd, with `selection: group`). What depends on the
    /// model (sizes against its patch size, which candidates fit which budget) is checked by `cells(model:)`,
    /// since the model is known only once the checkpoint is.
    ///
    /// - Parameters:
    ///   - source: Names the text in errors, e.g. a quoted file path.
    ///   - baseDirectory: Relative paths (`checkpoint`, `data.*`) become absolute against it; without one they
    ///     stay as written.
    /// - Throws: `SpecError.malformed` when the text is not a YAML mapping, else `SpecError.invalid` with every issue.
    public static func parse(
        yaml: String, source: String = "sweep spec", baseDirectory: URL? = nil
    ) throws(SpecError) -> SweepSpec {
        let log = IssueLog()
        let top = try SpecDocument.top(yaml: yaml, source: source, keys: Keys.top, log: log, example: "kind: sweep")

        readKind(top)
        let name = JobSpec.readName(top)
        let checkpoint = readCheckpoint(top, base: baseDirectory)
        let data = readData(top, base: baseDirectory)
        let budgets = readBudgets(top)
        let selection = top.value("selection", required: false, expected: "'group' or 'none'") {
            $0.scalar.flatMap { Selection(rawValue: $0.string) }
        }
        // An invalid selection is reported; the frame rule then falls back to the laxer one to avoid a second issue.
        let frameRule = frameRule(for: top.has("selection") ? selection ?? Selection.none : .group)
        let candidates = readCandidates(top, frameRule: frameRule)
        let views = readViews(top)
        let head = readHead(top)
        let standard = readStandard(top, frameRule: frameRule)
        let maxWorkers = readWorkers(top)
        let priority = top.int("priority") ?? 0

        guard log.issues.isEmpty, let name, let checkpoint, let data, let budgets, let candidates, let views,
              let head, let maxWorkers
        else { throw .invalid(source: source, issues: log.issues) }
        return SweepSpec(
            name: name, checkpoint: checkpoint, data: data, budgets: budgets, candidates: candidates,
            selection: selection ?? .group, views: views, head: head, standard: standard,
            maxWorkers: maxWorkers, priority: priority)
    }

    /// Whether `yaml`'s top-level `kind` is `sweep`: how a submitted text is told from a training job spec.
    /// False for anything that is not a YAML mapping.
    public static func isSweep(yaml: String) -> Bool {
        guard let root = try? Yams.compose(yaml: yaml), let mapping = root.mapping else { return false }
        return mapping.first { $0.key.string == "kind" }?.value.string == kind
    }

    /// The value of `kind` that marks a sweep spec.
    static let kind = "sweep"

    /// The known keys of each section, in document order.
    enum Keys {
        static let top = ["kind", "name", "checkpoint", "data", "budgets", "candidates", "selection", "views", "head",
                          "standard", "workers", "priority"]
        static let checkpoint = ["job"]
        static let data = ["eval", "choose_on", "root"]
        static let candidates = ["frames", "sizes"]
        static let views = ["clips", "crops"]
        static let standard = ["frames", "size"]
        static let workers = ["max"]
    }

    /// Frame counts a sweep may sample: group selection compares frames in pairs, so it needs an even count.
    static func frameRule(for selection: Selection) -> Rule<Int> {
        switch selection {
        case .group: Rule("an even number ≥ 2 (group selection compares frames in pairs)") { $0 >= 2 && $0 % 2 == 0 }
        case .none: .atLeast(1)
        }
    }

    /// Crop counts the test views support (spec §6): the centre, or start, centre and end.
    static var cropRule: Rule<Int> { Rule("1 or 3") { $0 == 1 || $0 == 3 } }

    private static func readKind(_ top: Section) {
        guard let node = top["kind"] else {
            top.log.add("kind", "required but missing; write 'kind: sweep' (it tells a sweep from a training job spec)")
            return
        }
        if node.scalar?.string != kind {
            top.log.add("kind", "must be 'sweep', got \(Section.describe(node)); a training job spec has no 'kind'")
        }
    }

    /// A checkpoint folder path, or `{job: JOB-ID}` for the newest checkpoint the coordinator stored for a job.
    private static func readCheckpoint(_ top: Section, base: URL?) -> CheckpointReference? {
        guard let node = top["checkpoint"] else {
            top.log.add("checkpoint", "required but missing; give a checkpoint folder or {job: JOB-ID}")
            return nil
        }
        switch node {
        case .scalar:
            return top.filePath("checkpoint", required: true, base: base).map(CheckpointReference.path)
        case .mapping:
            guard let section = Section(node, path: "checkpoint", keys: Keys.checkpoint, log: top.log),
                  let job = section.string("job", required: true)
            else { return nil }
            guard !job.isEmpty, !job.contains(where: \.isWhitespace) else {
                top.log.add("checkpoint.job", "must be a job id such as 'j-000001', got '\(job)'")
                return nil
            }
            return .job(job)
        case .sequence:
            top.log.add("checkpoint", "must be a checkpoint folder or {job: JOB-ID}, got a list")
            return nil
        }
    }

    private static func readData(_ top: Section, base: URL?) -> EvaluationData? {
        guard let section = top.section("data", keys: Keys.data, required: true) else { return nil }
        let eval = section.filePath("eval", required: true, base: base)
        let chooseOn = section.filePath("choose_on", base: base)
        let root = section.filePath("root", base: base)
        guard let eval, section.has("choose_on") == (chooseOn != nil), section.has("root") == (root != nil)
        else { return nil }
        return EvaluationData(eval: eval, chooseOn: chooseOn, root: root)
    }

    private static func readBudgets(_ top: Section) -> [Int]? {
        guard top.has("budgets") else {
            top.log.add("budgets", "required but missing; give token budgets such as [512, 1024, 2048]")
            return nil
        }
        return top.intList("budgets", [.atLeast(1)]).flatMap { distinctAscending($0, at: "budgets", top.log) }
    }

    /// Absent keys stay empty: the model's default grid (`defaultCandidates(model:)`).
    private static func readCandidates(_ top: Section, frameRule: Rule<Int>) -> Candidates? {
        guard top.has("candidates") else { return Candidates() }
        guard let section = top.section("candidates", keys: Keys.candidates, required: false) else { return nil }
        let frames = section.has("frames")
            ? section.intList("frames", [frameRule]).flatMap { distinctAscending($0, at: "candidates.frames", top.log) }
            : []
        let sizes = section.has("sizes")
            ? section.intList("sizes", [.atLeast(1)]).flatMap { distinctAscending($0, at: "candidates.sizes", top.log) }
            : []
        guard let frames, let sizes else { return nil }
        return Candidates(frames: frames, sizes: sizes)
    }

    /// `"CxK"` (`1x3`, `2×3`) or `{clips: C, crops: K}`; absent: one centre view.
    private static func readViews(_ top: Section) -> Views? {
        guard let node = top["views"] else { return Views() }
        let expected = "'CLIPSxCROPS' such as '1x3', or {clips: C, crops: K}"
        switch node {
        case let .scalar(scalar):
            let parts = scalar.string.split(omittingEmptySubsequences: false, whereSeparator: { "xX×".contains($0) })
            guard parts.count == 2, let clips = Int(parts[0]), let crops = Int(parts[1]) else {
                top.log.add("views", "must be \(expected), got \(Section.describe(node))")
                return nil
            }
            var valid = true
            if clips < 1 {
                top.log.add("views", "clips must be ≥ 1, got \(clips) in '\(scalar.string)'")
                valid = false
            }
            if !cropRule.test(crops) {
                top.log.add("views", "crops must be \(cropRule.text), got \(crops) in '\(scalar.string)'")
                valid = false
            }
            return valid ? Views(clips: clips, crops: crops) : nil
        case .mapping:
            guard let section = Section(node, path: "views", keys: Keys.views, log: top.log) else { return nil }
            let clips = section.has("clips") ? section.int("clips", .atLeast(1)) : 1
            let crops = section.has("crops") ? section.int("crops", cropRule) : 1
            guard let clips, let crops else { return nil }
            return Views(clips: clips, crops: crops)
        case .sequence:
            top.log.add("views", "must be \(expected), got a list")
            return nil
        }
    }

    private static func readHead(_ top: Section) -> HeadChoice? {
        guard let node = top["head"] else { return .nearest }
        if node.scalar?.string == "nearest" { return .nearest }
        if let index = node.int, (0..<FluxViTConfig.headCount).contains(index) { return .fixed(index) }
        top.log.add("head", "must be 'nearest' or a head index 0, 1 or 2, got \(Section.describe(node))")
        return nil
    }

    /// The standard sampling; nil when absent (the model's default) or invalid (reported, so `parse` throws).
    private static func readStandard(_ top: Section, frameRule: Rule<Int>) -> Candidate? {
        guard let section = top.section("standard", keys: Keys.standard, required: false) else { return nil }
        let frames = section.int("frames", required: true, frameRule)
        let size = section.int("size", required: true, .atLeast(1))
        guard let frames, let size else { return nil }
        return Candidate(frames: frames, size: size)
    }

    /// `workers: N` or `workers: {max: N}`; absent: `JobSpec.maxWorkers`.
    private static func readWorkers(_ top: Section) -> Int? {
        guard let node = top["workers"] else { return JobSpec.maxWorkers }
        if node.mapping != nil {
            let section = top.section("workers", keys: Keys.workers, required: false)
            return section?.int("max", required: true, .atLeast(1), .atMost(JobSpec.maxWorkers))
        }
        let count = top.value("workers", required: true, expected: "an integer or {max: N}") { $0.int }
        return top.checked("workers", count, [.atLeast(1), .atMost(JobSpec.maxWorkers)])
    }

    /// `values` sorted, or nil after reporting the ones given more than once.
    private static func distinctAscending(_ values: [Int], at path: String, _ log: IssueLog) -> [Int]? {
        let sorted = values.sorted()
        let repeated = zip(sorted, sorted.dropFirst()).filter { $0 == $1 }.map(\.0)
        guard repeated.isEmpty else {
            let listed = Array(Set(repeated)).sorted().map(String.init).joined(separator: ", ")
            log.add(path, "give each value once; repeated: \(listed)")
            return nil
        }
        return sorted
    }
}
