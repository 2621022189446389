import Foundation
import ImageIO

/// A small plotting module: one chart per figure, drawn as SVG text. Axes with ticks and labels, linear or log
/// scales, a legend, points with error bars, lines, bars, and marked points (for example a Pareto front).
public struct Plot: Sendable {
    public enum Scale: Sendable { case linear, log }
    public enum Mark: Sendable { case points, line, bars }

    public struct Series: Sendable {
        public var name: String
        public var x: [Double]
        public var y: [Double]
        /// Half-width of the error bar at each point (nil: none).
        public var yError: [Double]?
        public var mark: Mark
        /// Per-point labels (bar captions, or notes beside points).
        public var labels: [String]?
        public init(name: String, x: [Double], y: [Double], yError: [Double]? = nil, mark: Mark = .points, labels: [String]? = nil) {
            self.name = name; self.x = x; self.y = y; self.yError = yError; self.mark = mark; self.labels = labels
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xScale: Scale = .linear
    public var yScale: Scale = .linear
    public var series: [Series] = []
    /// Category names for a bar chart's x positions 0, 1, 2, ... (then the x axis shows them instead of numbers).
    public var categories: [String]?
    /// Explicit x ticks (for example the candidate counts 1, 2, 4, 8 on a log axis), instead of computed ones.
    public var xTicks: [Double]?
    public var width = 640.0
    public var height = 420.0

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    /// Data range of one axis (including error bars), padded; log axes keep positive values only.
    func range(_ values: [Double], scale: Scale, includeZero: Bool) -> (Double, Double) {
        var v = values.filter { $0.isFinite && (scale == .linear || $0 > 0) }
        if includeZero && scale == .linear { v.append(0) }
        guard var lo = v.min(), var hi = v.max() else { return scale == .log ? (1, 10) : (0, 1) }
        if scale == .log {
            // Whole decades, unless the data spans less than one (then 5% beyond it, so a narrow range is not flat).
            if hi / lo < 10 { return (lo / (lo == hi ? 2 : 1.05), hi * (lo == hi ? 2 : 1.05)) }
            return (pow(10, floor(log10(lo))), pow(10, ceil(log10(hi))))
        }
        if lo == hi { lo -= 1; hi += 1 }
        let pad = (hi - lo) * 0.06
        return (includeZero && lo == 0 ? 0 : lo - pad, hi + pad)
    }

    /// "Nice" linear ticks (1, 2, 5 x 10^k steps) or the decades of a log axis.
    static func ticks(_ lo: Double, _ hi: Double, scale: Scale) -> [Double] {
        if scale == .log {
            // Under a factor of 4, the axis reads like a linear one: nice linear ticks, placed on the log scale.
            if hi / lo < 4 { return ticks(lo, hi, scale: .linear).filter { $0 > 0 } }
            // Decades; 2x and 5x too when the axis spans at most two decades (else too few labels to read).
            let steps: [Double] = hi / lo <= 100.0001 ? [1, 2, 5] : [1]
            var t: [Double] = []
            var v = pow(10, floor(log10(lo)))
            while v <= hi * 1.000001 {
                for m in steps where v * m >= lo * 0.999999 && v * m <= hi * 1.000001 { t.append(v * m) }
                v *= 10
            }
            return t
        }
        let raw = (hi - lo) / 6
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t: [Double] = []
        var v = ceil(lo / step) * step
        while v <= hi + step * 1e-9 { t.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return t
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.0e", v) }
        if a >= 100 || v == v.rounded() { return String(format: "%.0f", v) }
        return String(format: "%.3g", v)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }

    /// The figure as an SVG document.
    public func svg() -> String {
        var c = SVGCanvas(width: width, height: canvasHeight)
        draw(on: &c)
        return c.finish()
    }

    /// The figure as an RGB image (`scale` x the SVG's size; text in the built-in bitmap font).
    public func image(scale: Int = 2) -> Image8 {
        var c = RasterCanvas(width: width, height: canvasHeight, scale: scale)
        draw(on: &c)
        return c.image
    }

    /// Room below the plot area: tick labels and the axis label, or the category labels, slanted (SVG) or
    /// vertical (raster), as long as the longest one.
    var bottomMargin: Double { categories.map { 40 + 6.2 * Double($0.map(\.count).max() ?? 0) } ?? 56 }
    /// `height`, grown so the plot area keeps at least 240 units.
    var canvasHeight: Double { max(height, bottomMargin + 40 + 240) }

    /// Lays the figure out once, for every back end.
    func draw<C: PlotCanvas>(on o: inout C) {
        let left = 72.0, right = 20.0, top = 40.0
        let bottom = bottomMargin, height = canvasHeight
        let legendW = series.count > 1 ? 150.0 : 0
        let pw = width - left - right - legendW, ph = height - top - bottom
        let isBars = series.contains { $0.mark == .bars }
        let xs = series.flatMap(\.x)
        let ys = series.flatMap { s in s.y.indices.flatMap { i in [s.y[i] - (s.yError?[i] ?? 0), s.y[i] + (s.yError?[i] ?? 0)] } }
        var (x0, x1) = range(xs, scale: xScale, includeZero: false)
        if isBars, let c = categories { (x0, x1) = (-0.6, Double(c.count) - 0.4) }
        let (y0, y1) = range(ys, scale: yScale, includeZero: isBars)
        func tx(_ v: Double) -> Double {
            let f = xScale == .log ? (log10(v) - log10(x0)) / (log10(x1) - log10(x0)) : (v - x0) / (x1 - x0)
            return left + f * pw
        }
        func ty(_ v: Double) -> Double {
            let f = yScale == .log ? (log10(max(v, y0)) - log10(y0)) / (log10(y1) - log10(y0)) : (v - y0) / (y1 - y0)
            return top + ph - f * ph
        }
        o.rect(x: 0, y: 0, width: width, height: height, fill: "#ffffff", stroke: nil, opacity: 1)
        o.text(title, x: width / 2, y: 22, anchor: .middle, size: 15, rotate: 0)
        // Grid, ticks and tick labels.
        for v in Self.ticks(y0, y1, scale: yScale) {
            o.line(left, ty(v), left + pw, ty(v), colour: "#e5e5e5", width: 1)
            o.text(Self.label(v), x: left - 6, y: ty(v) + 4, anchor: .end, size: 12, rotate: 0)
        }
        if let c = categories, isBars {
            for (i, name) in c.enumerated() { o.text(name, x: tx(Double(i)) + 4, y: top + ph + 10, anchor: .start, size: 12, rotate: 40) }
        } else {
            for v in xTicks?.filter({ $0 >= x0 && $0 <= x1 }) ?? Self.ticks(x0, x1, scale: xScale) {
                o.line(tx(v), top, tx(v), top + ph, colour: "#f0f0f0", width: 1)
                o.text(Self.label(v), x: tx(v), y: top + ph + 16, anchor: .middle, size: 12, rotate: 0)
            }
        }
        o.rect(x: left, y: top, width: pw, height: ph, fill: nil, stroke: "#333333", opacity: 1)
        o.text(xLabel, x: left + pw / 2, y: height - 8, anchor: .middle, size: 12, rotate: 0)
        o.text(yLabel, x: 16, y: top + ph / 2, anchor: .middle, size: 12, rotate: -90)
        // Series.
        let bars = series.filter { $0.mark == .bars }
        let barW = 0.8 / Double(max(1, bars.count))
        for (si, s) in series.enumerated() {
            let colour = Self.palette[si % Self.palette.count]
            let pts = s.x.indices.filter { s.x[$0].isFinite && s.y[$0].isFinite }
            let barIndex = Double(bars.firstIndex { $0.name == s.name } ?? 0)
            func xc(_ i: Int) -> Double { s.mark == .bars ? s.x[i] - 0.4 + barW * (barIndex + 0.5) : s.x[i] }
            switch s.mark {
            case .bars:
                for i in pts {
                    let xa = tx(xc(i) - barW / 2), xb = tx(xc(i) + barW / 2)
                    let ya = ty(max(s.y[i], yScale == .log ? y0 : 0)), yb = ty(yScale == .log ? y0 : 0)
                    o.rect(x: xa, y: min(ya, yb), width: xb - xa, height: abs(yb - ya), fill: colour, stroke: nil, opacity: 0.8)
                }
            case .line:
                for (a, b) in zip(pts, pts.dropFirst()) { o.line(tx(s.x[a]), ty(s.y[a]), tx(s.x[b]), ty(s.y[b]), colour: colour, width: 2) }
                for i in pts { o.circle(x: tx(s.x[i]), y: ty(s.y[i]), r: 3, fill: colour) }
            case .points:
                for i in pts { o.circle(x: tx(s.x[i]), y: ty(s.y[i]), r: 4, fill: colour) }
            }
            if let e = s.yError {
                for i in pts where i < e.count && e[i] > 0 {
                    let x = tx(xc(i)), ya = ty(s.y[i] - e[i]), yb = ty(s.y[i] + e[i])
                    o.errorBar(x: x, from: ya, to: yb)
                }
            }
            if let labels = s.labels, s.mark != .bars {
                for i in pts where i < labels.count && !labels[i].isEmpty {
                    o.text(labels[i], x: tx(s.x[i]) + 6, y: ty(s.y[i]) - 6, anchor: .start, size: 10, rotate: 0)
                }
            }
        }
        // Legend.
        if series.count > 1 {
            for (si, s) in series.enumerated() {
                let y = top + 8 + Double(si) * 18, x = left + pw + 14
                o.rect(x: x, y: y - 8, width: 12, height: 10, fill: Self.palette[si % Self.palette.count], stroke: nil, opacity: 1)
                o.text(s.name, x: x + 18, y: y + 1, anchor: .start, size: 12, rotate: 0)
            }
        }
    }
}

enum TextAnchor: String { case start, middle, end }

/// What a figure is drawn with (coordinates in SVG user units, y down).
protocol PlotCanvas {
    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String?, stroke: String?, opacity: Double)
    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, colour: String, width: Double)
    mutating func circle(x: Double, y: Double, r: Double, fill: String)
    /// `y` is the baseline; `rotate` in degrees, clockwise, about (x, y).
    mutating func text(_ s: String, x: Double, y: Double, anchor: TextAnchor, size: Double, rotate: Double)
}

extension PlotCanvas {
    /// A vertical bar from `from` to `to` with caps.
    mutating func errorBar(x: Double, from ya: Double, to yb: Double) {
        line(x, ya, x, yb, colour: "#222222", width: 1)
        line(x - 4, ya, x + 4, ya, colour: "#222222", width: 1)
        line(x - 4, yb, x + 4, yb, colour: "#222222", width: 1)
    }
}

struct SVGCanvas: PlotCanvas {
    var body: String
    init(width: Double, height: Double) {
        body = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Self.n(width))" height="\(Self.n(height))" viewBox="0 0 \(Self.n(width)) \(Self.n(height))" \
            font-family="Helvetica, Arial, sans-serif" font-size="12">

