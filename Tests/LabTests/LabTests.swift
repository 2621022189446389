import Foundation
import Lab
import TestSupport
import XCTest

#if canImport(FoundationXML)
import FoundationXML
#endif

/// A study whose cells count their runs and can be told to fail, to test caching, resuming and --cell.
final class CountingStudy: Study {
    let name = "counting"
    var runs: [String] = []
    var failAt: String?
    var extraInput = "a"
    var plotNames: [String] = []

    func cells() throws -> [Cell] {
        let base = Cell(kind: "train", group: "model", seed: 0, inputs: ["x": extraInput])
        return [base] + (0..<3).map { Cell(kind: "eval", group: "eval", seed: UInt64($0), inputs: ["x": extraInput], needs: [base.hash]) }
    }

    func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        if cell.group + "\(cell.seed)" == failAt { throw LabError("interrupted") }
        runs.append(cell.group + "\(cell.seed)")
        if cell.kind == "eval" { XCTAssertNotNil(context.results[cell.needs[0]], "a cell runs after the cells it needs") }
        return (["value": Double(cell.seed) * 2 + 1], [:])
    }

    func report(_ results: [CellResult], pending: [Cell], context: LabContext) throws -> StudyReport {
        let s = Spread(results.filter { $0.cell.kind == "eval" }.compactMap { $0.metrics["value"] })
        let plots = plotNames.map { ($0, Plot(title: $0, xLabel: "x", yLabel: "y")) }
        return StudyReport(markdown: "mean \(s.mean) of \(s.n); \(pending.count) pending\n", json: ["mean": s.mean], plots: plots)
    }
}

