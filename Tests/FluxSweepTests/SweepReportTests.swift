import FluxJobs
import FluxTraining
import Foundation
import Testing

@testable import FluxSweep

@Suite struct SweepReportTests {
    typealias F = SweepFixture

    // MARK: - Choosing the best

    @Test func best_evalOnly_picksHighestTop1PerBudgetWithGain() throws {
        let cells = F.cells()
        let report = F.report(cells: cells, results: F.results(cells, top1: F.plausibleTop1))
        #expect(report.chosenOn == "eval")
        #expect(report.perBudget.map(\.budget) == [512, 1024, 2048])
        #expect(report.perBudget.map { $0.best?.cell.candidate.label } == ["6×224", "8×168", "6×224"])
        #expect(report.perBudget.map { $0.standard?.cell.candidate.label } == ["8×224", "8×224", "8×224"])
        let gains = report.perBudget.map { $0.gain ?? .nan }
        for (gain, expected) in zip(gains, [0.031, 0.012, 0.004]) { #expect(abs(gain - expected) < 1e-9) }
        #expect(report.perBudget.map(\.pending) == [0, 0, 0])
        #expect(report.cellsDone == 12 && report.cellsTotal == 12)
        #expect(report.notes.isEmpty)
    }

    @Test func best_everyCellHasChooseOn_picksOnChooseOnAndReportsEvalGain() throws {
        let cells = F.cells()
        // choose_on prefers 8×168 everywhere; on eval that pick is below the standard at 2048.
        let results = F.results(
            cells, top1: F.plausibleTop1,
            chooseOn: { $0.candidate.frames == 8 && $0.candidate.size == 168 ? 0.9 : 0.5 })
        let report = F.report(cells: cells, results: results, chosenOn: "choose_on")
        #expect(report.chosenOn == "choose_on")
        #expect(report.perBudget.allSatisfy { $0.best?.cell.candidate.label == "8×168" })
        let last = try #require(report.perBudget.last?.gain)
        #expect(abs(last - -0.01) < 1e-9)
        #expect(report.summary.contains("below at 2048: -1.0 points, chosen on choose_on"))
        #expect(
            report.summary.contains(
                "TO beats the standard 8×224 at 2 of 3 budgets (512: +1.2 points, 1024: +1.2 points)"))
    }

    @Test func best_chooseOnMissingForOneCell_fallsBackToEvalWithNote() throws {
        let cells = F.cells()
        var results = F.results(cells, top1: F.plausibleTop1, chooseOn: { _ in 0.5 })
        results[3].chooseOn = nil
        let report = F.report(cells: cells, results: results, chosenOn: "choose_on")
        #expect(report.chosenOn == "eval")
        #expect(report.notes == ["best chosen on eval: 1 of 12 finished cells lack choose_on metrics"])
        #expect(report.perBudget.first?.best?.cell.candidate.label == "6×224")
    }

    @Test func best_top1Tie_prefersTop5ThenFewerGMACsThenLowerIndex() throws {
        let cells = F.cells(budgets: [512])
        // All four tie on top-1; 6×224 has the highest top-5.
        let top5s = ["6×168": 0.8, "6×224": 0.9, "8×168": 0.85, "8×224": 0.85]
        let top5: (SweepCell) -> Double = { top5s[$0.candidate.label]! }
        let byTop5 = F.report(cells: cells, results: F.results(cells, top1: { _ in 0.7 }, top5: top5), budgets: [512])
        #expect(byTop5.perBudget[0].best?.cell.candidate.label == "6×224")

        // Same top-1 and top-5 and the same GMACs: the lower index wins.
        var equalCost = cells
        for i in equalCost.indices { equalCost[i].gmacs = 1.5 }
        let byIndex = F.report(
            cells: equalCost, results: Array(F.results(equalCost, top1: { _ in 0.7 }, top5: { _ in 0.9 }).reversed()),
            budgets: [512])
        #expect(byIndex.perBudget[0].best?.cell.index == 0)

        // Same top-1 and top-5, different GMACs: the cheapest (6×168, fewest tokens) wins.
        let byCost = F.report(
            cells: cells, results: F.results(cells, top1: { _ in 0.7 }, top5: { _ in 0.9 }), budgets: [512])
        #expect(byCost.perBudget[0].best?.cell.candidate.label == "6×168")
        #expect(byCost.perBudget[0].gain == 0)
        #expect(byCost.summary.hasPrefix("TO does not beat the standard 8×224 at any of 1 budget; ties at 512."))
    }

