import Foundation

/// The report's figure: top-1 accuracy against GMACs per view, one curve for the standard sampling and one for the
/// TO best across budgets, the rest of the grid as faint dots, in the manner of the FluxViT paper's figures.
///
/// The SVG is self-contained (white background, no scripts or external fonts). Every plotted point is a
/// `<g class="point" data-series="standard|to|grid" data-budget="…" transform="translate(x,y)">`, and every tick a
/// `<line class="x-tick|y-tick" data-value="…">`, so tools and tests can read the figure back.
public enum SweepPlot {
    /// Canvas size (viewBox) in pixels.
    static let width = 720.0, height = 480.0
    /// The plot area inside the canvas.
    static let plotLeft = 72.0, plotRight = 698.0, plotTop = 80.0, plotBottom = 408.0
    /// The x axis turns logarithmic when the largest GMACs exceed this many times the smallest.
    static let logThreshold = 10.0

    static let standardColor = "#3b6fb6", toColor = "#d1495b", gridColor = "#b4b4b4", inkColor = "#222"
    static let labelFontSize = 11.0

    /// The figure for `report`; `title` defaults to "Token Optimization: <name>".
    public static func svg(_ report: SweepReport, title: String? = nil) -> String {
        let series = Series(report)
        let all = series.standard + series.to + series.grid
        let xAxis = Axis.gmacs(all.map(\.gmacs))
        let yAxis = Axis.accuracy(all.map(\.top1))
        let x = { (v: Double) in plotLeft + xAxis.position(v) * (plotRight - plotLeft) }
        let y = { (v: Double) in plotBottom - yAxis.position(v) * (plotBottom - plotTop) }

        var svg = SVG()
        svg.open(
            "svg",
            [("xmlns", "http://www.w3.org/2000/svg"), ("viewBox", "0 0 \(Int(width)) \(Int(height))"),
             ("width", "\(Int(width))"), ("height", "\(Int(height))"),
             ("font-family", "DejaVu Sans, Helvetica, Arial, sans-serif")])
        svg.element("rect", [("width", "100%"), ("height", "100%"), ("fill", "white")])

        // Title and what the figure shows.
        svg.text(title ?? "Token Optimization: \(report.name)", x: plotLeft, y: 26, size: 16, [("font-weight", "bold")])
        var subtitle = "\(report.model) · \(report.views) views · best chosen on \(report.chosenOn)"
        if report.cellsDone < report.cellsTotal {
            subtitle += " · partial: \(report.cellsDone) of \(report.cellsTotal) cells"
        }
        svg.text(subtitle, x: plotLeft, y: 45, size: 12, [("fill", "#555")])
        drawLegend(&svg, report: report, showGrid: !series.grid.isEmpty)

        // Axes: light grid lines with their ticks, then the frame on top.
        svg.element(
            "rect",
            [("class", "plot-area"), ("data-x-scale", xAxis.isLog ? "log" : "linear"), ("x", f(plotLeft)),
             ("y", f(plotTop)), ("width", f(plotRight - plotLeft)), ("height", f(plotBottom - plotTop)),
             ("fill", "none")])
        for minor in xAxis.minorTicks {
            svg.element(
                "line", [("x1", f(x(minor))), ("x2", f(x(minor))), ("y1", f(plotBottom)), ("y2", f(plotBottom + 3)),
                         ("stroke", "#999")])
        }
        for tick in xAxis.ticks {
            svg.element(
                "line",
                [("class", "x-tick"), ("data-value", "\(tick.value)"), ("x1", f(x(tick.value))),
                 ("x2", f(x(tick.value))), ("y1", f(plotTop)), ("y2", f(plotBottom + 5)), ("stroke", "#e3e3e3")])
            svg.text(tick.label, x: x(tick.value), y: plotBottom + 20, size: 12, [("text-anchor", "middle")])
        }
        for tick in yAxis.ticks {
            svg.element(
                "line",
                [("class", "y-tick"), ("data-value", "\(tick.value)"), ("x1", f(plotLeft - 5)), ("x2", f(plotRight)),
                 ("y1", f(y(tick.value))), ("y2", f(y(tick.value))), ("stroke", "#e3e3e3")])
            svg.text(tick.label, x: plotLeft - 9, y: y(tick.value) + 4, size: 12, [("text-anchor", "end")])
        }
        svg.element(
            "rect",
            [("x", f(plotLeft)), ("y", f(plotTop)), ("width", f(plotRight - plotLeft)),
             ("height", f(plotBottom - plotTop)), ("fill", "none"), ("stroke", "#555")])
        let xTitle = "GMACs per view (billions of multiply-accumulates)" + (xAxis.isLog ? ", log scale" : "")
        svg.text(xTitle, x: (plotLeft + plotRight) / 2, y: plotBottom + 46, size: 13, [("text-anchor", "middle")])
        svg.text(
            "Top-1 accuracy (%)", x: 0, y: 0, size: 13,
            [("text-anchor", "middle"),
             ("transform", "translate(22,\(f((plotTop + plotBottom) / 2))) rotate(-90)")])

        if all.isEmpty {
            svg.text(
                "No cells finished yet", x: (plotLeft + plotRight) / 2, y: (plotTop + plotBottom) / 2, size: 14,
                [("text-anchor", "middle"), ("fill", "#777")])
        }

        // Grid dots first, so the two curves draw over them.
        for point in series.grid {
            svg.open(
                "g", [("class", "point"), ("data-series", "grid"), ("data-budget", "\(point.budget)"),
                      ("transform", "translate(\(f(x(point.gmacs))),\(f(y(point.top1))))")])
            svg.element("circle", [("r", "2.6"), ("fill", gridColor)])
            svg.close("g")
        }
        for (points, name, color, dash) in [
            (series.standard, "standard", standardColor, "6 4"), (series.to, "to", toColor, ""),
        ] where points.count > 1 {
            var attributes = [
                ("class", "curve"), ("data-series", name),
                ("points", points.map { "\(f(x($0.gmacs))),\(f(y($0.top1)))" }.joined(separator: " ")),
                ("fill", "none"), ("stroke", color), ("stroke-width", "2"), ("stroke-linejoin", "round"),
            ]
            if !dash.isEmpty { attributes.append(("stroke-dasharray", dash)) }
            svg.element("polyline", attributes)
        }
        for point in series.standard {
            svg.open("g", pointAttributes(point, series: "standard", x: x, y: y))
            svg.element("circle", [("r", "4.5"), ("fill", "white"), ("stroke", standardColor), ("stroke-width", "2")])
            svg.close("g")
        }
        for point in series.to {
            svg.open("g", pointAttributes(point, series: "to", x: x, y: y))
            svg.element(
                "path", [("d", star(radius: 7)), ("fill", toColor), ("stroke", "white"), ("stroke-width", "0.8")])
            svg.close("g")
        }

        drawLabels(&svg, series: series, x: x, y: y)
        svg.close("svg")
        return svg.markup
    }

