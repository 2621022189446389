import Foundation
import Tensor

/// How tokens are drawn from logits (VAR's `sample_with_top_k_top_p_` plus temperature and the Gumbel
/// "more smooth" option). Defaults are the official FID settings.
public struct TokenSamplingOptions: Sendable, Equatable {
    /// Keep logits >= the k-th largest (ties at the k-th value kept); 0 disables.
    public var topK: Int = 900
    /// Nucleus: drop the smallest tokens whose cumulative probability is <= 1 - topP (the largest always kept); 0 disables.
    public var topP: Double = 0.96
    /// Logits are divided by this before masking (1 = the official behaviour, which has no temperature).
    public var temperature: Float = 1
    /// Official `more_smooth`: the next-scale input uses a Gumbel-softmax mixture of code vectors instead of the drawn code.
    public var moreSmooth: Bool = false
    /// How the guidance weight varies over the steps: the official linear ramp, or `cfg` at every step.
    public var guidanceSchedule: GuidanceSchedule = .linear

    public init(
        topK: Int = 900, topP: Double = 0.96, temperature: Float = 1, moreSmooth: Bool = false, guidanceSchedule: GuidanceSchedule = .linear
    ) {
        self.topK = topK; self.topP = topP; self.temperature = temperature; self.moreSmooth = moreSmooth
        self.guidanceSchedule = guidanceSchedule
    }

    /// Greedy decoding (top-k 1 is argmax; ties at the maximum are kept and drawn among, as the official code does).
    public static let greedy = TokenSamplingOptions(topK: 1, topP: 0)

    public func validate() throws {
        guard topK >= 0 else { throw SamplingError.badOption("--top-k must be >= 0, got \(topK)") }
        guard topP >= 0 && topP <= 1 && !topP.isNaN else { throw SamplingError.badOption("--top-p must be in [0, 1], got \(topP)") }
        guard temperature > 0 && temperature.isFinite else {
            throw SamplingError.badOption("--temperature must be > 0, got \(temperature)")
        }
    }
}

/// Token-sampling settings a request may leave unset (nil): `resolved` takes each unset one from what the checkpoint
/// recorded (`varlab.sample_*`), else from `TokenSamplingOptions`' defaults (the official FID settings). A new option
/// is a field here and in `TokenSamplingOptions`, plus its step in `TokenSampling.processLogits`.
public struct TokenSamplingOverrides: Sendable, Equatable {
    public var topK: Int?
    public var topP: Double?
    public var temperature: Float?
    public var moreSmooth: Bool?
    public var guidanceSchedule: GuidanceSchedule?

    public init(
        topK: Int? = nil, topP: Double? = nil, temperature: Float? = nil, moreSmooth: Bool? = nil, guidanceSchedule: GuidanceSchedule? = nil
    ) {
        self.topK = topK; self.topP = topP; self.temperature = temperature; self.moreSmooth = moreSmooth
        self.guidanceSchedule = guidanceSchedule
    }

    public func resolved(recorded: TokenSamplingOverrides = TokenSamplingOverrides()) -> TokenSamplingOptions {
        let d = TokenSamplingOptions()
        return TokenSamplingOptions(
            topK: topK ?? recorded.topK ?? d.topK, topP: topP ?? recorded.topP ?? d.topP,
            temperature: temperature ?? recorded.temperature ?? d.temperature,
            moreSmooth: moreSmooth ?? recorded.moreSmooth ?? d.moreSmooth,
            guidanceSchedule: guidanceSchedule ?? recorded.guidanceSchedule ?? d.guidanceSchedule)
    }

    /// Checks the fields that are set (a `SamplingError` naming the flag).
    public func validate() throws { try resolved().validate() }
}

/// The guidance weight over the steps of a token sampler (VAR's official code ramps it linearly from 0).
public enum GuidanceSchedule: String, Sendable, Codable, CaseIterable {
    case linear, constant
}

public enum SamplingError: Error, CustomStringConvertible {
    case badOption(String)
    public var description: String {
        switch self {
        case .badOption(let s): return s
        }
    }
}

