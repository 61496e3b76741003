import FluxJobs
import FluxTraining
import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

@testable import FluxSweep

@Suite struct SweepPlotTests {
    typealias F = SweepFixture

    static let small = { () -> SweepReport in
        let cells = F.cells()
        return F.report(cells: cells, results: F.results(cells, top1: F.plausibleTop1))
    }()

    static let tiny = { () -> SweepReport in
        let cells = F.cells(gmacsPerToken: 0.000004)
        return F.report(cells: cells, results: F.results(cells, top1: F.plausibleTop1))
    }()

    @Test func svg_nameWithMarkup_isWellFormedAndEscaped() throws {
        let cells = F.cells()
        let report = F.report(name: "k400 <&> \"s\"", cells: cells, results: F.results(cells, top1: F.plausibleTop1))
        let svg = SweepPlot.svg(report)
        let document = try SVGDocument(svg)
        #expect(document.root == "svg")
        #expect(svg.contains("Token Optimization: k400 &lt;&amp;&gt; &quot;s&quot;"))
        #expect(document.texts.contains("Token Optimization: k400 <&> \"s\""))
        let titled = try SVGDocument(SweepPlot.svg(report, title: "a < b & c"))
        #expect(titled.texts.contains("a < b & c"))
    }

    @Test(arguments: [("FluxViT-S-like", false), ("tiny", true)])
    func svg_bothSeries_pointsMapBackToTheirValues(name: String, tiny: Bool) throws {
        let report = tiny ? Self.tiny : Self.small
        let document = try SVGDocument(SweepPlot.svg(report))
        let area = try #require(document.elements.first { $0.attributes["class"] == "plot-area" })
        let gmacs = report.grid.map(\.cell.gmacs)
        let isLog = gmacs.max()! / gmacs.min()! > 10
        #expect(area.attributes["data-x-scale"] == (isLog ? "log" : "linear"))
        let xAxis = try AxisReading(ticks: document.ticks("x-tick", coordinate: "x1"), log: isLog)
        let yAxis = try AxisReading(ticks: document.ticks("y-tick", coordinate: "y1"), log: false)
        #expect(xAxis.tickCount >= 3 && yAxis.tickCount >= 3)

        for (series, cells) in [
            ("standard", report.perBudget.compactMap(\.standard)), ("to", report.perBudget.compactMap(\.best)),
        ] {
            let points = document.points(series: series)
            #expect(points.count == 3, "\(series) has \(points.count) points")
            for result in cells {
                let point = try #require(points.first { $0.budget == result.cell.budget })
                #expect(abs(point.x - xAxis.pixel(result.cell.gmacs)) < 1, "\(series) \(result.cell.budget) x")
                #expect(abs(point.y - yAxis.pixel(result.eval.top1 * 100)) < 1, "\(series) \(result.cell.budget) y")
            }
            // The curve runs through the points in GMACs order.
            let curve = try #require(document.elements.first {
                $0.name == "polyline" && $0.attributes["data-series"] == series
            })
            let xs = curve.attributes["points"]!.split(separator: " ").map { Double($0.split(separator: ",")[0])! }
            #expect(xs == xs.sorted() && xs.count == 3)
        }
        // The rest of the grid: 12 cells less the 3 standard and 3 best cells.
        #expect(document.points(series: "grid").count == 6)
    }

    @Test(arguments: [false, true])
    func svg_labels_stayInsideThePlotAndDoNotOverlap(tiny: Bool) throws {
        let report = tiny ? Self.tiny : Self.small
        let document = try SVGDocument(SweepPlot.svg(report))
        let labels = document.elements.filter { $0.attributes["class"] == "label" }
        // Every point of both curves is labelled once (no cell here is both standard and best).
        #expect(labels.count == 6)
        #expect(labels.contains { $0.text == "6×224 · 512" })
        let boxes = Self.labelBoxes(labels)
        for (i, box) in boxes.enumerated() {
            #expect(Self.frame.contains(box), "label \(labels[i].text) leaves the plot")
            for other in boxes[(i + 1)...] { #expect(box.overlap(other) == 0, "labels overlap: \(labels[i].text)") }
        }
    }

    /// The quickstart sweep: both curves within 95.8–99.6%, the other candidates down to 52%. The accuracy axis
    /// follows the curves, the candidates below it sit on the bottom edge and are counted in the legend, and the
    /// nine labels keep clear of each other and of every curve marker.
    @Test func svg_curvesAboveTheRest_axisFollowsTheCurvesAndLabelsKeepClear() throws {
        let report = F.quickstartTO()
        let document = try SVGDocument(SweepPlot.svg(report))
        let area = try #require(document.elements.first { $0.attributes["class"] == "plot-area" })
        let low = try #require(Double(area.attributes["data-y-low"] ?? "")),
            high = try #require(Double(area.attributes["data-y-high"] ?? ""))
        #expect(low >= 90 && high <= 100 && low < high, "y axis \(low)–\(high)")
        let ticks = document.ticks("y-tick", coordinate: "y1")
        #expect(ticks.count >= 3 && ticks.allSatisfy { $0.value >= low && $0.value <= high })

        // Both curves whole, where their values say.
        let yAxis = try AxisReading(ticks: ticks, log: false)
        for (series, cells) in [
            ("standard", report.perBudget.compactMap(\.standard)), ("to", report.perBudget.compactMap(\.best)),
        ] {
            let points = document.points(series: series)
            #expect(points.count == 5, "\(series) has \(points.count) points")
            for result in cells {
                let point = try #require(points.first { $0.budget == result.cell.budget })
                #expect(abs(point.y - yAxis.pixel(result.eval.top1 * 100)) < 1, "\(series) \(result.cell.budget) y")
                #expect(point.y > SweepPlot.plotTop + 4 && point.y < SweepPlot.plotBottom - 4)
            }
        }

        // The other candidates: those below the axis on its bottom edge, marked, and counted in the legend.
        let onCurves = Set(report.perBudget.flatMap { [$0.standard, $0.best] }.compactMap { $0?.cell.index })
        let others = report.grid.filter { !onCurves.contains($0.cell.index) }
        let below = others.filter { $0.eval.top1 * 100 < low }.count
        #expect(below > 0 && below < others.count)
        let grid = document.elements.filter {
            $0.attributes["class"] == "point" && $0.attributes["data-series"] == "grid"
        }
        #expect(grid.count == others.count)
        #expect(grid.filter { $0.attributes["data-clipped"] == "below" }.count == below)
        #expect(grid.allSatisfy { $0.attributes["data-clipped"] != "above" })
        for point in document.points(series: "grid") {
            #expect(point.y <= SweepPlot.plotBottom && point.y >= SweepPlot.plotTop)
        }
        #expect(document.texts.contains("\(below) below \(Int(low))%"), "legend: \(document.texts)")

        // Labels: one per curve point (the standard cell TO picked at 128 once), clear of each other and of the
        // markers.
        let labels = document.elements.filter { $0.attributes["class"] == "label" }
        #expect(labels.count == 9)
        #expect(labels.contains { $0.text == "8×64 · 128 (standard)" })
        #expect(labels.contains { $0.text == "6×64 · 48" })
        let boxes = Self.labelBoxes(labels)
        let markers = (document.points(series: "standard") + document.points(series: "to")).map {
            SweepPlot.Rect(centerX: $0.x, centerY: $0.y, width: 12, height: 12)
        }
        for (i, box) in boxes.enumerated() {
            #expect(Self.frame.contains(box), "label \(labels[i].text) leaves the plot")
            for other in boxes[(i + 1)...] { #expect(box.overlap(other) == 0, "labels overlap: \(labels[i].text)") }
            for marker in markers { #expect(box.overlap(marker) == 0, "label \(labels[i].text) covers a marker") }
        }
    }

    /// A candidate far above both curves on eval (when the best is chosen on choose_on, which missed it) sits on
    /// the top edge as an upward triangle, counted in the legend.
    @Test func svg_candidateAboveTheRange_onTheTopEdgeAndCounted() throws {
        let cells = F.cells()
        let results = F.results(cells, top1: { $0.index == 0 ? 0.99 : F.plausibleTop1($0) }, chooseOn: {
            $0.index == 0 ? 0.3 : F.plausibleTop1($0)
        })
        let document = try SVGDocument(SweepPlot.svg(F.report(cells: cells, results: results)))
        let area = try #require(document.elements.first { $0.attributes["class"] == "plot-area" })
        let high = try #require(Double(area.attributes["data-y-high"] ?? ""))
        #expect(high < 90)
        let above = document.elements.filter { $0.attributes["data-clipped"] == "above" }
        #expect(above.count == 1 && above.first?.attributes["data-sampling"] == "6×168")
        let point = try #require(document.points(series: "grid").first { $0.y < SweepPlot.plotTop + 10 })
        #expect(point.budget == 512)
        #expect(document.texts.contains("1 above \(Int(high))%"), "legend: \(document.texts)")
    }

    @Test func accuracyAxis_followsItsValues_onRoundTicks() {
        let quickstart = SweepPlot.Axis.accuracy([95.83, 97.5, 99.58])
        #expect(quickstart.low == 95 && quickstart.high == 100)
        #expect(quickstart.ticks.map(\.label) == ["95", "96", "97", "98", "99", "100"])
        let fluxViT = SweepPlot.Axis.accuracy([60, 71.2, 79.6])
        #expect(fluxViT.low == 55 && fluxViT.high == 85)
        #expect(fluxViT.ticks.map(\.label) == ["55", "60", "65", "70", "75", "80", "85"])
    }

    @Test func accuracyAxis_flatOrAtOneHundred_staysReadable() {
        // Equal accuracies: at least four points tall, on whole-number ticks, not a magnified 0.25-point grid.
        let flat = SweepPlot.Axis.accuracy([80, 80])
        #expect(flat.high - flat.low >= SweepPlot.Axis.minimumAccuracySpan)
        #expect(flat.ticks.allSatisfy { $0.value == $0.value.rounded() })
        // A point at 100%: the frame reaches just past it so the marker stays inside; no tick above 100.
        let perfect = SweepPlot.Axis.accuracy([97.5, 100])
        #expect(perfect.high > 100 && perfect.high < 100.5)
        #expect(perfect.ticks.last?.value == 100)
        #expect(perfect.clipping(100) == .inside && perfect.clipping(90) == .below)
    }

    static let frame = SweepPlot.Rect(
        x: SweepPlot.plotLeft, y: SweepPlot.plotTop, width: SweepPlot.plotRight - SweepPlot.plotLeft,
        height: SweepPlot.plotBottom - SweepPlot.plotTop)

    /// The box each label's text takes, as the plot reckons it (DejaVu Sans advances).
    static func labelBoxes(_ labels: [SVGDocument.Element]) -> [SweepPlot.Rect] {
        labels.map { label -> SweepPlot.Rect in
            let x = Double(label.attributes["x"]!)!, y = Double(label.attributes["y"]!)!
            let size = Double(label.attributes["font-size"]!)!
            #expect(size >= 11)
            return SweepPlot.Rect(
                x: x, y: y - size + 1.5, width: SweepPlot.textWidth(label.text, size: size), height: size + 2)
        }
    }

    @Test func svg_noFinishedCells_stillWellFormedWithNote() throws {
        let report = F.report(cells: F.cells(), results: [])
        let document = try SVGDocument(SweepPlot.svg(report))
        #expect(document.texts.contains("No cells finished yet"))
        #expect(document.points(series: "to").isEmpty)
    }

    @Test func svg_standardIsBest_labelledOnce() throws {
        let cells = F.cells()
        let report = F.report(cells: cells, results: F.results(cells, top1: { $0.isStandard ? 0.8 : 0.7 }))
        let document = try SVGDocument(SweepPlot.svg(report))
        let labels = document.elements.filter { $0.attributes["class"] == "label" }.map(\.text)
        #expect(
            labels.sorted() == ["8×224 · 1024 (standard)", "8×224 · 2048 (standard)", "8×224 · 512 (standard)"])
        #expect(document.points(series: "standard").count == 3 && document.points(series: "to").count == 3)
    }

    @Test func logTicks_thirteenTo154_areRoundNumbers() {
        let axis = SweepPlot.Axis.gmacs([13.1, 32.4, 83.2, 154.3])
        #expect(axis.isLog)
        #expect(axis.ticks.map(\.label) == ["20", "50", "100"])
    }

    @Test func linearTicks_thousandths_keepTheirDecimals() {
        let axis = SweepPlot.Axis.gmacs([0.0012, 0.0043, 0.0098])
        #expect(!axis.isLog)
        #expect(axis.ticks.map(\.label) == ["0.002", "0.004", "0.006", "0.008", "0.010"])
    }
}

// MARK: - Reading the SVG back

/// The elements of an SVG document, as Foundation's XMLParser reads them (it fails on malformed XML).
final class SVGDocument: NSObject, XMLParserDelegate {
    struct Element {
        var name: String
        var attributes: [String: String]
        var text = ""
    }

    struct ParseFailure: Error, CustomStringConvertible {
        var description: String
    }

    private(set) var elements: [Element] = []
    private var open: [Int] = []

    init(_ svg: String) throws {
        super.init()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = self
        guard parser.parse() else {
            throw ParseFailure(
                description: "malformed SVG at line \(parser.lineNumber): \(parser.parserError.map { "\($0)" } ?? "?")")
        }
    }

    var root: String? { elements.first?.name }
    var texts: [String] { elements.filter { $0.name == "text" }.map(\.text) }

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String]
    ) {
        open.append(elements.count)
        elements.append(Element(name: elementName, attributes: attributes))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let last = open.last { elements[last].text += string }
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        open.removeLast()
    }

    /// The points of one series: budget and the translate(x,y) the marker is drawn at.
    func points(series: String) -> [(budget: Int, x: Double, y: Double)] {
        elements.filter { $0.attributes["class"] == "point" && $0.attributes["data-series"] == series }.compactMap {
            guard let budget = Int($0.attributes["data-budget"] ?? ""),
                let transform = $0.attributes["transform"], transform.hasPrefix("translate(")
            else { return nil }
            let numbers = transform.dropFirst("translate(".count).dropLast().split(separator: ",").compactMap {
                Double($0)
            }
            return numbers.count == 2 ? (budget, numbers[0], numbers[1]) : nil
        }
    }

    /// Tick lines of `kind` (`x-tick`, `y-tick`): value and pixel.
    func ticks(_ kind: String, coordinate: String) -> [(value: Double, pixel: Double)] {
        elements.filter { $0.attributes["class"] == kind }.compactMap {
            guard let value = Double($0.attributes["data-value"] ?? ""),
                let pixel = Double($0.attributes[coordinate] ?? "")
            else { return nil }
            return (value, pixel)
        }
    }
}

/// An axis as a reader sees it: value → pixel interpolated through the two outermost labelled ticks.
struct AxisReading {
    struct TooFewTicks: Error {}
    var a: (value: Double, pixel: Double), b: (value: Double, pixel: Double), log: Bool
    var tickCount: Int

    init(ticks: [(value: Double, pixel: Double)], log: Bool) throws {
        guard let first = ticks.min(by: { $0.value < $1.value }), let last = ticks.max(by: { $0.value < $1.value }),
            first.value < last.value
        else { throw TooFewTicks() }
        (a, b, self.log, tickCount) = (first, last, log, ticks.count)
    }

    func pixel(_ value: Double) -> Double {
        let map = { (v: Double) in log ? Foundation.log10(v) : v }
        return a.pixel + (map(value) - map(a.value)) / (map(b.value) - map(a.value)) * (b.pixel - a.pixel)
    }
}
