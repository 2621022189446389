import Foundation
import Generation
import ImageIO
import ModelIO
import Samplers
import Tensor
import Training
import VAR

/// `varlab lab run knobs`: which sampling knobs of a trained VAR matter (claims 3, 4, 7 and 9 of the lab issue):
/// top-k on / off, guidance 0 / 1 / 1.5 / 3 with the official linear ramp and constant, more-smooth, temperature
/// 0.8 / 1.0 / 1.2 (the suggested remedy for lost diversity) and classifier rejection sampling with 1 / 2 / 4 / 8
/// candidates, each over several sampling seeds. The baseline is the checkpoint's recommended settings; every other
/// row changes one knob. The rejection scorer is a second toy classifier trained with another seed, so the judge
/// does not grade its own choices.
public struct KnobStudy: Study {
    public let name = "knobs"
    public let budget: Budget
    let checkpoint: String
    let vae: String
    let judge: LabJudge
    let files: [String: String]
    let base: TokenSamplingOptions
    let baseCFG: Double

    public var n: Int { budget == .small ? 300 : 500 }
    public var seeds: [UInt64] { [0, 1, 2] }
    /// Rejection sampling's candidates per image (8 costs eight sample sets per seed: full budget only).
    var candidateCounts: [Int] { budget == .small ? [2, 4] : [2, 4, 8] }
    var scorerSteps: Int { budget == .small ? 600 : 1200 }
    static let dataSeed: UInt64 = 0

    /// `checkpoint` / `vae` nil: the built-in toy VAR and its tokenizer.
    public init(budget: Budget, checkpoint: String? = nil, vae: String? = nil, judge: LabJudge) throws {
        self.budget = budget
        var s = GenerationSettings(family: VARFamily.name)
        s.checkpoint = checkpoint
        s.vae = vae
        let f = try s.files()
        self.checkpoint = f.checkpoint
        self.vae = f.vae
        self.judge = judge
        files = [
            "checkpoint_sha256": try LabFiles.sha256(self.checkpoint), "vae_sha256": try LabFiles.sha256(self.vae),
        ].merging(judge.inputs) { $1 }
        let d = VARSampleDefaults(path: self.checkpoint)
        base = TokenSamplingOverrides().resolved(recorded: d.tokens)
        baseCFG = d.cfg ?? 1.5
    }

    /// One row of the study: a knob group ("guidance") and the settings that differ from the baseline.
    struct Knob {
        let group: String
        let name: String
        var options: TokenSamplingOptions
        var cfg: Double
        var candidates = 1
        /// FastVAR's cached token pruning at its default ratios (opt-in speed-up).
        var fast = false
    }

    var knobs: [Knob] {
        let b = Knob(group: "baseline", name: "baseline", options: base, cfg: baseCFG)
        func vary(_ group: String, _ name: String, _ change: (inout Knob) -> Void) -> Knob {
            var k = Knob(group: group, name: name, options: base, cfg: baseCFG)
            change(&k)
            return k
        }
        var out = [b]
        out.append(
            base.topK > 0
                ? vary("top-k", "top-k off", { $0.options.topK = 0 }) : vary("top-k", "top-k 900", { $0.options.topK = 900 }))
        for c in [0.0, 1, 1.5, 3] where c != baseCFG { out.append(vary("guidance", String(format: "cfg %g", c), { $0.cfg = c })) }
        out.append(
            vary("guidance", String(format: "cfg %g constant", baseCFG)) {
                $0.options.guidanceSchedule = base.guidanceSchedule == .linear ? .constant : .linear
            })
        out.append(
            vary("more-smooth", base.moreSmooth ? "more-smooth off" : "more-smooth on", { $0.options.moreSmooth = !base.moreSmooth }))
        for t: Float in [0.8, 1.2] {
            out.append(vary("temperature", String(format: "temperature %.1f", t), { $0.options.temperature = t }))
        }
        for k in candidateCounts { out.append(vary("rejection", "rejection \(k) candidates", { $0.candidates = k })) }
        out.append(
            vary(
                "fastvar", "FastVAR pruning " + TokenPruning().dropRatios.map { String(format: "%g", $0) }.joined(separator: "/"),
                { $0.fast = true }))
        return out
    }