public enum TokenSampling {
    /// Masks one row of V logits in place exactly like the official `sample_with_top_k_top_p_`:
    /// 1. top-k: every logit < the k-th largest value becomes -inf (so ties with the k-th value survive);
    /// 2. top-p on the already top-k-masked row: sort ascending, softmax, cumulative sum (accumulated in double as
    ///    PyTorch's CPU cumsum does), remove positions with cumsum <= 1 - top_p (compared in float32), never the
    ///    largest. Sorting ties are broken by index (stable), where PyTorch's order is unspecified.
    public static func mask(_ row: UnsafeMutablePointer<Float>, count v: Int, topK: Int, topP: Double) {
        if topK > 0 && topK < v {
            let kth = kthLargest(row, count: v, k: topK)
            for i in 0..<v where row[i] < kth { row[i] = -.infinity }
        }
        if topP > 0 {
            // Entries already at -inf have probability 0: they sort first and stay removed, so only the finite
            // survivors (<= k after top-k) need sorting.
            let order = (0..<v).filter { row[$0] > -.infinity }.sorted { row[$0] < row[$1] || (row[$0] == row[$1] && $0 < $1) }
            let n = order.count
            if n == 0 { return }
            var probs = order.map { row[$0] }
            probs.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, n) }
            let threshold = Float(1 - topP)
            var cum = 0.0
            for (pos, i) in order.enumerated() where pos < n - 1 {
                cum += Double(probs[pos])
                if Float(cum) <= threshold { row[i] = -.infinity } else { break }
            }
        }
    }

    /// The k-th largest of v values: element v - k of the ascending order, found by quickselect (Hoare partition,
    /// median-of-three pivot) in O(V) instead of a full sort. The value is the sort's, so the mask is the same bits;
    /// a row with NaN (no order) keeps the full sort.
    public static func kthLargest(_ row: UnsafePointer<Float>, count v: Int, k: Int) -> Float {
        var a = Array(UnsafeBufferPointer(start: row, count: v))
        let target = v - k
        if a.contains(where: { $0.isNaN }) {
            a.sort()
            return a[target]
        }
        var lo = 0, hi = v - 1
        while lo < hi {
            let (x, y, z) = (a[lo], a[(lo + hi) / 2], a[hi])
            let pivot = max(min(x, y), min(max(x, y), z))
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // [lo, j] <= pivot <= [i, hi]; anything strictly between j and i equals the pivot.
            if target <= j { hi = j } else if target >= i { lo = i } else { return a[target] }
        }
        return a[target]
    }

    /// Draws one token from a masked row: softmax, then inverse-CDF with one uniform from `rng`.
    public static func draw(_ row: UnsafePointer<Float>, count v: Int, rng: inout PhiloxRandom) -> Int {
        var p = Array(UnsafeBufferPointer(start: row, count: v))
        p.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, v) }
        return p.withUnsafeBufferPointer { rng.categorical($0) }
    }

    /// Official `gumbel_softmax_with_rng(logits * (1 + ratio), tau, hard=False)`: softmax((x + g) / tau) with
    /// g = -log(Exponential(1)) drawn from `rng` (one per entry); returns the V mixture weights.
    public static func gumbelSoftmax(_ row: UnsafePointer<Float>, count v: Int, ratio: Float, rng: inout PhiloxRandom) -> [Float] {
        let tau = max(0.27 * (1 - ratio * 0.95), 0.005)
        var y = [Float](repeating: 0, count: v)
        for i in 0..<v {
            let g = -logf(rng.exponential())
            y[i] = (row[i] * (1 + ratio) + g) / tau
        }
        y.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, v) }
        return y
    }

    /// Classifier-free guidance at step si of SN: the official ramp t = cfg * si / (SN - 1), or `cfg` at every
    /// step; guided = (1 + t) * cond - t * uncond (float32, t rounded to float32 like a Python scalar on a tensor).
    public static func guidanceWeight(cfg: Double, scale si: Int, scales sn: Int, schedule: GuidanceSchedule = .linear) -> Double {
        switch schedule {
        case .linear: return sn > 1 ? cfg * (Double(si) / Double(sn - 1)) : 0
        case .constant: return cfg
        }
    }

    public static func guide(
        cond: UnsafePointer<Float>, uncond: UnsafePointer<Float>, count n: Int, t: Double,
        into out: UnsafeMutablePointer<Float>
    ) {
        let a = Float(1 + t), b = Float(t)
        for i in 0..<n { out[i] = a * cond[i] - b * uncond[i] }
    }

    /// The logit chain every token model's draws go through, in the official order: classifier-free guidance
    /// with weight `t` (when `guided`: rows of sample s at batch s, its unconditional twin at batch s + B), then
    /// the temperature, then the top-k / top-p masks. `raw` is [B or 2B, len, V]; the rows of positions
    /// `positions` come back as [B, positions.count, V]. `record` sees the guided, tempered rows before masking.
    public static func processLogits(
        _ raw: Tensor, batch b: Int, positions: Range<Int>, guided: Bool, t: Double,
        options: TokenSamplingOptions, record: ((Tensor) -> Void)? = nil
    ) -> [Float] {
        let len = raw.shape[1], v = raw.shape[2], n = positions.count
        precondition(
            raw.shape[0] == (guided ? 2 * b : b) && positions.upperBound <= len,
            "logits \(raw.shape) for batch \(b), positions \(positions)")
        var rows = [Float](repeating: 0, count: b * n * v)
        raw.data.withUnsafeBufferPointer { pr in
            rows.withUnsafeMutableBufferPointer { pl in
                for s in 0..<b {
                    let cond = pr.baseAddress! + (s * len + positions.lowerBound) * v
                    let out = pl.baseAddress! + s * n * v
                    if guided {
                        guide(cond: cond, uncond: cond + b * len * v, count: n * v, t: t, into: out)
                    } else {
                        out.update(from: cond, count: n * v)
                    }
                }
            }
        }
        if options.temperature != 1 { let tt = options.temperature; for i in 0..<rows.count { rows[i] /= tt } }
        record?(Tensor(shape: [b, n, v], data: rows))
        // Masks are deterministic and independent per row: computed in parallel; draws stay per sample.
        let (topK, topP) = (options.topK, options.topP)
        rows.withUnsafeMutableBufferPointer { pl in
            let base = UnsafeSendable(UnsafePointer(pl.baseAddress!))
            Parallel.forEach(b * n) { r in mask(UnsafeMutablePointer(mutating: base.p) + r * v, count: v, topK: topK, topP: topP) }
        }
        return rows
    }
}