    private static func pointAttributes(
        _ point: Point, series: String, x: (Double) -> Double, y: (Double) -> Double
    ) -> [(String, String)] {
        [("class", "point"), ("data-series", series), ("data-budget", "\(point.budget)"),
         ("data-sampling", point.sampling), ("transform", "translate(\(f(x(point.gmacs))),\(f(y(point.top1))))")]
    }

    /// The legend in one row above the plot, so it can never hide a point.
    private static func drawLegend(_ svg: inout SVG, report: SweepReport, showGrid: Bool) {
        var left = plotLeft
        let baseline = 66.0
        let entries: [(kind: String, text: String)] =
            [("standard", "standard \(report.standard.label)"), ("to", "TO: best sampling per budget")]
            + (showGrid ? [("grid", "other candidates")] : [])
        for entry in entries {
            switch entry.kind {
            case "standard":
                svg.element(
                    "line", [("x1", f(left)), ("x2", f(left + 26)), ("y1", f(baseline - 4)), ("y2", f(baseline - 4)),
                             ("stroke", standardColor), ("stroke-width", "2"), ("stroke-dasharray", "6 4")])
                svg.element(
                    "circle", [("cx", f(left + 13)), ("cy", f(baseline - 4)), ("r", "4.5"), ("fill", "white"),
                               ("stroke", standardColor), ("stroke-width", "2")])
            case "to":
                svg.element(
                    "line", [("x1", f(left)), ("x2", f(left + 26)), ("y1", f(baseline - 4)), ("y2", f(baseline - 4)),
                             ("stroke", toColor), ("stroke-width", "2")])
                svg.element(
                    "path", [("d", star(radius: 7)), ("fill", toColor), ("stroke", "white"), ("stroke-width", "0.8"),
                             ("transform", "translate(\(f(left + 13)),\(f(baseline - 4)))")])
            default:
                svg.element(
                    "circle", [("cx", f(left + 13)), ("cy", f(baseline - 4)), ("r", "2.6"), ("fill", gridColor)])
            }
            svg.text(entry.text, x: left + 32, y: baseline, size: 12)
            left += 32 + textWidth(entry.text, size: 12) + 22
        }
    }