    // MARK: - Missing and pending cells

    @Test func standard_notInGrid_isNilWithoutGainAndSummaryExplains() throws {
        // selection: none drops candidates over the budget: 8×224 (2048 tokens) exists only at 2048.
        let budgets = [1024, 1536, 2048]
        let cells = F.cells(budgets: budgets, selection: false)
        let report = F.report(cells: cells, results: F.results(cells, top1: F.plausibleTop1), budgets: budgets)
        #expect(report.perBudget[0].standard == nil && report.perBudget[0].gain == nil)
        #expect(report.perBudget[0].best?.cell.candidate.label == "6×168")
        #expect(report.perBudget[2].standard?.cell.candidate.label == "8×224")
        #expect(report.summary.contains("no comparison at 1024 (no standard cell), 1536 (no standard cell)"))
        #expect(report.render(.table).contains("—"))
    }

    @Test func partialSweep_countsPendingPerBudgetAndSaysPartial() throws {
        let cells = F.cells()
        // Done: all of 512, two of 1024 (not the standard), none of 2048.
        let done = cells.filter {
            $0.budget == 512 || ($0.budget == 1024 && !$0.isStandard && $0.candidate.frames == 6)
        }
        let report = F.report(cells: cells, results: F.results(done, top1: F.plausibleTop1))
        #expect(report.cellsDone == 6 && report.cellsTotal == 12)
        #expect(report.perBudget.map(\.pending) == [0, 2, 4])
        #expect(report.perBudget[1].standard == nil && report.perBudget[1].best != nil)
        #expect(report.perBudget[2].best == nil)
        #expect(report.summary.contains("no comparison at 1024 (standard pending), 2048 (no cell finished)"))
        #expect(report.summary.hasSuffix("Partial sweep: 6 of 12 cells done."))
        #expect(report.render(.table).contains("pending"))
    }

    @Test func partialSweep_unevenBudgets_usesCellsPerBudget() throws {
        let budgets = [1024, 1536, 2048]
        let cells = F.cells(budgets: budgets, selection: false)  // 1 + 3 + 4 cells
        let counts = Dictionary(grouping: cells, by: \.budget).mapValues(\.count)
        let report = F.report(
            cells: cells, results: F.results(Array(cells.prefix(2)), top1: F.plausibleTop1), budgets: budgets,
            cellsPerBudget: counts)
        #expect(report.perBudget.map(\.cells) == [1, 3, 4])
        #expect(report.perBudget.map(\.pending) == [0, 2, 4])
    }

    @Test func noResults_summarySaysNothingFinished() {
        let report = F.report(cells: F.cells(), results: [])
        #expect(report.summary == "No cells finished yet (0 of 12).")
        #expect(report.perBudget.map(\.pending) == [4, 4, 4])
        #expect(report.grid.isEmpty)
    }

    @Test func results_duplicatedAndShuffled_gridByIndexOnce() {
        let cells = F.cells()
        let results = F.results(cells, top1: F.plausibleTop1)
        let report = F.report(cells: cells, results: results.shuffled() + [results[0]])
        #expect(report.grid.map(\.cell.index) == Array(0..<12))
    }

    @Test func unreadable_repeatedByCells_listedOnce() {
        let bad = UnreadableVideo(index: 3, path: "val/x.mp4", line: 5, reason: "no video stream")
        let report = F.report(cells: F.cells(), results: [], unreadable: [bad, bad])
        #expect(report.unreadable == [bad])
    }