final class LabTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lab-\(UUID().uuidString)").path
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            SHA256.hex(String(repeating: "a", count: 1000)), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    /// A cell's hash names its inputs: any change makes a new cell, the order of the inputs does not matter.
    func testCellHashFollowsInputs() {
        let a = Cell(kind: "sample", group: "g", seed: 1, inputs: ["cfg": "1.5", "top_k": "10"])
        XCTAssertEqual(a.hash, Cell(kind: "sample", group: "other name", seed: 1, inputs: ["top_k": "10", "cfg": "1.5"]).hash)
        XCTAssertNotEqual(a.hash, Cell(kind: "sample", group: "g", seed: 2, inputs: a.inputs).hash)
        XCTAssertNotEqual(a.hash, Cell(kind: "sample", group: "g", seed: 1, inputs: ["cfg": "1.5", "top_k": "11"]).hash)
        XCTAssertNotEqual(a.hash, Cell(kind: "train", group: "g", seed: 1, inputs: a.inputs).hash)
        XCTAssertNotEqual(a.hash, Cell(kind: "sample", group: "g", seed: 1, inputs: a.inputs, needs: ["x"]).hash)
    }

    /// An interrupted study resumes without redoing finished cells; --cell runs one cell and refuses one whose
    /// dependency has not run; a changed input reruns everything it affects; the store holds every finished cell.
    func testRunResumeAndSingleCells() throws {
        let study = CountingStudy()
        let lab = try Lab(dir: dir)
        assertThrows(try lab.run(study, only: 2), ["needs cell 0"])
        assertThrows(try lab.run(study, only: 9), ["--cell 9", "0..<4"])
        study.failAt = "eval1"
        XCTAssertThrowsError(try lab.run(study))
        XCTAssertEqual(study.runs, ["model0", "eval0"])
        study.failAt = nil
        XCTAssertEqual(try lab.run(study, only: 3), 1)
        XCTAssertEqual(try lab.run(study), 1)
        XCTAssertEqual(study.runs, ["model0", "eval0", "eval2", "eval1"], "finished cells are never redone")
        XCTAssertEqual(try lab.run(study), 0)
        let report = try lab.report(study)
        XCTAssertEqual(try String(contentsOfFile: report, encoding: .utf8), "mean 3.0 of 3; 0 pending\n")
        XCTAssertEqual(try lab.store.query("select count(*) from cells where study = 'counting'"), [["4"]])
        XCTAssertEqual(
            try lab.store.query("select value from metrics join cells using (hash) where grp = 'eval' order by seed"),
            [["1.0"], ["3.0"], ["5.0"]])
        // A second Lab on the same directory (another process) sees the finished cells.
        XCTAssertEqual(try Lab(dir: dir).run(study), 0)
        study.extraInput = "b"
        XCTAssertEqual(try lab.run(study), 4)
        // A report's plots replace the previous report's: one it no longer draws is removed.
        let plots = (dir as NSString).appendingPathComponent("counting/plots")
        study.plotNames = ["a", "b"]
        try lab.report(study)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: plots).sorted(), ["a.png", "a.svg", "b.png", "b.svg"])
        study.plotNames = ["b"]
        try lab.report(study)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: plots).sorted(), ["b.png", "b.svg"])
    }

    func testSpreadAndSignificance() {
        let a = Spread([1, 2, 3, 4])
        XCTAssertEqual(a.mean, 2.5)
        XCTAssertEqual(a.sd, (5.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(a.n, 4)
        XCTAssertEqual(Spread([7]).sd, 0)
        XCTAssertFalse(Spread([7]).differs(from: Spread([9])).significant, "one seed says nothing about spread")
        // Clearly apart vs overlapping (Welch's t at 5%).
        XCTAssertTrue(Spread([10, 10.1, 9.9]).differs(from: Spread([11, 11.1, 10.9])).significant)
        XCTAssertFalse(Spread([10, 11, 9]).differs(from: Spread([10.5, 11.5, 9.5])).significant)
        XCTAssertEqual(Spread([0, 1]).differs(from: Spread([0, 1])).t, 0)
        // At the edge: equal sds, n = 3 each gives df = 4, critical t 2.776. t = d / sqrt(2 s^2 / 3).
        let s = 1.0, se = (2 * s * s / 3).squareRoot()
        XCTAssertTrue(Spread([-1, 0, 1]).differs(from: Spread([-1, 0, 1].map { $0 + 2.80 * se })).significant)
        XCTAssertFalse(Spread([-1, 0, 1]).differs(from: Spread([-1, 0, 1].map { $0 + 2.75 * se })).significant)
        XCTAssertEqual(Spread([1, 2]).formatted(digits: 2), "1.50 ± 0.71")
    }

    /// The power-law fit recovers a known exponent, coefficient and R² = 1 on exact data, and a lower R² on noisy data.
    func testPowerLawFit() throws {
        let x = [1e5, 3e5, 1e6, 3e6, 1e7]
        let fit = try XCTUnwrap(PowerLawFit(x: x, y: x.map { 40 * pow($0, -0.076) }))
        XCTAssertEqual(fit.exponent, -0.076, accuracy: 1e-12)
        XCTAssertEqual(fit.coefficient, 40, accuracy: 1e-9)
        XCTAssertEqual(fit.rSquared, 1, accuracy: 1e-12)
        let noisy = try XCTUnwrap(PowerLawFit(x: x, y: zip(x, [1.05, 0.97, 1.02, 0.95, 1.03]).map { 40 * pow($0.0, -0.3) * $0.1 }))
        XCTAssertEqual(noisy.exponent, -0.3, accuracy: 0.02)
        XCTAssertLessThan(noisy.rSquared, 1)
        XCTAssertGreaterThan(noisy.rSquared, 0.9)
        XCTAssertNil(PowerLawFit(x: [1, 1], y: [2, 3]))
        XCTAssertNil(PowerLawFit(x: [1, -2], y: [2, 3]))
    }

    /// The SVG is well-formed XML with the title, axis labels, one bar per category, error bars and a legend.
    func testSVGWriter() throws {
        var p = Plot(title: "accuracy <per> setting", xLabel: "setting", yLabel: "top-1")
        p.categories = ["baseline", "top-k off", "cfg 3"]
        p.series = [
            Plot.Series(name: "seed mean", x: [0, 1, 2], y: [0.9, 0.8, 0.95], yError: [0.01, 0.02, 0], mark: .bars),
            Plot.Series(name: "other", x: [0, 1, 2], y: [0.5, 0.6, 0.7], mark: .bars),
        ]
        let svg = p.svg()
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "well-formed XML")
        XCTAssertTrue(svg.contains("accuracy &lt;per&gt; setting"))
        XCTAssertEqual(svg.components(separatedBy: "fill-opacity=\"0.8\"").count - 1, 6, "one bar per category and series")
        XCTAssertEqual(svg.components(separatedBy: "stroke=\"#222222\"").count - 1, 6, "error bars (3 strokes) where the error is > 0")
        for s in ["top-k off", "seed mean", "other", "top-1"] { XCTAssertTrue(svg.contains(s), s) }
        // Log axes: ticks at the decades, and at 2x and 5x over two decades or less.
        var q = Plot(title: "t", xLabel: "x", yLabel: "y")
        q.xScale = .log
        q.series = [Plot.Series(name: "s", x: [1, 10, 100], y: [1, 2, 3], mark: .line)]
        let s2 = q.svg()
        XCTAssertTrue(XMLParser(data: Data(s2.utf8)).parse())
        for t in [">1<", ">10<", ">100<", ">2<", ">50<"] { XCTAssertTrue(s2.contains(t), t) }
        // Over more than two decades, the decades alone.
        q.series = [Plot.Series(name: "s", x: [1, 1e3, 1e5], y: [1, 2, 3], mark: .line)]
        let s3 = q.svg()
        for t in [">1000<", ">1e+05<"] { XCTAssertTrue(s3.contains(t), "\(t) in the decade ticks") }
        XCTAssertFalse(s3.contains(">200<"), "no 2x ticks over five decades")
        // A narrow range (a loss from 5.1 to 5.4) keeps its own span (not 1 to 10) and reads like a linear axis.
        q.yScale = .log
        q.series = [Plot.Series(name: "s", x: [1, 10, 100], y: [5.4, 5.25, 5.1], mark: .line)]
        let s4 = q.svg()
        for t in [">5<", ">5.2<", ">5.4<", ">5.6<"] { XCTAssertTrue(s4.contains(t), "\(t) on a narrow log axis") }
        // Explicit x ticks (the rejection plot's candidate counts) replace the computed ones.
        var r = Plot(title: "t", xLabel: "candidates", yLabel: "y")
        r.xScale = .log
        r.xTicks = [1, 2, 4, 8]
        r.series = [Plot.Series(name: "s", x: [1, 2, 4, 8], y: [0.9, 0.94, 0.98, 0.99], mark: .line)]
        let s5 = r.svg()
        for t in [">1<", ">2<", ">4<", ">8<"] { XCTAssertTrue(s5.contains(t), "\(t) among the explicit ticks") }
        XCTAssertFalse(s5.contains(">5<"), "no computed 5x tick")
        // The raster back end draws the same layout: the bars' colour where the first bar stands, white outside.
        let img = p.image(scale: 1)
        XCTAssertEqual(img.width, 640)
        XCTAssertEqual(img.height, 420)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(img.pixels[((y * img.width + x) * 3)..<((y * img.width + x) * 3 + 3)]) }
        XCTAssertEqual(pixel(2, 2), [255, 255, 255])
        let dark = (0..<img.width * img.height).filter {
            img.pixels[$0 * 3] < 80 && img.pixels[$0 * 3 + 1] < 80 && img.pixels[$0 * 3 + 2] < 80
        }
        XCTAssertGreaterThan(dark.count, 500, "text and axes are drawn")
    }
}

