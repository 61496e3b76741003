import Foundation
import FluxJobs
import FluxTensor
import FluxTraining
import FluxViT
import Testing

@Suite struct SweepSpecTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sweepsFolder = repository.appendingPathComponent("configs/sweeps")

    /// A valid sweep with only the required keys; the issue cases edit one part of it.
    static let minimal = """
        kind: sweep
        name: s
        checkpoint: /ckpt/step-000000060
        data:
          eval: /data/val.csv
        budgets: [64]

        """

    /// Every key, paths relative to configs/sweeps.
    static let full = """
        kind: sweep
        name: motion-to.v2_b
        checkpoint: ckpt/step-000000050
        data:
          eval: data/val.csv
          choose_on: data/train.csv
          root: /datasets/motion
        budgets: [96, 32, 64]
        candidates:
          frames: [8, 2, 4]
          sizes: [64, 32]
        selection: none
        views: 2x3
        head: 1
        standard: {frames: 6, size: 48}
        workers: {max: 4}
        priority: 3

        """

    static func model(_ file: String) throws -> FluxViTConfig {
        try FluxViTConfig.load(path: repository.appendingPathComponent("configs/models/\(file)").path)
    }

    static func minimal(replacing target: String, with replacement: String) -> String {
        precondition(minimal.contains(target), "the minimal spec has no '\(target)'")
        return minimal.replacingOccurrences(of: target, with: replacement)
    }

    /// `minimal` with `lines` appended.
    static func minimal(adding lines: String) -> String { minimal + lines + "\n" }

    /// The issues `parse` reports, [] when it accepts the text; records a test issue for other errors.
    static func issues(_ yaml: String) -> [FieldIssue] {
        do {
            _ = try SweepSpec.parse(yaml: yaml)
            return []
        } catch {
            guard case let .invalid(_, issues) = error else {
                Issue.record("expected .invalid, got \(error)")
                return []
            }
            return issues
        }
    }

    /// The issues `cells(model:)` reports for a spec that parses, [] when it expands.
    static func cellIssues(_ yaml: String, model: FluxViTConfig) throws -> [FieldIssue] {
        let spec = try SweepSpec.parse(yaml: yaml)
        do {
            _ = try spec.cells(model: model)
            return []
        } catch {
            guard case let .invalid(source, issues) = error else {
                Issue.record("expected .invalid, got \(error)")
                return []
            }
            #expect(source == "sweep '\(spec.name)'")
            return issues
        }
    }

    // MARK: Parsing

    @Test func parse_fullSpec_readsEveryField() throws {
        let spec = try SweepSpec.parse(yaml: Self.full, baseDirectory: Self.sweepsFolder)
        let folder = Self.sweepsFolder.path
        #expect(spec.name == "motion-to.v2_b")
        #expect(spec.checkpoint == .path("\(folder)/ckpt/step-000000050"))
        #expect(spec.data == SweepSpec.EvaluationData(
            eval: "\(folder)/data/val.csv", chooseOn: "\(folder)/data/train.csv", root: "/datasets/motion"))
        #expect(spec.budgets == [32, 64, 96])
        #expect(spec.candidates == SweepSpec.Candidates(frames: [2, 4, 8], sizes: [32, 64]))
        #expect(spec.selection == .none)
        #expect(spec.views == SweepSpec.Views(clips: 2, crops: 3))
        #expect(spec.head == .fixed(1))
        #expect(spec.standard == SweepSpec.Candidate(frames: 6, size: 48))
        #expect(spec.maxWorkers == 4)
        #expect(spec.priority == 3)
    }

    @Test func parse_requiredKeysOnly_appliesDefaults() throws {
        let spec = try SweepSpec.parse(yaml: Self.minimal)
        #expect(spec.candidates == SweepSpec.Candidates(frames: [], sizes: []))
        #expect(spec.selection == .group)
        #expect(spec.views == SweepSpec.Views(clips: 1, crops: 1))
        #expect(spec.head == .nearest)
        #expect(spec.standard == nil)
        #expect(spec.maxWorkers == JobSpec.maxWorkers)
        #expect(spec.priority == 0)
        #expect(spec.data.chooseOn == nil && spec.data.root == nil)
    }

    @Test func parse_checkpointJob_readsTheJobID() throws {
        let spec = try SweepSpec.parse(yaml: Self.minimal(
            replacing: "checkpoint: /ckpt/step-000000060", with: "checkpoint: {job: j-000001}"))
        #expect(spec.checkpoint == .job("j-000001"))
    }

    @Test(arguments: [
        ("views: 2x3", SweepSpec.Views(clips: 2, crops: 3)),
        ("views: 2×3", SweepSpec.Views(clips: 2, crops: 3)),
        ("views: 1X1", SweepSpec.Views(clips: 1, crops: 1)),
        ("views: {clips: 4, crops: 3}", SweepSpec.Views(clips: 4, crops: 3)),
        ("views: {crops: 3}", SweepSpec.Views(clips: 1, crops: 3)),
    ])
    func parse_viewsForms_readClipsAndCrops(_ line: String, _ expected: SweepSpec.Views) throws {
        #expect(try SweepSpec.parse(yaml: Self.minimal(adding: line)).views == expected)
    }

    @Test(arguments: [("workers: 3", 3), ("workers: {max: 3}", 3), ("priority: 1", JobSpec.maxWorkers)])
    func parse_workersForms_readTheMaximum(_ line: String, _ expected: Int) throws {
        #expect(try SweepSpec.parse(yaml: Self.minimal(adding: line)).maxWorkers == expected)
    }

    @Test(arguments: [("head: nearest", SweepSpec.HeadChoice.nearest), ("head: 0", .fixed(0)), ("head: 2", .fixed(2))])
    func parse_headForms_readTheChoice(_ line: String, _ expected: SweepSpec.HeadChoice) throws {
        #expect(try SweepSpec.parse(yaml: Self.minimal(adding: line)).head == expected)
    }

    @Test func parse_selectionNone_acceptsOddFrames() throws {
        let spec = try SweepSpec.parse(yaml: Self.minimal(adding: """
            selection: none
            candidates: {frames: [3, 5]}
            standard: {frames: 7, size: 64}
            """))
        #expect(spec.candidates.frames == [3, 5])
        #expect(spec.standard?.frames == 7)
    }

    /// One bad field of `minimal` and the issue it must produce.
    struct IssueCase: CustomTestStringConvertible, Sendable {
        let edit: @Sendable () -> String
        let path: String
        let fragment: String
        var testDescription: String { "\(path): \(fragment)" }

        init(_ path: String, _ fragment: String, _ edit: @escaping @Sendable () -> String) {
            self.path = path
            self.fragment = fragment
            self.edit = edit
        }
    }

    static let issueCases: [IssueCase] = [
        IssueCase("kind", "write 'kind: sweep'") { minimal(replacing: "kind: sweep\n", with: "") },
        IssueCase("kind", "a training job spec has no 'kind'") { minimal(replacing: "kind: sweep", with: "kind: job") },
        IssueCase("name", "must be 1–64 characters") { minimal(replacing: "name: s", with: "name: 'a b'") },
        IssueCase("checkpoint", "required but missing") {
            minimal(replacing: "checkpoint: /ckpt/step-000000060\n", with: "")
        },
        IssueCase("checkpoint", "got a list") { minimal(replacing: "/ckpt/step-000000060", with: "[a]") },
        IssueCase("checkpoint.job", "required but missing") {
            minimal(replacing: "/ckpt/step-000000060", with: "{}")
        },
        IssueCase("data.eval", "required but missing") {
            minimal(replacing: "  eval: /data/val.csv", with: "  root: /data")
        },
        IssueCase("budgets", "required but missing") { minimal(replacing: "budgets: [64]\n", with: "") },
        IssueCase("budgets", "must not be empty") { minimal(replacing: "[64]", with: "[]") },
        IssueCase("budgets", "each must be ≥ 1, got 0") { minimal(replacing: "[64]", with: "[64, 0]") },
        IssueCase("budgets", "repeated: 64") { minimal(replacing: "[64]", with: "[64, 32, 64]") },
        IssueCase("candidates.frames", "an even number ≥ 2") { minimal(adding: "candidates: {frames: [4, 5]}") },
        IssueCase("candidates.sizes", "repeated: 32") { minimal(adding: "candidates: {sizes: [32, 32]}") },
        IssueCase("selection", "'group' or 'none'") { minimal(adding: "selection: all") },
        IssueCase("views", "crops must be 1 or 3, got 2") { minimal(adding: "views: 1x2") },
        IssueCase("views", "clips must be ≥ 1, got 0") { minimal(adding: "views: 0x1") },
        IssueCase("views", "'CLIPSxCROPS'") { minimal(adding: "views: three") },
        IssueCase("views.crops", "must be 1 or 3, got 4") { minimal(adding: "views: {crops: 4}") },
        IssueCase("head", "a head index 0, 1 or 2, got '3'") { minimal(adding: "head: 3") },
        IssueCase("head", "got 'largest'") { minimal(adding: "head: largest") },
        IssueCase("standard.size", "required but missing") { minimal(adding: "standard: {frames: 8}") },
        IssueCase("standard.frames", "an even number ≥ 2") { minimal(adding: "standard: {frames: 7, size: 64}") },
        IssueCase("workers", "must be ≤ 64, got 65") { minimal(adding: "workers: 65") },
        IssueCase("workers.max", "must be ≥ 1, got 0") { minimal(adding: "workers: {max: 0}") },
        IssueCase("priority", "must be an integer") { minimal(adding: "priority: high") },
    ]

    @Test(arguments: issueCases)
    func parse_oneBadField_reportsItsPathAndMessage(_ issue: IssueCase) {
        let found = Self.issues(issue.edit())
        #expect(found.count == 1 && found[0].path == issue.path && found[0].message.contains(issue.fragment),
                "got \(found)")
    }

    @Test func parse_manyBadFields_reportsThemAllInOrder() {
        let yaml = """
            kind: job
            name: ''
            checkpoint: [a]
            data: {}
            budgets: [0]
            candidates: {frames: [3], sizez: [64]}
            views: 1x2
            head: 5
            standard: {frames: 8}
            workers: 0
            priority: high
            """
        let paths = Self.issues(yaml).map(\.path)
        #expect(paths == [
            "kind", "name", "checkpoint", "data.eval", "budgets", "candidates.sizez", "candidates.frames", "views",
            "head", "standard.size", "workers", "priority",
        ])
    }

    @Test func parse_unknownKey_suggestsTheNearestKnownOne() {
        let found = Self.issues(Self.minimal(adding: "candidate: {frames: [4]}\nveiws: 1x3\nstandard: {frame: 8, size: 64}"))
        #expect(found.map(\.description) == [
            "candidate: unknown key; did you mean 'candidates'?",
            "veiws: unknown key; did you mean 'views'?",
            "standard.frame: unknown key; did you mean 'frames'?",
            "standard.frames: required but missing",
        ])
    }

    @Test func parse_notAMapping_throwsMalformed() {
        for text in ["- a\n- b\n", "just text", "key: [unclosed"] {
            let error = #expect(throws: SpecError.self) { try SweepSpec.parse(yaml: text, source: "'bad.yaml'") }
            guard case let .malformed(source, _) = error else {
                Issue.record("expected .malformed for \(text), got \(String(describing: error))")
                continue
            }
            #expect(source == "'bad.yaml'")
        }
    }

    @Test func load_missingFile_throwsUnreadableNamingThePath() {
        let error = #expect(throws: SpecError.self) { try SweepSpec.load(path: "/nowhere/sweep.yaml") }
        guard case let .unreadable(path, _) = error else {
            Issue.record("expected .unreadable, got \(String(describing: error))")
            return
        }
        #expect(path == "/nowhere/sweep.yaml")
    }

    @Test(arguments: [
        (minimal, true),
        ("kind: sweep", true),
        ("kind: 'sweep'\nname: x", true),
        ("kind: job", false),
        ("kind: [sweep]", false),
        ("name: quickstart\nmodel: fluxvit-small", false),
        ("- kind: sweep", false),
        ("kind: [unclosed", false),
        ("", false),
    ])
    func isSweep_text_tellsBySweepKind(_ yaml: String, _ expected: Bool) {
        #expect(SweepSpec.isSweep(yaml: yaml) == expected)
    }

    @Test func isSweep_trainingJobExample_isFalse() throws {
        let text = try String(
            contentsOf: Self.repository.appendingPathComponent("configs/jobs/quickstart.yaml"), encoding: .utf8)
        #expect(!SweepSpec.isSweep(yaml: text))
    }

    // MARK: Canonical YAML

    @Test(arguments: [
        full,
        minimal,
        minimal(replacing: "checkpoint: /ckpt/step-000000060", with: "checkpoint: {job: j-000001}"),
        minimal(adding: "candidates: {sizes: [48]}\nviews: {clips: 3}\nhead: 0"),
        minimal(replacing: "name: s", with: "name: '123'"),
    ])
    func canonicalYAML_parsedBack_givesAnEqualSpec(_ yaml: String) throws {
        let spec = try SweepSpec.parse(yaml: yaml, baseDirectory: Self.sweepsFolder)
        let again = try SweepSpec.parse(yaml: spec.canonicalYAML)
        #expect(again == spec, "\(spec.canonicalYAML)")
        #expect(again.canonicalYAML == spec.canonicalYAML)
    }

    @Test func canonicalYAML_examples_areSelfContained() throws {
        for file in ["quickstart.yaml", "fluxvit-small.yaml"] {
            let spec = try SweepSpec.load(path: Self.sweepsFolder.appendingPathComponent(file).path)
            // Parsed without a base directory and from elsewhere: every path is already absolute.
            #expect(try SweepSpec.parse(yaml: spec.canonicalYAML, source: file) == spec)
            #expect(SweepSpec.isSweep(yaml: spec.canonicalYAML))
        }
    }

    // MARK: Example files

    @Test func load_quickstartExample_readsItsGridAndExpands() throws {
        let spec = try SweepSpec.load(path: Self.sweepsFolder.appendingPathComponent("quickstart.yaml").path)
        let root = Self.repository.standardizedFileURL.path
        #expect(spec.checkpoint == .job("j-000001"))
        #expect(spec.data.eval == "\(root)/runs/data/motion/val.csv")
        #expect(spec.budgets == [32, 48, 64, 96, 128])
        #expect(spec.candidates == SweepSpec.Candidates(frames: [2, 4, 6, 8, 12, 16], sizes: [32, 48, 64, 80]))
        #expect(spec.standard == SweepSpec.Candidate(frames: 8, size: 64))

        let cells = try spec.cells(model: Self.model("tiny-motion.yaml"))
        // 6 × 4 candidates, the standard 8×64 among them, at each of 5 budgets.
        #expect(cells.count == 5 * 24)
        #expect(cells.filter(\.isStandard).map(\.budget) == [32, 48, 64, 96, 128])
        #expect(cells.allSatisfy { $0.keptTokens <= $0.budget })
    }

    @Test func load_fluxViTSmallExample_readsTheSpecGrid() throws {
        let spec = try SweepSpec.load(path: Self.sweepsFolder.appendingPathComponent("fluxvit-small.yaml").path)
        #expect(spec.budgets == [512, 1024, 2048, 3072])
        #expect(spec.candidates == SweepSpec.Candidates(frames: Array(stride(from: 4, through: 24, by: 2)),
                                                        sizes: [168, 196, 224, 252]))
        #expect(spec.views == SweepSpec.Views(clips: 4, crops: 3))
        #expect(spec.standard == SweepSpec.Candidate(frames: 8, size: 224))

        let cells = try spec.cells(model: Self.model("fluxvit-small.yaml"))
        #expect(cells.count == 4 * 44)
        #expect(cells.filter(\.isStandard).map(\.candidate.label) == Array(repeating: "8×224", count: 4))
    }

    // MARK: Expansion

    @Test func defaultCandidates_fromTheModelsSampling_followTheDocumentedRule() throws {
        var s224 = try FluxViTConfig.preset("fluxvit-small")
        (s224.numFrames, s224.imgSize) = (8, 224)
        #expect(SweepSpec.defaultCandidates(model: s224)
            == SweepSpec.Candidates(frames: [4, 6, 8, 12, 16], sizes: [168, 196, 224, 252]))
        #expect(SweepSpec.defaultCandidates(model: try Self.model("tiny-motion.yaml"))
            == SweepSpec.Candidates(frames: [4, 6, 8, 12, 16], sizes: [48, 64]))
        // The preset itself (a 24×252 position table) defaults to the official test sampling 8×224 and its grid.
        let preset = try FluxViTConfig.preset("fluxvit-small")
        #expect(SweepSpec.defaultStandard(model: preset) == SweepSpec.Candidate(frames: 8, size: 224))
        #expect(SweepSpec.defaultCandidates(model: preset)
            == SweepSpec.Candidates(frames: [4, 6, 8, 12, 16], sizes: [168, 196, 224, 252]))
        // tiny-test: 4 frames of 8² in 4² patches.
        #expect(SweepSpec.defaultCandidates(model: try Self.model("tiny-test.yaml"))
            == SweepSpec.Candidates(frames: [2, 4, 6, 8], sizes: [4, 8]))
    }

    @Test func cells_noGridGiven_expandTheModelsDefaultsAndStandard() throws {
        let model = try Self.model("tiny-motion.yaml")
        let spec = try SweepSpec.parse(yaml: Self.minimal(adding: "candidates: {frames: [4, 8]}"))
        let cells = try spec.cells(model: model)
        #expect(cells.map(\.candidate.label) == ["4×48", "4×64", "8×48", "8×64"])
        #expect(cells.map(\.isStandard) == [false, false, false, true])
    }

    /// Budgets given out of order, a grid without the standard sampling, a frame count of 6 (two groups of 3).
    static let expansion = """
        kind: sweep
        name: order
        checkpoint: /ckpt
        data: {eval: /val.csv}
        budgets: [96, 32]
        candidates: {frames: [2, 6, 8], sizes: [32, 64]}
        standard: {frames: 4, size: 48}
        views: 2x3

        """

    @Test func cells_twoBudgets_areOrderedByBudgetThenFramesThenSize() throws {
        let cells = try SweepSpec.parse(yaml: Self.expansion).cells(model: Self.model("tiny-motion.yaml"))
        let perBudget = ["2×32", "2×64", "4×48", "6×32", "6×64", "8×32", "8×64"]
        #expect(cells.map(\.candidate.label) == perBudget + perBudget)
        #expect(cells.map(\.budget) == Array(repeating: 32, count: 7) + Array(repeating: 96, count: 7))
        #expect(cells.map(\.index) == Array(0..<14))
        #expect(cells.filter(\.isStandard).map(\.index) == [2, 9])
        // tiny-motion: 16 tokens a frame at 64², 4 at 32², 9 at 48²; training budgets 128, 96, 64.
        #expect(cells.map(\.sampledTokens) == [8, 32, 36, 24, 96, 32, 128, 8, 32, 36, 24, 96, 32, 128])
        // 6×64 at 32 keeps 2 × 15: k = int((1 − r)·48) rounds 16 down in floating point, as the forward does.
        #expect(cells.map(\.keptTokens) == [8, 32, 32, 24, 30, 32, 32, 8, 32, 36, 24, 96, 32, 96])
        #expect(cells.map(\.head) == [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 1])
    }

    @Test func cells_keptTokensAndHead_equalWhatTheForwardPassKeeps() throws {
        let config = try Self.model("tiny-motion.yaml")
        let model = try FluxViTModel(config: config)
        let spec = try SweepSpec.parse(yaml: Self.expansion)
        // Budgets where k = int((1 − r)·T/G·L) rounds below budget/G in floating point: 4×48 (two groups of 18
        // tokens) at budget 12 keeps 2 × 5, not 12.
        var rounding = spec
        rounding.budgets = [6, 12]
        rounding.candidates.sizes = [32, 48, 64]
        let roundingCells = try rounding.cells(model: config)
        #expect(roundingCells.first { $0.budget == 12 && $0.candidate.label == "4×48" }?.keptTokens == 10)
        for cell in try spec.cells(model: config) + roundingCells {
            let setting = spec.viewSetting(for: cell)
            let clip = Tensor(shape: [1, 3, setting.frames, setting.size, setting.size])
            let output = try model.forward(video: clip, budget: setting.budget, head: nil)
            #expect(output.sampledTokens == cell.sampledTokens, "\(cell)")
            #expect(output.keptTokens == cell.keptTokens, "\(cell)")
            #expect(output.head == cell.head, "\(cell)")
        }
    }

    @Test func cells_headFixed_usesThatHeadEverywhere() throws {
        let spec = try SweepSpec.parse(yaml: Self.expansion + "head: 0\n")
        #expect(try spec.cells(model: Self.model("tiny-motion.yaml")).allSatisfy { $0.head == 0 })
    }

    @Test func cells_fluxViTSmall_matchOfficialGMACsAtTheFourBudgets() throws {
        let model = try FluxViTConfig.preset("fluxvit-small")
        let spec = try SweepSpec.parse(yaml: """
            kind: sweep
            name: small
            checkpoint: /ckpt
            data: {eval: /val.csv}
            budgets: [3072, 2048, 1024, 512]
            candidates: {frames: [2, 4, 8, 12], sizes: [224]}
            selection: none
            standard: {frames: 8, size: 224}
            """)
        let cells = try spec.cells(model: model)
        // Spec §7: the official table's column (unmasked 12, 8, 4 and 2 frames of 224², 16×16 patches).
        for (budget, official) in [(3072, 154.0), (2048, 83.0), (1024, 32.0), (512, 13.0)] {
            let cell = try #require(cells.first { $0.budget == budget && $0.keptTokens == budget })
            #expect(abs(cell.gmacs - official) / official < 0.05, "\(budget) tokens: \(cell.gmacs) GMACs")
        }
        // Selection none: a budget holds only the candidates that fit it.
        #expect(cells.filter { $0.budget == 512 }.map(\.candidate.label) == ["2×224"])
        #expect(cells.allSatisfy { !$0.selects && $0.keptTokens == $0.sampledTokens })
    }

    @Test func cells_selectionNoneBudgetNoCandidateFits_namesTheBudgetAndTheSmallest() throws {
        let yaml = Self.expansion.replacingOccurrences(of: "budgets: [96, 32]", with: "budgets: [4, 128]")
            + "selection: none\n"
        let found = try Self.cellIssues(yaml, model: Self.model("tiny-motion.yaml"))
        #expect(found.map(\.path) == ["budgets"])
        #expect(found.first?.message.contains("no candidate fits budget 4: the smallest, 2×32, has 8 tokens") == true,
                "\(found)")
    }

    @Test func cells_selectionNoneCandidateFitsNoBudget_namesIt() throws {
        let yaml = Self.expansion.replacingOccurrences(of: "budgets: [96, 32]", with: "budgets: [32, 64]")
            + "selection: none\n"
        let found = try Self.cellIssues(yaml, model: Self.model("tiny-motion.yaml"))
        #expect(found.map(\.path) == ["candidates"])
        #expect(found.first?.message.contains("no budget takes 6×64 (96 tokens), 8×64 (128 tokens)") == true,
                "\(found)")
        #expect(found.first?.message.contains("use selection: group") == true)
    }

    @Test func cells_selectionNoneStandardTooLarge_isAbsentAtThatBudget() throws {
        let yaml = Self.expansion.replacingOccurrences(of: "budgets: [96, 32]", with: "budgets: [32, 128]")
            .replacingOccurrences(of: "standard: {frames: 4, size: 48}", with: "standard: {frames: 4, size: 64}")
            + "selection: none\n"
        let cells = try SweepSpec.parse(yaml: yaml).cells(model: Self.model("tiny-motion.yaml"))
        #expect(cells.filter(\.isStandard).map(\.budget) == [128])
        #expect(cells.filter { $0.budget == 32 }.map(\.candidate.label) == ["2×32", "2×64", "6×32", "8×32"])
    }

    @Test func cells_sizesNotMultiplesOfThePatch_reportEveryOneAtOnce() throws {
        let yaml = Self.expansion
            .replacingOccurrences(of: "sizes: [32, 64]", with: "sizes: [30, 64, 70]")
            .replacingOccurrences(of: "size: 48}", with: "size: 50}")
        let found = try Self.cellIssues(yaml, model: Self.model("tiny-motion.yaml"))
        #expect(found.map(\.description) == [
            "candidates.sizes: each must be a multiple of the model's patch_size 16, got 30, 70; e.g. 16 or 32",
            "standard.size: must be a multiple of the model's patch_size 16, got 50; e.g. 48 or 64",
        ])
    }

    @Test func cells_defaultStandardWithOddFrames_saysItCameFromTheModel() throws {
        var model = try Self.model("tiny-motion.yaml")
        model.numFrames = 5
        let found = try Self.cellIssues(Self.minimal, model: model)
        #expect(found.map(\.path) == ["standard.frames"])
        #expect(found.first?.message.contains("no standard given, so the model's num_frames × img_size, 5×64") == true,
                "\(found)")
    }

    @Test func cells_groupBudgetBelowTheGroupCount_isAnIssue() throws {
        let yaml = Self.expansion.replacingOccurrences(of: "budgets: [96, 32]", with: "budgets: [3, 32]")
        let found = try Self.cellIssues(yaml, model: Self.model("tiny-motion.yaml"))
        #expect(found.map(\.path) == ["budgets"])
        #expect(found.first?.message.contains("budget 3 leaves group selection no token to keep of 8×32, 8×64") == true,
                "\(found)")
    }

    @Test func cells_specBuiltByHand_checksWhatParseWouldHave() throws {
        var spec = try SweepSpec.parse(yaml: Self.expansion)
        spec.budgets = []
        spec.candidates.frames = [3]
        spec.head = .fixed(3)
        spec.views = SweepSpec.Views(clips: 1, crops: 2)
        let error = #expect(throws: SpecError.self) { try spec.cells(model: Self.model("tiny-motion.yaml")) }
        guard case let .invalid(_, issues) = error else {
            Issue.record("expected .invalid, got \(String(describing: error))")
            return
        }
        #expect(issues.map(\.path) == ["budgets", "candidates.frames", "head", "views"])
    }

    @Test func viewSetting_cell_carriesSamplingBudgetWhenSelectingHeadAndViews() throws {
        let spec = try SweepSpec.parse(yaml: Self.expansion)
        let cells = try spec.cells(model: Self.model("tiny-motion.yaml"))
        let selecting = try #require(cells.first { $0.budget == 32 && $0.candidate.label == "8×64" })
        #expect(spec.viewSetting(for: selecting)
            == ViewSetting(frames: 8, size: 64, budget: 32, head: 2, clips: 2, crops: 3))
        let whole = try #require(cells.first { $0.budget == 96 && $0.candidate.label == "6×64" })
        #expect(spec.viewSetting(for: whole)
            == ViewSetting(frames: 6, size: 64, budget: nil, head: 1, clips: 2, crops: 3))
    }
}