    // MARK: - Labels

    /// Labels each curve point with its sampling and budget (`8×224 · 1024`), placed greedily where it overlaps
    /// nothing drawn so far: markers, curves, other labels, the frame. A label that must move further out gets a
    /// thin leader line back to its point.
    private static func drawLabels(
        _ svg: inout SVG, series: Series, x: (Double) -> Double, y: (Double) -> Double
    ) {
        struct Pending { var point: Point, text: String, color: String, preferAbove: Bool }
        let toCells = Set(series.to.map(\.index)), standardCells = Set(series.standard.map(\.index))
        let text = { (p: Point) in "\(p.sampling) · \(p.budget)" }
        // TO labels first: they are the result. A standard cell TO also picked is labelled once, as TO, and says so
        // (the TO curve then hides the standard's there).
        let pending = series.to.map {
            Pending(
                point: $0, text: text($0) + (standardCells.contains($0.index) ? " (standard)" : ""), color: toColor,
                preferAbove: true)
        }
            + series.standard.filter { !toCells.contains($0.index) }
            .map { Pending(point: $0, text: text($0), color: standardColor, preferAbove: false) }

        var obstacles: [Rect] = []
        for p in series.standard + series.to {
            obstacles.append(Rect(centerX: x(p.gmacs), centerY: y(p.top1), width: 14, height: 14))
        }
        // Covering a faint grid dot is allowed, but a clear spot is better.
        let dots = series.grid.map { Rect(centerX: x($0.gmacs), centerY: y($0.top1), width: 6, height: 6) }
        var segments: [(Double, Double, Double, Double)] = []
        for points in [series.standard, series.to] {
            for (a, b) in zip(points, points.dropFirst()) {
                segments.append((x(a.gmacs), y(a.top1), x(b.gmacs), y(b.top1)))
            }
        }
        let bounds = Rect(x: plotLeft + 2, y: plotTop + 2, width: plotRight - plotLeft - 4,
                          height: plotBottom - plotTop - 4)

        for item in pending {
            let w = textWidth(item.text, size: labelFontSize), h = labelFontSize + 2
            let px = x(item.point.gmacs), py = y(item.point.top1)
            var best: (rect: Rect, cost: Double, far: Bool)?
            for (index, candidate) in candidateBoxes(px: px, py: py, w: w, h: h, above: item.preferAbove).enumerated() {
                var cost = 0.0
                if !bounds.contains(candidate.rect) { cost += 1e6 }
                for o in obstacles { cost += candidate.rect.overlap(o) * 10 }
                for d in dots { cost += candidate.rect.overlap(d) * 0.5 }
                for s in segments where candidate.rect.intersects(segment: s) { cost += 40 }
                // Prefer near, early candidates among equally clear ones.
                cost += Double(index) * 0.01 + (candidate.far ? 1 : 0)
                if best == nil || cost < best!.cost { best = (candidate.rect, cost, candidate.far) }
            }
            guard let chosen = best else { continue }
            if chosen.far {
                let (ex, ey) = chosen.rect.nearestPoint(toX: px, y: py)
                svg.element(
                    "line", [("x1", f(px)), ("y1", f(py)), ("x2", f(ex)), ("y2", f(ey)), ("stroke", item.color),
                             ("stroke-width", "0.7"), ("stroke-opacity", "0.7")])
            }
            svg.text(
                item.text, x: chosen.rect.x, y: chosen.rect.y + h - 3.5, size: labelFontSize,
                [("class", "label"), ("fill", item.color)])
            obstacles.append(chosen.rect)
        }
    }