/// The real studies' plans on the built-in models: unique cells, dependencies before dependents, every knob once.
final class StudyPlanTests: XCTestCase {
    func testEveryStudyPlan() throws {
        for budget in Budget.allCases {
            var o = Studies.Options()
            o.budget = budget
            for name in Studies.all.map(\.name) {
                let cells = try Studies.make(name, o).cells()
                XCTAssertEqual(Set(cells.map(\.hash)).count, cells.count, "\(name): every cell is distinct")
                for (i, c) in cells.enumerated() {
                    for need in c.needs {
                        let j = try XCTUnwrap(cells.firstIndex { $0.hash == need })
                        XCTAssertLessThan(j, i, "\(name): a cell comes after the cells it needs")
                    }
                }
                let seeds = name == "scaling" ? (budget == .small ? 1 : 2) : 3
                let rows = Dictionary(grouping: cells.filter { $0.kind == "sample" }, by: \.group)
                XCTAssertTrue(rows.values.allSatisfy { $0.count == seeds }, "\(name): every row has \(seeds) seeds")
            }
            let knobs = try Studies.make("knobs", o).cells()
            XCTAssertEqual(knobs.filter { $0.inputs["candidates"] != "1" && $0.kind == "sample" }.count, 3 * (budget == .small ? 2 : 3))
            XCTAssertTrue(knobs.filter { $0.inputs["candidates"] == "8" }.allSatisfy { $0.needs.count == 1 })
            // FastVAR rows name their ratios; every other cell has no such input (their hashes predate the row).
            XCTAssertEqual(knobs.filter { $0.inputs["fast_ratios"] == "0.4,0.5" }.count, 3)
            XCTAssertTrue(knobs.filter { $0.inputs["fast_ratios"] != nil }.allSatisfy { $0.group.hasPrefix("FastVAR") })
        }
        assertThrows(try Studies.make("scaling-laws", Studies.Options()), ["unknown study", "knobs"])
    }
}

