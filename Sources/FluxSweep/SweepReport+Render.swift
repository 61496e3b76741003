import Foundation

/// The forms a report renders to.
public enum ReportFormat: String, CaseIterable, Sendable {
    /// Aligned columns for a terminal.
    case table
    /// One row per finished cell, RFC 4180 quoting.
    case csv
    /// The whole report, pretty-printed with sorted snake_case keys; decodes back to an equal report.
    case json
    /// GitHub-flavoured Markdown: heading, tables, unreadable videos, summary.
    case markdown
}

extension SweepReport {
    /// The report as text in `format`.
    public func render(_ format: ReportFormat) -> String {
        switch format {
        case .table: renderTable()
        case .csv: renderCSV()
        case .json: renderJSON()
        case .markdown: renderMarkdown()
        }
    }

    /// The footnote every human-readable form carries (spec §7 asks the unit to be stated).
    public static let gmacsFootnote =
        "GFLOPs are reported as the official tables do: billions of multiply-accumulates (GMACs), per view."

    /// Unreadable videos listed one by one; the rest are counted.
    static let unreadableListLimit = 20

    /// The CSV columns, in order.
    public static let csvColumns = [
        "index", "budget", "frames", "size", "sampled_tokens", "kept_tokens", "head", "gmacs", "views", "standard",
        "best", "top1", "top5", "videos", "unreadable", "choose_top1", "choose_top5",
    ]

    // MARK: - What every form shares

    /// Indices of each budget's best cell.
    var bestIndices: Set<Int> { Set(perBudget.compactMap { $0.best?.cell.index }) }

    /// Whether any finished cell has choose_on metrics (the grid then shows them).
    var hasChooseOn: Bool { grid.contains { $0.chooseOn != nil } }

    /// `s` for the standard, `*` for the best, both when TO picks the standard.
    func mark(_ result: CellResult) -> String {
        (result.cell.isStandard ? "s" : "") + (bestIndices.contains(result.cell.index) ? "*" : "")
    }

    var headerLines: [String] {
        [
            "model: \(model) · checkpoint: \(checkpoint)" + (job.map { " · job: \($0)" } ?? ""),
            "selection: \(selection) · views: \(views) · standard: \(standard.label) · best chosen on: \(chosenOn)"
                + " · cells: \(cellsDone) of \(cellsTotal) done",
        ]
    }

    /// The per-budget columns: title, right-aligned, value.
    var budgetColumns: [(title: String, right: Bool, value: (BudgetSummary) -> String)] {
        let sampling = { (s: BudgetSummary, r: CellResult?) -> String in
            r?.cell.candidate.label ?? (s.pending > 0 ? "pending" : "—")
        }
        var columns: [(title: String, right: Bool, value: (BudgetSummary) -> String)] = [
            ("budget", true, { String($0.budget) }),
            ("done", true, { "\($0.cells - $0.pending)/\($0.cells)" }),
            ("standard", false, { sampling($0, $0.standard) }),
            ("kept", true, { $0.standard.map { String($0.cell.keptTokens) } ?? "" }),
            ("top-1", true, { $0.standard.map { Format.percent($0.eval.top1) } ?? "" }),
            ("top-5", true, { $0.standard.map { Format.percent($0.eval.top5) } ?? "" }),
            ("GMACs", true, { $0.standard.map { Format.gmacs($0.cell.gmacs) } ?? "" }),
            ("TO best", false, { sampling($0, $0.best) }),
            ("kept", true, { $0.best.map { String($0.cell.keptTokens) } ?? "" }),
            ("top-1", true, { $0.best.map { Format.percent($0.eval.top1) } ?? "" }),
            ("top-5", true, { $0.best.map { Format.percent($0.eval.top5) } ?? "" }),
            ("GMACs", true, { $0.best.map { Format.gmacs($0.cell.gmacs) } ?? "" }),
        ]
        if chosenOn == Self.chooseOnBasis {
            columns.append(("choose_on top-1", true, { $0.best?.chooseOn.map { Format.percent($0.top1) } ?? "" }))
        }
        columns.append(("gain", true, { $0.gain.map(Format.signedPoints) ?? "" }))
        return columns
    }