    /// Places around a point, nearest first: above or below (as preferred), the sides, the diagonals, then the same
    /// further out.
    private static func candidateBoxes(
        px: Double, py: Double, w: Double, h: Double, above: Bool
    ) -> [(rect: Rect, far: Bool)] {
        var boxes: [(Rect, Bool)] = []
        for (gap, far) in [(7.0, false), (22.0, true), (38.0, true)] {
            let up = Rect(x: px - w / 2, y: py - gap - h, width: w, height: h)
            let down = Rect(x: px - w / 2, y: py + gap, width: w, height: h)
            let right = Rect(x: px + gap + 2, y: py - h / 2, width: w, height: h)
            let left = Rect(x: px - gap - 2 - w, y: py - h / 2, width: w, height: h)
            let upRight = Rect(x: px + gap * 0.7, y: py - gap * 0.7 - h, width: w, height: h)
            let downRight = Rect(x: px + gap * 0.7, y: py + gap * 0.7, width: w, height: h)
            let upLeft = Rect(x: px - gap * 0.7 - w, y: py - gap * 0.7 - h, width: w, height: h)
            let downLeft = Rect(x: px - gap * 0.7 - w, y: py + gap * 0.7, width: w, height: h)
            let ordered = above
                ? [up, upLeft, upRight, left, right, down, downLeft, downRight]
                : [down, downRight, downLeft, right, left, up, upRight, upLeft]
            boxes += ordered.map { ($0, far) }
        }
        return boxes
    }

    /// A five-pointed star centred on the origin.
    static func star(radius: Double) -> String {
        let inner = radius * 0.45
        let corners = (0..<10).map { i -> String in
            let r = i % 2 == 0 ? radius : inner
            let angle = -Double.pi / 2 + Double(i) * Double.pi / 5
            return "\(f(r * cos(angle))),\(f(r * sin(angle)))"
        }
        return "M" + corners.joined(separator: "L") + "Z"
    }

    /// The width of `text` at `size` pixels, from DejaVu Sans advance widths (the widest of the fonts the SVG
    /// names, so Helvetica or Arial only make labels shorter, never into their neighbours).
    static func textWidth(_ text: String, size: Double) -> Double {
        text.reduce(0.0) { $0 + (advance[$1] ?? 0.62) } * size
    }

    /// DejaVu Sans advance widths in em (units per em 2048), for the characters plots show most.
    private static let advance: [Character: Double] = {
        var table: [Character: Double] = [:]
        for c in "0123456789" { table[c] = 1303.0 / 2048 }
        let lower: [Double] = [
            1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186, 569, 1995, 1298, 1253, 1300, 1300, 842,
            1067, 803, 1298, 1212, 1675, 1212, 1212, 1075,
        ]
        let upper: [Double] = [
            1401, 1405, 1430, 1577, 1294, 1178, 1577, 1540, 604, 604, 1343, 1141, 1767, 1532, 1612, 1235, 1612, 1423,
            1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403,
        ]
        for (i, c) in "abcdefghijklmnopqrstuvwxyz".enumerated() { table[c] = lower[i] / 2048 }
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZ".enumerated() { table[c] = upper[i] / 2048 }
        let other: [Character: Double] = [
            " ": 651, "·": 651, "×": 1716, ":": 690, ",": 651, ".": 651, "(": 799, ")": 799, "-": 739, "<": 1716,
            ">": 1716, "&": 1597, "_": 1024, "%": 1946, "/": 690, "\"": 940, "'": 563, "=": 1716, "+": 1716,
        ]
        for (c, width) in other { table[c] = width / 2048 }
        return table
    }()

    /// A coordinate with at most one decimal: enough for a 720-pixel canvas, and short.
    static func f(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}

// MARK: - Data

extension SweepPlot {
    /// One plotted cell.
    struct Point {
        var index: Int, budget: Int, sampling: String, gmacs: Double, top1: Double
        init(_ result: CellResult) {
            index = result.cell.index
            budget = result.cell.budget
            sampling = result.cell.candidate.label
            gmacs = result.cell.gmacs
            top1 = result.eval.top1 * 100
        }
    }