/// The CLI wiring: list, plan, refusals with a one-line reason.
final class LabCLITests: XCTestCase {
    func testLabCommands() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("labcli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let list = try VarlabCLI.run(["lab", "list"])
        XCTAssertEqual(list.status, 0, list.err)
        XCTAssertTrue(["knobs", "compare", "ablations", "scaling"].allSatisfy(list.out.contains), list.out)
        let plan = try VarlabCLI.run(["lab", "plan", "knobs", "--dir", dir])
        XCTAssertEqual(plan.status, 0, plan.err)
        XCTAssertTrue(plan.out.contains("0 of 38 cells done"), plan.out)
        XCTAssertTrue(plan.out.contains("rejection 4 candidates") && !plan.out.contains("rejection 8"), plan.out)
        for (args, needle) in [
            (["lab", "run", "knobs", "--dir", dir, "--cell", "99"], "--cell 99 is outside 0..<38"),
            (["lab", "run", "knobs", "--dir", dir, "--cell", "34"], "needs cell 1 first"),
            (["lab", "run", "gans", "--dir", dir], "unknown study 'gans'"),
            (["lab", "run", "all", "--dir", dir, "--cell", "3"], "--cell needs one study"),
            (["lab", "plan", "knobs", "--dir", dir, "--budget", "huge"], "--budget"),
            (["lab", "plan", "compare", "--dir", dir, "--checkpoint", "a", "--vae", "b"], "--dit-checkpoint (DiT) and --vae"),
            (["lab", "plan", "ablations", "--dir", dir, "--data", "imagefolder:" + dir], "needs --judge"),
            (["lab", "plan", "ablations", "--dir", dir, "--data", "folder"], "--data must be 'toy' or 'imagefolder:PATH'"),
            (
                [
                    "lab", "plan", "ablations", "--dir", dir, "--data", "imagefolder:/nonexistent/folder", "--judge",
                    Fixtures.path("eval/manifest.json"),
                ],
                "imagefolder:/nonexistent/folder: not a readable folder"
            ),
            (["lab", "plan", "scaling", "--dir", dir, "--inception", "/nonexistent/pt_inception.pth"], "/nonexistent/pt_inception.pth"),
        ] {
            let r = try VarlabCLI.run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.err.contains(needle), "\(args): \(r.err)")
        }
    }
}