    @Test func summary_allAhead_namesEveryBudget() {
        let cells = F.cells()
        let report = F.report(cells: cells, results: F.results(cells, top1: F.plausibleTop1))
        #expect(
            report.summary
                == "TO beats the standard 8×224 at 3 of 3 budgets "
                + "(512: +3.1 points, 1024: +1.2 points, 2048: +0.4 points).")
    }

    @Test func summary_standardIsBest_saysTie() {
        let cells = F.cells(budgets: [512, 1024])
        let top1: (SweepCell) -> Double = { $0.isStandard ? 0.8 : $0.budget == 512 ? 0.75 : 0.7 }
        let report = F.report(cells: cells, results: F.results(cells, top1: top1), budgets: [512, 1024])
        #expect(
            report.summary
                == "TO does not beat the standard 8×224 at any of 2 budgets; "
                + "ties at 512, 1024 (the standard is the best).")
    }

    // MARK: - Formats

    @Test func csv_parsedBack_hasHeaderOneRowPerCellAndValues() throws {
        let cells = F.cells()
        var report = F.report(
            cells: cells, results: F.results(cells, top1: F.plausibleTop1, chooseOn: { _ in 0.5 }),
            chosenOn: "choose_on")
        report.views = "1×3, \"centre\""  // exercises quoting
        let rows = try parseCSV(report.render(.csv))
        #expect(rows.first == SweepReport.csvColumns)
        #expect(rows.count == 13)
        #expect(rows.allSatisfy { $0.count == 17 })
        let column = { (name: String) in SweepReport.csvColumns.firstIndex(of: name)! }
        let standard512 = try #require(rows.first { $0[column("budget")] == "512" && $0[column("standard")] == "true" })
        #expect(standard512[column("frames")] == "8" && standard512[column("size")] == "224")
        #expect(standard512[column("sampled_tokens")] == "2048" && standard512[column("kept_tokens")] == "512")
        #expect(Double(standard512[column("top1")]) == 0.62)
        #expect(Double(standard512[column("gmacs")]) == cells[3].gmacs)
        #expect(standard512[column("views")] == "1×3, \"centre\"")
        #expect(standard512[column("choose_top1")] == "0.5")
        #expect(rows.dropFirst().filter { $0[column("best")] == "true" }.count == 3)
    }

    @Test func json_decodesToEqualReportWithSnakeCaseKeys() throws {
        let cells = F.cells()
        let results = F.results(cells, top1: F.plausibleTop1, chooseOn: { _ in 0.5 })
        let report = F.report(
            name: "a <&> \"b\"", cells: cells, results: Array(results.prefix(9)), chosenOn: "choose_on",
            unreadable: [UnreadableVideo(index: 1, path: "val/a b.mp4", line: 2, reason: "moov atom not found")])
        let json = report.render(.json)
        let decoded = try SweepReport.decode(json: Data(json.utf8))
        #expect(decoded == report)
        for key in ["\"sampled_tokens\"", "\"kept_tokens\"", "\"is_standard\"", "\"per_class\"", "\"choose_on\"",
                    "\"per_budget\"", "\"cells_total\"", "\"chosen_on\"", "\"label\" : \"8×224\""] {
            #expect(json.contains(key), "missing \(key)")
        }
        #expect(!json.contains("sampledTokens") && !json.contains("isStandard"))
        let topLevelKeys = json.split(separator: "\n").filter { $0.hasPrefix("  \"") }
            .map { $0.dropFirst(3).prefix { $0 != "\"" } }.map(String.init)
        #expect(topLevelKeys == topLevelKeys.sorted())
        #expect(topLevelKeys.count == 16)
    }

    @Test func markdown_hasHeadingAndOneTableRowPerBudgetAndCell() {
        let cells = F.cells()
        let report = F.report(
            cells: cells, results: F.results(cells, top1: F.plausibleTop1),
            unreadable: [UnreadableVideo(index: 1, path: "val/a.mp4", line: 2, reason: "bad | pipe")])
        let lines = report.render(.markdown).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "## to-k400-s")
        let tableLines = lines.filter { $0.hasPrefix("|") }
        // Two tables: header + rule + 3 budget rows, header + rule + 12 cells.
        #expect(tableLines.count == 2 + 3 + 2 + 12)
        let columns = { (line: String) in
            line.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count - 1
        }
        let budgetHeader = tableLines[0], gridHeader = tableLines[5]
        #expect(tableLines[0..<5].allSatisfy { columns($0) == columns(budgetHeader) })
        #expect(tableLines[5...].allSatisfy { columns($0) == columns(gridHeader) })
        #expect(lines.contains("- `val/a.mp4`:2 bad \\| pipe"))
        #expect(lines.contains { $0.hasPrefix("**Summary.** TO beats the standard 8×224") })
        #expect(lines.contains { $0.contains("s\\*") } == false)  // no cell is both standard and best here
        #expect(lines.contains { $0.hasPrefix("| \\* | 512 | 6×224 |") })
    }

    @Test func table_showsPercentagesGMACsGainMarksAndFootnote() {
        let cells = F.cells()
        let unreadable = (0..<25).map {
            UnreadableVideo(index: $0, path: "val/v\($0).mp4", line: $0 + 2, reason: "EOF")
        }
        let report = F.report(cells: cells, results: F.results(cells, top1: F.plausibleTop1), unreadable: unreadable)
        let table = report.render(.table)
        let lines = table.split(separator: "\n").map(String.init)
        #expect(table.contains("Token Optimization sweep to-k400-s"))
        let row512 = try! #require(lines.first { $0.hasPrefix("   512") })
        for piece in ["8×224", "62.0", "77.0", Format.gmacs(cells[3].gmacs), "6×224", "65.1", "80.1", "+3.1"] {
            #expect(row512.contains(piece), "512 row lacks \(piece): \(row512)")
        }
        #expect(lines.contains { $0.hasPrefix("s ") && $0.contains("8×224") })
        #expect(lines.contains { $0.hasPrefix("* ") && $0.contains("6×224") && $0.contains("1536→512") })
        #expect(table.contains("Unreadable videos: 25"))
        #expect(table.contains("  val/v0.mp4:2 EOF"))
        #expect(table.contains("  and 5 more"))
        #expect(table.contains(SweepReport.gmacsFootnote))
        #expect(table.contains(report.summary))
        // Columns line up: the per-budget rows end where the rule under the header ends (gain is right-aligned).
        let header = try! #require(lines.firstIndex { $0.hasPrefix("budget") })
        #expect(lines[header + 2...header + 4].allSatisfy { $0.count == lines[header + 1].count })
    }

    @Test(arguments: [
        (154.27, "154.3"), (83.41, "83.4"), (3.214, "3.21"), (0.5, "0.500"), (0.0021, "0.00210"),
        (0.012345, "0.0123"), (0, "0"),
    ])
    func gmacs_anyScale_keepsThreeSignificantDigitsBelowOne(value: Double, text: String) {
        #expect(Format.gmacs(value) == text)
    }

    @Test func writeArtifacts_newFolder_writesEveryForm() throws {
        let cells = F.cells()
        let report = F.report(cells: cells, results: F.results(cells, top1: F.plausibleTop1))
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("flux-report-\(UUID().uuidString)/nested")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        try report.writeArtifacts(to: folder)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(names == ["plot.svg", "report.csv", "report.json", "report.md", "report.txt"])
        let json = try Data(contentsOf: folder.appendingPathComponent("report.json"))
        #expect(try SweepReport.decode(json: json) == report)
        let text = try String(contentsOf: folder.appendingPathComponent("report.txt"), encoding: .utf8)
        #expect(text == report.render(.table))
    }
}

/// RFC 4180 parsing, enough to read our CSV back: quoted fields with doubled quotes, commas and line breaks.
func parseCSV(_ text: String) throws -> [[String]] {
    struct Malformed: Error {}
    var rows: [[String]] = [], row: [String] = [], field = ""
    var inQuotes = false, wasQuoted = false
    var chars = Array(text)[...]
    while let c = chars.popFirst() {
        if inQuotes {
            if c == "\"" {
                if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { inQuotes = false }
            } else { field.append(c) }
            continue
        }
        switch c {
        case "\"":
            guard field.isEmpty, !wasQuoted else { throw Malformed() }
            inQuotes = true
            wasQuoted = true
        case ",": row.append(field); field = ""; wasQuoted = false
        case "\n": row.append(field); rows.append(row); row = []; field = ""; wasQuoted = false
        default:
            guard !wasQuoted else { throw Malformed() }
            field.append(c)
        }
    }
    guard !inQuotes, field.isEmpty, row.isEmpty else { throw Malformed() }
    return rows
}