    var realCell: Cell {
        Cell(
            kind: "real", group: "real held-out images", seed: 0,
            inputs: judge.inputs.merging(["n": "\(n)", "data_seed": "\(Self.dataSeed)"]) { $1 })
    }

    var scorerCell: Cell {
        Cell(kind: "train-classifier", group: "rejection scorer", seed: 1, inputs: ["steps": "\(scorerSteps)", "gray_prob": "0.5"])
    }

    public func cells() throws -> [Cell] {
        var out = [realCell, scorerCell]
        for k in knobs {
            for seed in seeds {
                var inputs = files
                inputs["n"] = "\(n)"
                inputs["data_seed"] = "\(Self.dataSeed)"
                inputs["cfg"] = "\(k.cfg)"
                inputs["cfg_schedule"] = k.options.guidanceSchedule.rawValue
                inputs["top_k"] = "\(k.options.topK)"
                inputs["top_p"] = "\(k.options.topP)"
                inputs["temperature"] = "\(k.options.temperature)"
                inputs["more_smooth"] = "\(k.options.moreSmooth)"
                inputs["candidates"] = "\(k.candidates)"
                if k.fast { inputs["fast_ratios"] = TokenPruning().dropRatios.map { "\($0)" }.joined(separator: ",") }
                out.append(
                    Cell(kind: "sample", group: k.name, seed: seed, inputs: inputs, needs: k.candidates > 1 ? [scorerCell.hash] : []))
            }
        }
        return out
    }

    public func run(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        switch cell.kind {
        case "real":
            return (try judge.quality(n: n).realMeasures(), [:])
        case "train-classifier":
            let folder = try context.outputFolder(cell)
            let path = (folder.absolute as NSString).appendingPathComponent("scorer.safetensors")
            let acc = try LabTraining.classifier(steps: scorerSteps, seed: cell.seed, grayProbability: 0.5, output: path, log: context.log)
            return (["held_out_accuracy": acc], ["checkpoint": folder.relative + "/scorer.safetensors"])
        case "sample":
            return try sample(cell, context: context)
        default:
            throw LabError("study '\(name)' has no cell kind '\(cell.kind)'")
        }
    }

    func sample(_ cell: Cell, context: LabContext) throws -> (metrics: [String: Double], outputs: [String: String]) {
        let i = cell.inputs
        var s = GenerationSettings(family: VARFamily.name)
        s.checkpoint = checkpoint
        s.vae = vae
        s.cfg = Double(i["cfg"]!)
        s.tokens = TokenSamplingOverrides(
            topK: Int(i["top_k"]!), topP: Double(i["top_p"]!), temperature: Float(i["temperature"]!),
            moreSmooth: i["more_smooth"] == "true", guidanceSchedule: GuidanceSchedule(rawValue: i["cfg_schedule"]!))
        s.candidates = Int(i["candidates"]!) ?? 1
        if let r = i["fast_ratios"] { s.pruning = TokenPruning(dropRatios: r.split(separator: ",").compactMap { Double($0) }) }
        if s.candidates > 1 {
            guard let scorer = context.results[scorerCell.hash]?.outputs["checkpoint"] else {
                throw LabError("the rejection scorer is not trained")
            }
            s.scorer = context.absolute(scorer)
        }
        let generator = try s.makeGenerator()
        return try LabSampling.judgedRow(
            generator, judge: try judge.quality(n: n), cell: cell, grid: cell.seed == seeds[0], context: context)
    }

    /// Rejection sampling draws `candidates` sets.
    public func relativeCost(_ cell: Cell) -> Double { Double(cell.inputs["candidates"].flatMap(Int.init) ?? 1) }

    public func report(_ results: [CellResult], pending: [Cell], context: LabContext) throws -> StudyReport {
        try KnobReport(study: self, results: results, pending: pending, context: context).render()
    }
}
