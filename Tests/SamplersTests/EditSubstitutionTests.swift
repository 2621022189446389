import Foundation
import ModelIO
import Samplers
import TestSupport
import XCTest

/// The substitution step and the RePaint schedule, without running a model.
final class EditSubstitutionTests: XCTestCase {
    /// For every fixture run: official sampled tokens -> our substitution -> official merged tokens, exactly.
    func testTokenSubstitutionMatchesOfficial() throws {
        let manifest = try Fixtures.json("var/manifest.json")
        guard let edit = (manifest["meta"] as? [String: Any])?["edit"] as? [String: Any],
            let pns = edit["patch_nums"] as? [Int], let runs = edit["runs"] as? [String: Any]
        else { throw XCTSkip("no meta.edit") }
        for (name, v) in runs {
            let r = try XCTUnwrap(v as? [String: Any])
            let box = try XCTUnwrap(r["box_y0x0y1x1"] as? [Double])
            let st = try Fixtures.safetensors("var/edit_\(name)_greedy_io.safetensors")
            let mask = try TokenEditMask.box(
                gridSize: pns.last!, y0: box[0], x0: box[1], y1: box[2], x1: box[3],
                inpainting: try XCTUnwrap(r["inpainting"] as? Bool))
            let b = try st.intTensor("labels").values.count
            var gt = [[[Int]]](repeating: [], count: b)
            for si in pns.indices {
                let g = try st.intTensor("gt_tokens_scale\(si)").values.map { Int($0) }
                let n = pns[si] * pns[si]
                for i in 0..<b { gt[i].append(Array(g[(i * n)..<((i + 1) * n)])) }
            }
            let editor = try VARTokenEditor(mask: mask, patchNums: pns, groundTruth: gt)
            for si in pns.indices {
                var flat = try st.intTensor("sampled_tokens_scale\(si)").values.map { Int($0) }
                try editor.substitute(scale: si, flat: &flat)
                XCTAssertEqual(flat.map(Int64.init), try st.intTensor("tokens_scale\(si)").values, "\(name) scale \(si)")
            }
        }
    }

    func testRePaintScheduleShape() {
        let t = 50, l = 10, n = 10
        let ts = RePaintSchedule.times(steps: t, jumpLength: l, jumpNSample: n)
        XCTAssertEqual(ts.first, t - 1)
        XCTAssertEqual(ts.last, -1)
        for (a, b) in zip(ts, ts.dropFirst()) { XCTAssertEqual(abs(a - b), 1) }
        // jump points 0, 10, 20, 30 (< T - L = 40), each (n - 1) times L steps back up
        let jumpPoints = Array(stride(from: 0, to: t - l, by: l)).count
        let ups = zip(ts, ts.dropFirst()).filter { $1 > $0 }.count
        XCTAssertEqual(ups, jumpPoints * (n - 1) * l)
        XCTAssertEqual(RePaintSchedule.denoisingSteps(ts), t + ups)
        XCTAssertEqual(RePaintSchedule.times(steps: 5, jumpLength: 10, jumpNSample: 10), [4, 3, 2, 1, 0, -1])
        XCTAssertEqual(RePaintSchedule.plain(steps: 3), [2, 1, 0, -1])
        // a jump from t=0 goes back up to L, then descends again to 0 before the end
        let small = RePaintSchedule.times(steps: 4, jumpLength: 2, jumpNSample: 2)
        XCTAssertEqual(small, [3, 2, 1, 0, 1, 2, 1, 0, -1])
        XCTAssertEqual(small.filter { $0 == 0 }.count, 2)
    }
}
