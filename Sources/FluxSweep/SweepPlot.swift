import Foundation

/// The report's figure: top-1 accuracy against GMACs per view, one curve for the standard sampling and one for the
/// TO best across budgets, the rest of the grid as faint dots, in the manner of the FluxViT paper's figures.
///
/// The accuracy axis follows the two curves (their range with a margin, on round ticks), not the rest of the grid:
/// a weak candidate far below would otherwise squeeze both curves into a sliver at the top. Candidates outside the
/// range are drawn as small triangles on the edge they fall beyond, and the legend counts them.
///
/// The SVG is self-contained (white background, no scripts or external fonts). Every plotted point is a
/// `<g class="point" data-series="standard|to|grid" data-budget="…" transform="translate(x,y)">` (a grid point
/// outside the accuracy range also has `data-clipped="below|above"` and sits on that edge), every tick a
/// `<line class="x-tick|y-tick" data-value="…">`, and the plot area a `<rect class="plot-area" data-y-low="…"
/// data-y-high="…">`, so tools and tests can read the figure back.
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
        let curves = series.standard + series.to, all = curves + series.grid
        let xAxis = Axis.gmacs(all.map(\.gmacs))
        let yAxis = Axis.accuracy((curves.isEmpty ? all : curves).map(\.top1))
        let x = { (v: Double) in plotLeft + xAxis.position(v) * (plotRight - plotLeft) }
        let y = { (v: Double) in plotBottom - yAxis.position(v) * (plotBottom - plotTop) }
        let grid = series.grid.map { ($0, yAxis.clipping($0.top1)) }
        let clipped = Clipped(
            below: grid.filter { $0.1 == .below }.count, above: grid.filter { $0.1 == .above }.count,
            low: yAxis.valueLabel(yAxis.low), high: yAxis.valueLabel(yAxis.high))

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
        drawLegend(&svg, report: report, showGrid: !series.grid.isEmpty, clipped: clipped)

        // Axes: light grid lines with their ticks, then the frame on top.
        svg.element(
            "rect",
            [("class", "plot-area"), ("data-x-scale", xAxis.isLog ? "log" : "linear"),
             ("data-y-low", "\(yAxis.low)"), ("data-y-high", "\(yAxis.high)"), ("x", f(plotLeft)),
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

        // Grid dots first, so the two curves draw over them; those beyond the accuracy range as triangles on its
        // edge, pointing the way they fall.
        var gridMarks: [Rect] = []
        for (point, clip) in grid {
            let (px, py): (Double, Double)
            switch clip {
            case .inside: (px, py) = (x(point.gmacs), y(point.top1))
            case .below: (px, py) = (x(point.gmacs), plotBottom - clipInset)
            case .above: (px, py) = (x(point.gmacs), plotTop + clipInset)
            }
            var attributes = [
                ("class", "point"), ("data-series", "grid"), ("data-budget", "\(point.budget)"),
                ("data-sampling", point.sampling),
            ]
            if clip != .inside { attributes.append(("data-clipped", clip == .below ? "below" : "above")) }
            attributes.append(("transform", "translate(\(f(px)),\(f(py)))"))
            svg.open("g", attributes)
            if clip == .inside {
                svg.element("circle", [("r", "2.6"), ("fill", gridColor)])
                gridMarks.append(Rect(centerX: px, centerY: py, width: 6, height: 6))
            } else {
                svg.element("path", [("d", triangle(down: clip == .below)), ("fill", gridColor)])
                gridMarks.append(Rect(centerX: px, centerY: py, width: 8, height: 7))
            }
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

        drawLabels(&svg, series: series, gridMarks: gridMarks, x: x, y: y)
        svg.close("svg")
        return svg.markup
    }

    /// How far inside the frame a clipped grid point's triangle is centred.
    static let clipInset = 4.5

    /// Grid points beyond the accuracy range, and the range's ends as the ticks write them.
    struct Clipped {
        var below: Int, above: Int, low: String, high: String
    }

    private static func pointAttributes(
        _ point: Point, series: String, x: (Double) -> Double, y: (Double) -> Double
    ) -> [(String, String)] {
        [("class", "point"), ("data-series", series), ("data-budget", "\(point.budget)"),
         ("data-sampling", point.sampling), ("transform", "translate(\(f(x(point.gmacs))),\(f(y(point.top1))))")]
    }

    /// The legend in one row above the plot, so it can never hide a point. Grid points beyond the accuracy range
    /// are counted there beside their triangle ("▼ 93 below 95%"), in the words that fit the row.
    private static func drawLegend(_ svg: inout SVG, report: SweepReport, showGrid: Bool, clipped: Clipped) {
        enum Glyph { case standard, to, grid, below, above }
        let baseline = 66.0, size = 12.0, glyphWidth = 26.0, glyphGap = 6.0
        /// Wordings from the fullest to the tersest.
        func entries(terseness: Int) -> [(glyph: Glyph, text: String)] {
            var list: [(Glyph, String)] = [
                (.standard, "standard \(report.standard.label)"),
                (.to, terseness < 1 ? "TO: best sampling per budget" : "TO: best per budget"),
            ]
            if showGrid { list.append((.grid, terseness < 2 ? "other candidates" : "others")) }
            if clipped.below > 0 { list.append((.below, "\(clipped.below) below \(clipped.low)%")) }
            if clipped.above > 0 { list.append((.above, "\(clipped.above) above \(clipped.high)%")) }
            return list
        }
        // A clipped count sits closer to the grid entry it qualifies.
        func gap(after glyph: Glyph) -> Double { glyph == .grid ? 12 : 20 }
        func rowWidth(_ list: [(glyph: Glyph, text: String)]) -> Double {
            list.reduce(0) { total, entry in
                total + (entry.glyph == .below || entry.glyph == .above ? 12 : glyphWidth) + glyphGap
                    + textWidth(entry.text, size: size) + gap(after: entry.glyph)
            } - gap(after: list.last?.glyph ?? .grid)
        }
        let room = width - 10 - plotLeft
        let list = (0...2).lazy.map(entries(terseness:)).first { rowWidth($0) <= room } ?? entries(terseness: 2)

        var left = plotLeft
        let mid = baseline - 4
        for entry in list {
            var glyph = glyphWidth
            switch entry.glyph {
            case .standard:
                svg.element(
                    "line", [("x1", f(left)), ("x2", f(left + 26)), ("y1", f(mid)), ("y2", f(mid)),
                             ("stroke", standardColor), ("stroke-width", "2"), ("stroke-dasharray", "6 4")])
                svg.element(
                    "circle", [("cx", f(left + 13)), ("cy", f(mid)), ("r", "4.5"), ("fill", "white"),
                               ("stroke", standardColor), ("stroke-width", "2")])
            case .to:
                svg.element(
                    "line", [("x1", f(left)), ("x2", f(left + 26)), ("y1", f(mid)), ("y2", f(mid)),
                             ("stroke", toColor), ("stroke-width", "2")])
                svg.element(
                    "path", [("d", star(radius: 7)), ("fill", toColor), ("stroke", "white"), ("stroke-width", "0.8"),
                             ("transform", "translate(\(f(left + 13)),\(f(mid)))")])
            case .grid:
                svg.element("circle", [("cx", f(left + 13)), ("cy", f(mid)), ("r", "2.6"), ("fill", gridColor)])
            case .below, .above:
                glyph = 12
                svg.element(
                    "path", [("class", "legend-clipped"), ("d", triangle(down: entry.glyph == .below)),
                             ("fill", gridColor), ("transform", "translate(\(f(left + 6)),\(f(mid)))")])
            }
            svg.text(entry.text, x: left + glyph + glyphGap, y: baseline, size: size)
            left += glyph + glyphGap + textWidth(entry.text, size: size) + gap(after: entry.glyph)
        }
    }

    /// A small triangle centred on the origin, pointing down or up: a grid point beyond the accuracy range.
    static func triangle(down: Bool) -> String {
        let h = down ? 3.5 : -3.5
        return "M-4,\(f(-h))L4,\(f(-h))L0,\(f(h))Z"
    }

    // MARK: - Labels

    /// A label to place: its text and colour, the point it names and the box its text takes.
    struct LabelItem {
        var text: String, color: String, px: Double, py: Double, width: Double, height: Double, preferAbove: Bool
    }

    /// Where a label went: its box, and the leader line back to its point when it moved away from it.
    struct Placement {
        var rect: Rect
        var leader: Segment?
        var cost: Double
    }

    typealias Segment = (Double, Double, Double, Double)

    /// Labels each curve point with its sampling and budget (`8×224 · 1024`), placed where it overlaps nothing
    /// drawn: markers, curves, grid points, other labels and their leader lines, the frame. A label that must move
    /// away from its point gets a thin leader line back to it.
    private static func drawLabels(
        _ svg: inout SVG, series: Series, gridMarks: [Rect], x: (Double) -> Double, y: (Double) -> Double
    ) {
        let toCells = Set(series.to.map(\.index)), standardCells = Set(series.standard.map(\.index))
        let h = labelFontSize + 2
        func item(_ p: Point, _ text: String, _ color: String, above: Bool) -> LabelItem {
            LabelItem(
                text: text, color: color, px: x(p.gmacs), py: y(p.top1), width: textWidth(text, size: labelFontSize),
                height: h, preferAbove: above)
        }
        let text = { (p: Point) in "\(p.sampling) · \(p.budget)" }
        // TO labels first: they are the result. A standard cell TO also picked is labelled once, as TO, and says so
        // (the TO curve then hides the standard's there).
        let items = series.to.map {
            item($0, text($0) + (standardCells.contains($0.index) ? " (standard)" : ""), toColor, above: true)
        }
            + series.standard.filter { !toCells.contains($0.index) }
            .map { item($0, text($0), standardColor, above: false) }

        let markers = (series.standard + series.to).map {
            Rect(centerX: x($0.gmacs), centerY: y($0.top1), width: 12, height: 12)
        }
        var curves: [Segment] = []
        for points in [series.standard, series.to] {
            for (a, b) in zip(points, points.dropFirst()) {
                curves.append((x(a.gmacs), y(a.top1), x(b.gmacs), y(b.top1)))
            }
        }
        let bounds = Rect(x: plotLeft + 2, y: plotTop + 2, width: plotRight - plotLeft - 4,
                          height: plotBottom - plotTop - 4)
        let placements = placeLabels(items, markers: markers, dots: gridMarks, curves: curves, bounds: bounds)

        // Leader lines under every label, so a label's white halo covers any line it meets.
        for (item, placement) in zip(items, placements) {
            guard let l = placement.leader else { continue }
            svg.element(
                "line", [("class", "leader"), ("x1", f(l.0)), ("y1", f(l.1)), ("x2", f(l.2)), ("y2", f(l.3)),
                         ("stroke", item.color), ("stroke-width", "0.8"), ("stroke-opacity", "0.8")])
        }
        for (item, placement) in zip(items, placements) {
            svg.text(
                item.text, x: placement.rect.x, y: placement.rect.y + h - 3.5, size: labelFontSize,
                [("class", "label"), ("fill", item.color), ("stroke", "white"), ("stroke-width", "3"),
                 ("stroke-linejoin", "round"), ("paint-order", "stroke")])
        }
    }

    /// Greedy placement: each label in turn takes the cheapest of its candidate boxes given those already placed.
    /// Tried in a few orders (the result first, the standard first, left to right, the most crowded first); the
    /// cheapest outcome wins.
    static func placeLabels(
        _ items: [LabelItem], markers: [Rect], dots: [Rect], curves: [Segment], bounds: Rect
    ) -> [Placement] {
        guard !items.isEmpty else { return [] }
        let indices = Array(items.indices)
        let crowding = items.map { a in
            items.filter { b in abs(b.px - a.px) < 90 && abs(b.py - a.py) < 40 }.count
        }
        let orders = [
            indices,
            indices.filter { !items[$0].preferAbove } + indices.filter { items[$0].preferAbove },
            indices.sorted { (items[$0].px, $0) < (items[$1].px, $1) },
            indices.sorted { (-crowding[$0], $0) < (-crowding[$1], $1) },
        ]
        var best: (placements: [Placement], cost: Double)?
        for order in orders {
            var placed: [Int: Placement] = [:]
            var total = 0.0
            for i in order {
                let placement = placeOne(
                    items[i], placed: order.compactMap { placed[$0] }, markers: markers, dots: dots,
                    curves: curves, bounds: bounds)
                placed[i] = placement
                total += placement.cost
            }
            if best == nil || total < best!.cost - 1e-9 {
                best = (indices.map { placed[$0]! }, total)
            }
        }
        return best!.placements
    }

    /// The cheapest box for one label. Costs, roughly in order of how much they hurt a reader: leaving the plot,
    /// covering another label, a curve marker or a leader line, crossing a curve, covering a grid point, moving away
    /// from the point (a ring further out), then the preferred side.
    private static func placeOne(
        _ item: LabelItem, placed: [Placement], markers: [Rect], dots: [Rect], curves: [Segment], bounds: Rect
    ) -> Placement {
        // The point's own marker (two, when TO picked the standard cell) is centred on it.
        let own = markers.map { abs($0.x + $0.width / 2 - item.px) < 0.5 && abs($0.y + $0.height / 2 - item.py) < 0.5 }
        var best: Placement?
        for candidate in candidateBoxes(
            px: item.px, py: item.py, w: item.width, h: item.height, above: item.preferAbove)
        {
            let box = candidate.rect
            var cost = Double(candidate.ring) * 25 + Double(candidate.order) * 0.5
            if !bounds.contains(box) { cost += 1e6 }
            let padded = Rect(x: box.x - 3, y: box.y - 2, width: box.width + 6, height: box.height + 4)
            for other in placed {
                let overlap = box.overlap(other.rect)
                if overlap > 0 { cost += 1e4 + overlap * 10 } else if padded.overlap(other.rect) > 0 { cost += 20 }
                if let l = other.leader, box.intersects(segment: l) { cost += 400 }
            }
            for (i, marker) in markers.enumerated() {
                let overlap = box.overlap(marker)
                if overlap > 0 { cost += (own[i] ? 3000 : 2000) + overlap * 10 }
            }
            for curve in curves where box.intersects(segment: curve) { cost += 150 }
            for dot in dots where box.overlap(dot) > 0 { cost += 12 }

            var leader: Segment?
            if candidate.ring == 0 {
                // Without a leader line a label names the marker nearest to it: keep that marker its own.
                let (ex, ey) = box.nearestPoint(toX: item.px, y: item.py)
                let ownDistance = hypot(ex - item.px, ey - item.py)
                for (i, marker) in markers.enumerated() where !own[i] {
                    let (mx, my) = (marker.x + marker.width / 2, marker.y + marker.height / 2)
                    let (nx, ny) = box.nearestPoint(toX: mx, y: my)
                    if hypot(nx - mx, ny - my) < ownDistance - 1 { cost += 120 }
                }
            } else {
                let (ex, ey) = box.nearestPoint(toX: item.px, y: item.py)
                let dx = ex - item.px, dy = ey - item.py, length = hypot(dx, dy)
                if length > 8 {
                    let l = (item.px + dx / length * 6, item.py + dy / length * 6, ex, ey)
                    leader = l
                    for other in placed where other.rect.intersects(segment: l) { cost += 400 }
                    for (i, marker) in markers.enumerated() where !own[i] && marker.intersects(segment: l) {
                        cost += 300
                    }
                    for other in placed {
                        if let m = other.leader, segmentsCross(l, m) { cost += 200 }
                    }
                    for curve in curves where segmentsCross(l, curve) { cost += 15 }
                }
            }
            if best == nil || cost < best!.cost { best = Placement(rect: box, leader: leader, cost: cost) }
        }
        return best!
    }

    /// Boxes around a point: eight places (above or below as preferred first, then the sides and diagonals) on
    /// rings further and further out.
    static func candidateBoxes(
        px: Double, py: Double, w: Double, h: Double, above: Bool
    ) -> [(rect: Rect, ring: Int, order: Int)] {
        var boxes: [(Rect, Int, Int)] = []
        for (ring, gap) in [7.0, 20.0, 34.0, 50.0].enumerated() {
            // Diagonals clear of the point's own marker (12 pixels square) even on the nearest ring.
            let d = max(gap * 0.75, 7)
            let up = Rect(x: px - w / 2, y: py - gap - h, width: w, height: h)
            let down = Rect(x: px - w / 2, y: py + gap, width: w, height: h)
            let right = Rect(x: px + gap + 2, y: py - h / 2, width: w, height: h)
            let left = Rect(x: px - gap - 2 - w, y: py - h / 2, width: w, height: h)
            let upRight = Rect(x: px + d, y: py - d - h, width: w, height: h)
            let downRight = Rect(x: px + d, y: py + d, width: w, height: h)
            let upLeft = Rect(x: px - d - w, y: py - d - h, width: w, height: h)
            let downLeft = Rect(x: px - d - w, y: py + d, width: w, height: h)
            let ordered = above
                ? [up, upLeft, upRight, left, right, down, downLeft, downRight]
                : [down, downRight, downLeft, right, left, up, upRight, upLeft]
            boxes += ordered.enumerated().map { ($1, ring, $0) }
        }
        return boxes
    }

    /// Whether two segments cross (touching ends count).
    static func segmentsCross(_ a: Segment, _ b: Segment) -> Bool {
        func side(_ s: Segment, _ px: Double, _ py: Double) -> Double {
            (s.2 - s.0) * (py - s.1) - (s.3 - s.1) * (px - s.0)
        }
        let d1 = side(a, b.0, b.1), d2 = side(a, b.2, b.3), d3 = side(b, a.0, a.1), d4 = side(b, a.2, a.3)
        return d1 * d2 <= 0 && d3 * d4 <= 0 && !(d1 == 0 && d2 == 0)
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

        /// The least height of the accuracy axis, in points.
        static let minimumAccuracySpan = 4.0

        /// Accuracy in percent over `values` (the two curves' points): their range with a margin, more on top
        /// where the best points' labels go, at least `minimumAccuracySpan` tall, widened to round ticks and kept
        /// within 0…100 — unless a point sits at 0 or 100, when the range reaches just past it so its marker stays
        /// inside the frame.
        static func accuracy(_ values: [Double]) -> Axis {
            guard let lo = values.min(), let hi = values.max() else {
                return linear(low: 0, high: 100, clampLow: 0, clampHigh: 100)
            }
            let span = hi - lo
            var a = max(lo - max(span * 0.08, 0.5), 0), b = min(hi + max(span * 0.12, 0.75), 100)
            // At least `minimumAccuracySpan` points tall, so near-equal accuracies are not magnified into noise.
            if b - a < minimumAccuracySpan {
                let extra = minimumAccuracySpan - (b - a)
                (a, b) = (a - extra / 2, b + extra / 2)
                if b > 100 { (a, b) = (a - (b - 100), 100) }
                if a < 0 { (a, b) = (0, b - a) }
            }
            let step = niceStep((b - a) / 5)
            var low = max((a / step + 1e-9).rounded(.down) * step, 0)
            var high = min((b / step - 1e-9).rounded(.up) * step, 100)
            // Room for a marker at either end (4% of the height, about 13 pixels).
            let room = (high - low) * 0.04
            if hi > high - room { high = hi + room }
            if lo < low + room { low = lo - room }
            var axis = linear(low: low, high: high, clampLow: -.infinity, clampHigh: .infinity, step: step)
            axis.ticks = axis.ticks.filter { $0.value >= -1e-9 && $0.value <= 100 + 1e-9 }
            return axis
        }

        enum Clipping { case inside, below, above }

        /// Where `value` falls against the axis's domain (a hair of tolerance for rounding).
        func clipping(_ value: Double) -> Clipping {
            let tolerance = (high - low) * 1e-9
            return value < low - tolerance ? .below : value > high + tolerance ? .above : .inside
        }

        /// `value` written as the ticks write theirs when it is a tick, else with one more decimal.
        func valueLabel(_ value: Double) -> String {
            if let tick = ticks.first(where: { abs($0.value - value) < 1e-9 * max(1, abs(value)) }) {
                return tick.label
            }
            let decimals = (ticks.map { $0.label.split(separator: ".").dropFirst().first?.count ?? 0 }.max() ?? 0) + 1
            return String(format: "%.\(decimals)f", value)
        }

        static func linear(
            low: Double, high: Double, clampLow: Double, clampHigh: Double, step: Double? = nil
        ) -> Axis {
            let low = max(low, clampLow), high = min(high, clampHigh)
            let step = step ?? niceStep((high - low) / 5)
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

        /// Whether the segment meets the box (Liang–Barsky clipping).
        func intersects(segment s: (Double, Double, Double, Double)) -> Bool {
            let dx = s.2 - s.0, dy = s.3 - s.1
            var t0 = 0.0, t1 = 1.0
            for (p, q) in [(-dx, s.0 - x), (dx, x + width - s.0), (-dy, s.1 - y), (dy, y + height - s.1)] {
                if p == 0 {
                    if q < 0 { return false }
                } else if p < 0 {
                    t0 = max(t0, q / p)
                } else {
                    t1 = min(t1, q / p)
                }
                if t0 > t1 { return false }
            }
            return true
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
