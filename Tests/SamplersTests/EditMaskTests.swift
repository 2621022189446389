import Foundation
import ModelIO
import Samplers
import TestSupport
import XCTest

/// Keep masks of VAR zero-shot editing against the official notebook (var/edit_*_greedy_io.safetensors).
/// Box, inpainting flag and patch_nums come from var/manifest.json -> meta.edit, never from constants.
final class EditMaskTests: XCTestCase {
    struct Run { let name: String; let file: String; let box: [Double]; let inpainting: Bool; let cells: [Int] }

    func editMeta() throws -> (patchNums: [Int], runs: [Run]) {
        let manifest = try Fixtures.json("var/manifest.json")
        guard let meta = manifest["meta"] as? [String: Any], let edit = meta["edit"] as? [String: Any],
            let pns = edit["patch_nums"] as? [Int], let runs = edit["runs"] as? [String: Any]
        else {
            throw XCTSkip("var/manifest.json has no meta.edit")
        }
        var out: [Run] = []
        for (name, v) in runs.sorted(by: { $0.key < $1.key }) {
            let r = try XCTUnwrap(v as? [String: Any])
            out.append(
                Run(
                    name: name, file: "var/edit_\(name)_greedy_io.safetensors",
                    box: try XCTUnwrap(r["box_y0x0y1x1"] as? [Double]),
                    inpainting: try XCTUnwrap(r["inpainting"] as? Bool),
                    cells: try XCTUnwrap(r["box_cells_r0c0r1c1"] as? [Int])))
        }
        XCTAssertFalse(out.isEmpty)
        return (pns, out)
    }

    func testPythonRoundHalfToEven() {
        XCTAssertEqual(TokenEditMask.pythonRound(0.5), 0)
        XCTAssertEqual(TokenEditMask.pythonRound(1.5), 2)
        XCTAssertEqual(TokenEditMask.pythonRound(2.5), 2)
        XCTAssertEqual(TokenEditMask.pythonRound(4.5), 4)
        XCTAssertEqual(TokenEditMask.pythonRound(0.3 * 4), 1)
        XCTAssertEqual(TokenEditMask.pythonRound(0.7 * 10), 7)
    }

    func testEditMaskBilinearAndKeepMasksMatchOfficial() throws {
        let (pns, runs) = try editMeta()
        for run in runs {
            let st = try Fixtures.safetensors(run.file)
            // The stored float64 box must be the manifest's box (read the raw float64 bytes, not via Float32).
            let raw = try st.rawBytes("box_y0x0y1x1")
            let stored = (0..<4).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
            XCTAssertEqual(stored, run.box, run.name)
            let p = try XCTUnwrap(pns.last)
            let cells = TokenEditMask.boxCells(gridSize: p, y0: run.box[0], x0: run.box[1], y1: run.box[2], x1: run.box[3])
            XCTAssertEqual([cells.r0, cells.c0, cells.r1, cells.c1], run.cells, run.name)
            XCTAssertEqual(
                [cells.r0, cells.c0, cells.r1, cells.c1].map(Int64.init), try st.intTensor("box_cells_r0c0r1c1").values, run.name)

            let mask = try TokenEditMask.box(
                gridSize: p, y0: run.box[0], x0: run.box[1], y1: run.box[2], x1: run.box[3],
                inpainting: run.inpainting)
            let ref = try st.floatTensor("edit_mask", shape: [p, p])
            XCTAssertEqual(mask.values, ref.data, "\(run.name) edit_mask")

            for (si, pn) in pns.enumerated() {
                let bil = try st.floatTensor("keep_mask_bilinear_scale\(si)")
                let batch = bil.shape[0]
                XCTAssertEqual(Array(bil.shape.suffix(2)), [pn, pn])
                let ours = mask.bilinear(to: pn)
                let keepRef = try st.intTensor("keep_mask_scale\(si)").values
                let keep = mask.keep(at: pn)
                for b in 0..<batch {  // the same 2-D mask is used for every image of the batch
                    let refSlice = Array(bil.data[(b * pn * pn)..<((b + 1) * pn * pn)])
                    // bit-exact: compare bit patterns, not values within a tolerance
                    XCTAssertEqual(ours.map(\.bitPattern), refSlice.map(\.bitPattern), "\(run.name) bilinear scale \(si)")
                    XCTAssertEqual(
                        keep.map { Int64($0 ? 1 : 0) }, Array(keepRef[(b * pn * pn)..<((b + 1) * pn * pn)]),
                        "\(run.name) keep scale \(si)")
                }
            }
        }
    }

    /// The README's documented float32 case: P = 16, pn = 13, in-painting box y0=0, x0=0.1, y1=0.5, x1=0.9 gives
    /// 0.500000477 at row 6 (kept) where exact arithmetic gives 1/2 (generated).
    func testFloat32RoundingDecidesKeepBit() throws {
        let mask = try TokenEditMask.box(gridSize: 16, y0: 0, x0: 0.1, y1: 0.5, x1: 0.9, inpainting: true)
        let v = mask.bilinear(to: 13)
        let row6 = Array(v[(6 * 13)..<(7 * 13)])
        XCTAssertTrue(row6.contains(Float(0.500000477)), "\(row6)")
        let keep = mask.keep(at: 13)
        XCTAssertEqual((0..<13).filter { keep[6 * 13 + $0] && v[6 * 13 + $0] < 0.6 }.count, 9)
    }

    func testPn2Le3RuleAndIdentityAtFinalScale() throws {
        let m = try TokenEditMask.box(gridSize: 4, y0: 0.25, x0: 0.25, y1: 0.75, x1: 0.75, inpainting: true)
        XCTAssertEqual(m.bilinear(to: 1), [0])
        XCTAssertEqual(m.keep(at: 1), [true])  // forced by pn*pn <= 3
        XCTAssertEqual(m.bilinear(to: 4), m.values)
        let none = try TokenEditMask.all(size: 4, keep: false)
        XCTAssertEqual(none.keep(at: 2), [false, false, false, false])  // pn = 2 has 4 tokens: not forced
    }

    func testInvalidBoxIsAnError() {
        XCTAssertThrowsError(try TokenEditMask.box(gridSize: 4, y0: -0.1, x0: 0, y1: 0.5, x1: 0.5, inpainting: true))
        XCTAssertThrowsError(try TokenEditMask.box(gridSize: 4, y0: 0, x0: 0, y1: 1.5, x1: 0.5, inpainting: true))
    }
}