    /// The curves (sorted by GMACs) and the remaining grid cells.
    struct Series {
        var standard: [Point], to: [Point], grid: [Point]
        init(_ report: SweepReport) {
            let sortKey = { (a: Point, b: Point) in a.gmacs < b.gmacs || (a.gmacs == b.gmacs && a.index < b.index) }
            standard = report.perBudget.compactMap { $0.standard.map(Point.init) }.filter { $0.gmacs > 0 }
                .sorted(by: sortKey)
            to = report.perBudget.compactMap { $0.best.map(Point.init) }.filter { $0.gmacs > 0 }.sorted(by: sortKey)
            let onCurves = Set(standard.map(\.index) + to.map(\.index))
            grid = report.grid.filter { !onCurves.contains($0.cell.index) && $0.cell.gmacs > 0 }.map(Point.init)
        }
    }

    /// One axis: its domain, scale and ticks. `position` maps a value to 0…1 along the axis.
    struct Axis {
        var low: Double, high: Double, isLog: Bool
        var ticks: [(value: Double, label: String)]
        var minorTicks: [Double] = []

        func position(_ value: Double) -> Double {
            let t = isLog ? (log10(value) - log10(low)) / (log10(high) - log10(low)) : (value - low) / (high - low)
            return t.isFinite ? t : 0.5
        }

        /// GMACs: logarithmic when the values span more than `logThreshold`×, else linear; padded so markers sit
        /// inside the frame.
        static func gmacs(_ values: [Double]) -> Axis {
            guard let lo = values.min(), let hi = values.max(), lo > 0 else {
                return linear(low: 0, high: 1, clampLow: 0, clampHigh: .infinity)
            }
            if hi / lo > logThreshold {
                let (a, b) = (log10(lo), log10(hi)), pad = (b - a) * 0.07
                return logarithmic(low: pow(10, a - pad), high: pow(10, b + pad))
            }
            let pad = hi > lo ? (hi - lo) * 0.08 : lo * 0.1
            return linear(low: lo - pad, high: hi + pad, clampLow: 0, clampHigh: .infinity)
        }

        /// Accuracy in percent: the data's range padded by at least one point, more on top where the best points'
        /// labels go, within 0…100.
        static func accuracy(_ values: [Double]) -> Axis {
            guard let lo = values.min(), let hi = values.max() else {
                return linear(low: 0, high: 100, clampLow: 0, clampHigh: 100)
            }
            let span = hi - lo
            return linear(
                low: lo - max(span * 0.1, 1), high: hi + max(span * 0.15, 1.5), clampLow: 0, clampHigh: 100)
        }

        static func linear(low: Double, high: Double, clampLow: Double, clampHigh: Double) -> Axis {
            let low = max(low, clampLow), high = min(high, clampHigh)
            let step = niceStep((high - low) / 5)
            let decimals = max(0, -Int(log10(step).rounded(.down)) + (isHalfStep(step) ? 1 : 0))
            var ticks: [(Double, String)] = []
            var k = (low / step).rounded(.up)
            while k * step <= high + step * 1e-9 {
                let value = k * step
                ticks.append((value, String(format: "%.\(decimals)f", value == 0 ? 0 : value)))
                k += 1
            }
            return Axis(low: low, high: high, isLog: false, ticks: ticks)
        }

        /// Ticks at 1, 2, 5 × 10ᵏ (or every decade, or 1–9 × 10ᵏ), whichever gives 3 to 7 labels.
        static func logarithmic(low: Double, high: Double) -> Axis {
            let decades = Int(log10(low).rounded(.down))...Int(log10(high).rounded(.up))
            func values(_ mantissas: [Double]) -> [Double] {
                decades.flatMap { d in mantissas.map { $0 * pow(10, Double(d)) } }.filter { $0 >= low && $0 <= high }
            }
            var chosen = values([1])
            for mantissas in [[1.0, 2, 5], [1.0, 2, 3, 5], [1.0, 2, 3, 4, 5, 6, 7, 8, 9]] where chosen.count < 3 {
                chosen = values(mantissas)
            }
            let minor = values([1, 2, 3, 4, 5, 6, 7, 8, 9]).filter { !chosen.contains($0) }
            return Axis(
                low: low, high: high, isLog: true, ticks: chosen.map { ($0, tickLabel($0)) }, minorTicks: minor)
        }