            """
    }
    static func n(_ v: Double) -> String { String(format: "%.1f", v) }
    func finish() -> String { body + "</svg>\n" }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String?, stroke: String?, opacity: Double) {
        let f = fill.map { "fill=\"\($0)\"" + (opacity < 1 ? " fill-opacity=\"\(opacity)\"" : "") } ?? "fill=\"none\""
        let st = stroke.map { " stroke=\"\($0)\"" } ?? ""
        body += "<rect x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" width=\"\(Self.n(width))\" height=\"\(Self.n(height))\" \(f)\(st)/>\n"
    }
    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, colour: String, width: Double) {
        body +=
            "<line x1=\"\(Self.n(x1))\" y1=\"\(Self.n(y1))\" x2=\"\(Self.n(x2))\" y2=\"\(Self.n(y2))\" stroke=\"\(colour)\" stroke-width=\"\(width)\"/>\n"
    }
    mutating func circle(x: Double, y: Double, r: Double, fill: String) {
        body += "<circle cx=\"\(Self.n(x))\" cy=\"\(Self.n(y))\" r=\"\(r)\" fill=\"\(fill)\"/>\n"
    }
    mutating func text(_ s: String, x: Double, y: Double, anchor: TextAnchor, size: Double, rotate: Double) {
        let place =
            rotate == 0 ? "x=\"\(Self.n(x))\" y=\"\(Self.n(y))\"" : "transform=\"translate(\(Self.n(x)),\(Self.n(y))) rotate(\(rotate))\""
        body += "<text \(place) text-anchor=\"\(anchor.rawValue)\" font-size=\"\(size)\">\(Plot.escape(s))</text>\n"
    }
}

/// Draws into pixels: axis-aligned rectangles, 1-2 px lines, discs, and text in the bitmap font (rotated text
/// other than by -90 degrees is drawn vertically). `scale` pixels per SVG unit.
struct RasterCanvas: PlotCanvas {
    var image: Image8
    let scale: Int

    init(width: Double, height: Double, scale: Int) {
        self.scale = max(1, scale)
        image = Image8(
            width: Int(width) * self.scale, height: Int(height) * self.scale, channels: 3,
            pixels: [UInt8](repeating: 255, count: Int(width) * Int(height) * self.scale * self.scale * 3))
    }

    static func rgb(_ hex: String) -> [UInt8] {
        let h = hex.hasPrefix("#") ? String(hex.dropFirst()) : hex
        guard h.count == 6, let v = UInt32(h, radix: 16) else { return [0, 0, 0] }
        return [UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)]
    }

    mutating func blend(_ px: Int, _ py: Int, _ c: [UInt8], _ a: Double) {
        guard px >= 0, py >= 0, px < image.width, py < image.height else { return }
        let o = (py * image.width + px) * 3
        for k in 0..<3 { image.pixels[o + k] = UInt8((Double(image.pixels[o + k]) * (1 - a) + Double(c[k]) * a).rounded()) }
    }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String?, stroke: String?, opacity: Double) {
        let s = Double(scale)
        let x0 = Int((x * s).rounded()), y0 = Int((y * s).rounded())
        let x1 = Int(((x + width) * s).rounded()), y1 = Int(((y + height) * s).rounded())
        if let fill {
            let c = Self.rgb(fill)
            for py in y0..<max(y0, y1) { for px in x0..<max(x0, x1) { blend(px, py, c, opacity) } }
        }
        if let stroke {
            line(x, y, x + width, y, colour: stroke, width: 1); line(x, y + height, x + width, y + height, colour: stroke, width: 1)
            line(x, y, x, y + height, colour: stroke, width: 1); line(x + width, y, x + width, y + height, colour: stroke, width: 1)
        }
    }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, colour: String, width: Double) {
        let s = Double(scale), c = Self.rgb(colour)
        let steps = Int(max(abs(x2 - x1), abs(y2 - y1)) * s) + 1
        let t = max(1, Int((width * s).rounded()))
        let lo = -(t - 1) / 2, hi = lo + t - 1
        for k in 0...steps {
            let f = Double(k) / Double(steps)
            let px = Int(((x1 + (x2 - x1) * f) * s).rounded()), py = Int(((y1 + (y2 - y1) * f) * s).rounded())
            for dy in lo...hi { for dx in lo...hi { blend(px + dx, py + dy, c, 1) } }
        }
    }

    mutating func circle(x: Double, y: Double, r: Double, fill: String) {
        let s = Double(scale), c = Self.rgb(fill), rr = r * s
        let cx = x * s, cy = y * s
        for py in Int(cy - rr)...Int(cy + rr) {
            for px in Int(cx - rr)...Int(cx + rr)
            where (Double(px) - cx) * (Double(px) - cx) + (Double(py) - cy) * (Double(py) - cy) <= rr * rr {
                blend(px, py, c, 1)
            }
        }
    }

    mutating func text(_ str: String, x: Double, y: Double, anchor: TextAnchor, size: Double, rotate: Double) {
        let k = max(1, Int((size / 12 * Double(scale)).rounded()))
        let w = BitmapFont.width(str, scale: k), h = BitmapFont.glyphHeight * k
        var glyphs = Image8(width: max(1, w), height: h, channels: 3, pixels: [UInt8](repeating: 0, count: max(1, w) * h * 3))
        BitmapFont.draw(str, into: &glyphs, x: 0, y: 0, scale: k, colour: [255, 255, 255])
        let shift = anchor == .start ? 0 : anchor == .middle ? w / 2 : w
        let ax = Int((x * Double(scale)).rounded()), ay = Int((y * Double(scale)).rounded())
        for gy in 0..<h {
            for gx in 0..<w where glyphs.pixels[(gy * glyphs.width + gx) * 3] > 0 {
                let u = gx - shift, v = gy - h  // baseline at the glyph box's bottom
                if rotate == 0 {
                    blend(ax + u, ay + v, [0, 0, 0], 1)
                } else if rotate < 0 {
                    blend(ax + v, ay - u, [0, 0, 0], 1)  // -90: reads bottom to top
                } else {
                    blend(ax - v - h, ay + u, [0, 0, 0], 1)  // drawn downwards
                }
            }
        }
    }
}