    /// The grid columns: title, right-aligned, value.
    var gridColumns: [(title: String, right: Bool, value: (CellResult) -> String)] {
        var columns: [(title: String, right: Bool, value: (CellResult) -> String)] = [
            ("", false, { mark($0) }),
            ("budget", true, { String($0.cell.budget) }),
            ("sampling", false, { $0.cell.candidate.label }),
            ("tokens", true, { "\($0.cell.sampledTokens)→\($0.cell.keptTokens)" }),
            ("head", true, { String($0.cell.head) }),
            ("top-1", true, { Format.percent($0.eval.top1) }),
            ("top-5", true, { Format.percent($0.eval.top5) }),
            ("GMACs", true, { Format.gmacs($0.cell.gmacs) }),
        ]
        if hasChooseOn {
            columns.append(("choose_on top-1", true, { $0.chooseOn.map { Format.percent($0.top1) } ?? "" }))
            columns.append(("choose_on top-5", true, { $0.chooseOn.map { Format.percent($0.top5) } ?? "" }))
        }
        return columns
    }

    var legendLine: String {
        "s: the standard sampling · *: the TO best (chosen on \(chosenOn)) · accuracies in percent on eval"
            + " · gain in points"
    }

    var unreadableLines: [String] {
        let listed = unreadable.prefix(Self.unreadableListLimit).map { "\($0.path):\($0.line) \($0.reason)" }
        let rest = unreadable.count - listed.count
        return listed + (rest > 0 ? ["and \(rest) more"] : [])
    }

    // MARK: - table