        /// 1, 2, 2.5 or 5 × 10ᵏ, the nearest at or above `raw`.
        static func niceStep(_ raw: Double) -> Double {
            guard raw > 0, raw.isFinite else { return 1 }
            let magnitude = pow(10, log10(raw).rounded(.down))
            let residual = raw / magnitude
            let factor: Double = residual <= 1 ? 1 : residual <= 2 ? 2 : residual <= 2.5 ? 2.5 : residual <= 5 ? 5 : 10
            return factor * magnitude
        }

        private static func isHalfStep(_ step: Double) -> Bool {
            let mantissa = step / pow(10, log10(step).rounded(.down))
            return abs(mantissa - 2.5) < 1e-9
        }

        /// A log tick's value, as short as it can be: `0.002`, `20`, `100`.
        static func tickLabel(_ value: Double) -> String { String(format: "%.6g", value) }
    }

    /// An axis-aligned box in canvas pixels.
    struct Rect {
        var x: Double, y: Double, width: Double, height: Double

        init(x: Double, y: Double, width: Double, height: Double) {
            (self.x, self.y, self.width, self.height) = (x, y, width, height)
        }

        init(centerX: Double, centerY: Double, width: Double, height: Double) {
            self.init(x: centerX - width / 2, y: centerY - height / 2, width: width, height: height)
        }

        func contains(_ other: Rect) -> Bool {
            other.x >= x && other.y >= y && other.x + other.width <= x + width && other.y + other.height <= y + height
        }

        func overlap(_ other: Rect) -> Double {
            let w = min(x + width, other.x + other.width) - max(x, other.x)
            let h = min(y + height, other.y + other.height) - max(y, other.y)
            return w > 0 && h > 0 ? w * h : 0
        }

        /// Whether the segment crosses the box (sampled finely enough for labels a few pixels tall).
        func intersects(segment s: (Double, Double, Double, Double)) -> Bool {
            let length = hypot(s.2 - s.0, s.3 - s.1)
            let steps = max(2, Int(length / 2))
            return (0...steps).contains { i in
                let t = Double(i) / Double(steps)
                let px = s.0 + (s.2 - s.0) * t, py = s.1 + (s.3 - s.1) * t
                return px >= x && px <= x + width && py >= y && py <= y + height
            }
        }

        func nearestPoint(toX px: Double, y py: Double) -> (Double, Double) {
            (min(max(px, x), x + width), min(max(py, y), y + height))
        }
    }

    /// An SVG document being written, with XML escaping of every text and attribute.
    struct SVG {
        /// The document so far.
        var markup = ""
        private var depth = 0

        mutating func open(_ name: String, _ attributes: [(String, String)]) {
            markup += indent + "<\(name)\(Self.attributes(attributes))>\n"
            depth += 1
        }

        mutating func close(_ name: String) {
            depth -= 1
            markup += indent + "</\(name)>\n"
        }

        mutating func element(_ name: String, _ attributes: [(String, String)]) {
            markup += indent + "<\(name)\(Self.attributes(attributes))/>\n"
        }

        mutating func text(
            _ content: String, x: Double, y: Double, size: Double, _ attributes: [(String, String)] = []
        ) {
            let all = [("x", SweepPlot.f(x)), ("y", SweepPlot.f(y)), ("font-size", SweepPlot.f(size))] + attributes
                + (attributes.contains { $0.0 == "fill" } ? [] : [("fill", SweepPlot.inkColor)])
            markup += indent + "<text\(Self.attributes(all))>\(Self.escape(content))</text>\n"
        }

        private var indent: String { String(repeating: "  ", count: depth) }

        private static func attributes(_ list: [(String, String)]) -> String {
            list.map { " \($0.0)=\"\(escape($0.1))\"" }.joined()
        }

        /// XML-escapes text and attribute values.
        static func escape(_ text: String) -> String {
            var out = ""
            for c in text {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&quot;"
                case "'": out += "&apos;"
                default: out.append(c)
                }
            }
            return out
        }
    }
}