    private func renderTable() -> String {
        var lines = ["Token Optimization sweep \(name)"] + headerLines + [""]
        let budgetTable = TextTable(
            columns: budgetColumns.map { ($0.title, $0.right) }, groupStarts: [2, 7, budgetColumns.count - 1],
            rows: perBudget.map { s in budgetColumns.map { $0.value(s) } })
        lines += ["Per budget"] + budgetTable.lines() + [""]

        let gridTable = TextTable(
            columns: gridColumns.map { ($0.title, $0.right) }, groupStarts: [],
            rows: grid.map { r in gridColumns.map { $0.value(r) } })
        let pending = cellsTotal - cellsDone
        lines += ["Grid (\(cellsDone) cells" + (pending > 0 ? ", \(pending) pending)" : ")")] + gridTable.lines()
        lines += [legendLine, ""]

        if !unreadable.isEmpty {
            lines += ["Unreadable videos: \(unreadable.count) (not counted in the accuracies)"]
            lines += unreadableLines.map { "  " + $0 }
            lines += [""]
        }
        lines += notes.map { "Note: \($0)." }
        lines += [summary, "", Self.gmacsFootnote]
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: - csv

    private func renderCSV() -> String {
        let best = bestIndices
        var lines = [Self.csvColumns.joined(separator: ",")]
        for r in grid {
            let c = r.cell
            let fields: [String] = [
                String(c.index), String(c.budget), String(c.candidate.frames), String(c.candidate.size),
                String(c.sampledTokens), String(c.keptTokens), String(c.head), "\(c.gmacs)", views,
                String(c.isStandard), String(best.contains(c.index)), "\(r.eval.top1)", "\(r.eval.top5)",
                String(r.eval.videos), String(r.eval.unreadable), r.chooseOn.map { "\($0.top1)" } ?? "",
                r.chooseOn.map { "\($0.top5)" } ?? "",
            ]
            lines.append(fields.map(Format.csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: - json

    private func renderJSON() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // A NaN accuracy (a corrupt stored result) must not make the report unwritable.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
        } catch {
            preconditionFailure("a report of strings and numbers failed to encode: \(error)")
        }
    }

    /// Decodes a report written by `render(.json)`.
    public static func decode(json: Data) throws(DecodingError) -> SweepReport {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(SweepReport.self, from: json)
        } catch let error as DecodingError {
            throw error
        } catch {
            preconditionFailure("JSONDecoder threw a non-DecodingError: \(error)")
        }
    }

    // MARK: - markdown

    private func renderMarkdown() -> String {
        var lines = ["## \(name)", ""] + headerLines.map { $0 + "  " } + [""]
        lines += ["### Per budget", ""]
        lines += Format.markdownTable(
            columns: budgetColumns.map { ($0.title, $0.right) },
            rows: perBudget.map { s in budgetColumns.map { $0.value(s) } })
        let pending = cellsTotal - cellsDone
        lines += ["", "### Grid (\(cellsDone) cells" + (pending > 0 ? ", \(pending) pending)" : ")"), ""]
        lines += Format.markdownTable(
            columns: gridColumns.map { ($0.title, $0.right) },
            rows: grid.map { r in gridColumns.map { $0.value(r) } })
        lines += ["", legendLine.replacingOccurrences(of: "*", with: "\\*")]
        if !unreadable.isEmpty {
            lines += ["", "### Unreadable videos: \(unreadable.count)", ""]
            lines += unreadable.prefix(Self.unreadableListLimit).map {
                "- `\($0.path)`:\($0.line) \(Format.markdownText($0.reason))"
            }
            if unreadable.count > Self.unreadableListLimit {
                lines.append("- and \(unreadable.count - Self.unreadableListLimit) more")
            }
        }
        for note in notes { lines += ["", "> Note: \(Format.markdownText(note))."] }
        lines += ["", "**Summary.** \(Format.markdownText(summary))", "", "_\(Self.gmacsFootnote)_"]
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Plain-text columns: headers, a rule, rows; `│` before each group's first column.
struct TextTable {
    var columns: [(title: String, right: Bool)]
    var groupStarts: Set<Int>
    var rows: [[String]]

    func lines() -> [String] {
        let widths = columns.indices.map { i in ([columns[i].title] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (i, cell) in cells.enumerated() {
                if i > 0 { text += groupStarts.contains(i) ? " │ " : "  " }
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                text += columns[i].right ? pad + cell : cell + pad
            }
            return String(text.reversed().drop { $0 == " " }.reversed())
        }
        var rule = ""
        for i in columns.indices {
            if i > 0 { rule += groupStarts.contains(i) ? "─┼─" : "──" }
            rule += String(repeating: "─", count: widths[i])
        }
        return [line(columns.map(\.title)), rule] + rows.map(line)
    }
}

/// Number and text formats shared by the renderers and the plot.
enum Format {
    /// A fraction as a percentage with one decimal: `73.4`.
    static func percent(_ fraction: Double) -> String { String(format: "%.1f", fraction * 100) }

    /// A difference of fractions in points with a sign: `+3.1`, `-0.4`, `+0.0`.
    static func signedPoints(_ fraction: Double) -> String {
        let text = String(format: "%+.1f", fraction * 100)
        return text == "-0.0" ? "+0.0" : text
    }

    /// GMACs readable at any scale: one decimal from 10 up (`154.3`), two from 1 (`3.21`), and three significant
    /// digits below 1, because tiny test models cost thousandths (`0.00213`).
    static func gmacs(_ value: Double) -> String {
        guard value.isFinite, value > 0 else { return value == 0 ? "0" : "\(value)" }
        if value >= 10 { return String(format: "%.1f", value) }
        if value >= 1 { return String(format: "%.2f", value) }
        let decimals = 2 - Int(log10(value).rounded(.down))
        return String(format: "%.\(decimals)f", value)
    }

    /// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Text safe inside a Markdown table cell or paragraph: pipes escaped, line breaks flattened.
    static func markdownText(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// A GitHub table.
    static func markdownTable(columns: [(title: String, right: Bool)], rows: [[String]]) -> [String] {
        let row = { (cells: [String]) in "| " + cells.map(markdownCell).joined(separator: " | ") + " |" }
        let rule = "|" + columns.map { $0.right ? "---:|" : ":---|" }.joined()
        return [row(columns.map(\.title)), rule] + rows.map(row)
    }

    private static func markdownCell(_ text: String) -> String {
        markdownText(text).replacingOccurrences(of: "*", with: "\\*")
    }
}
