import Foundation

/// A quantity measured over several seeds: mean, sample standard deviation and count. The report prints
/// "mean ± sd (n)" and marks a difference as real only when it exceeds the spread.
public struct Spread: Codable, Sendable, Equatable {
    public let mean: Double
    /// Sample standard deviation (n - 1 in the denominator); 0 for a single value.
    public let sd: Double
    public let n: Int

    public init(_ values: [Double]) {
        let v = values.filter { $0.isFinite }
        let m = v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count)
        n = v.count
        mean = m
        sd = v.count > 1 ? sqrt(v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)) : 0
    }

    /// Standard error of the mean.
    public var standardError: Double { n > 0 ? sd / sqrt(Double(n)) : .nan }

    /// Welch's t statistic of the difference `self - other`, and whether it is significant at about 5%: |t| above
    /// the two-sided 97.5% quantile of Student's t at the Welch-Satterthwaite degrees of freedom. Needs n >= 2 on
    /// both sides (else never significant: one seed says nothing about spread).
    public func differs(from other: Spread) -> (t: Double, significant: Bool) {
        guard n >= 2, other.n >= 2 else { return (.nan, false) }
        let va = sd * sd / Double(n), vb = other.sd * other.sd / Double(other.n)
        let se = sqrt(va + vb)
        guard se > 0 else { return (mean == other.mean ? 0 : .infinity, mean != other.mean) }
        let t = (mean - other.mean) / se
        let df = (va + vb) * (va + vb) / (va * va / Double(n - 1) + vb * vb / Double(other.n - 1))
        return (t, abs(t) > Self.studentT975(df))
    }

    /// Two-sided 5% critical value of Student's t with `df` degrees of freedom (table for small df, then the
    /// Cornish-Fisher expansion around the normal quantile; within 0.5% everywhere).
    static func studentT975(_ df: Double) -> Double {
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]
        guard df.isFinite else { return 1.959964 }
        if df < 1 { return table[0] }
        if df <= 10 {
            let lo = Int(df.rounded(.down)), hi = min(10, lo + 1)
            let f = df - Double(lo)
            return table[lo - 1] * (1 - f) + table[hi - 1] * f
        }
        let z = 1.959964
        let g1 = (z * z * z + z) / 4
        let g2 = (5 * pow(z, 5) + 16 * z * z * z + 3 * z) / 96
        let g3 = (3 * pow(z, 7) + 19 * pow(z, 5) + 17 * z * z * z - 15 * z) / 384
        return z + g1 / df + g2 / (df * df) + g3 / (df * df * df)
    }

    /// "12.3 ± 0.4" with a precision that suits the value.
    public func formatted(digits: Int = 3) -> String {
        guard mean.isFinite else { return "-" }
        let f = "%.\(digits)f"
        return n > 1 ? String(format: f + " ± " + f, mean, sd) : String(format: f, mean)
    }
}

/// y = a x^b fitted by least squares on log y against log x, with R² of that linear fit (a scaling law).
public struct PowerLawFit: Codable, Sendable, Equatable {
    public let coefficient: Double
    public let exponent: Double
    public let rSquared: Double
    public let points: Int

    /// nil with fewer than two points with positive x and y, or when every x is equal.
    public init?(x: [Double], y: [Double]) {
        let pts = zip(x, y).filter { $0.0 > 0 && $0.1 > 0 && $0.0.isFinite && $0.1.isFinite }.map { (log($0.0), log($0.1)) }
        guard pts.count >= 2 else { return nil }
        let n = Double(pts.count)
        let mx = pts.map(\.0).reduce(0, +) / n, my = pts.map(\.1).reduce(0, +) / n
        let sxx = pts.map { ($0.0 - mx) * ($0.0 - mx) }.reduce(0, +)
        let sxy = pts.map { ($0.0 - mx) * ($0.1 - my) }.reduce(0, +)
        let syy = pts.map { ($0.1 - my) * ($0.1 - my) }.reduce(0, +)
        guard sxx > 0 else { return nil }
        exponent = sxy / sxx
        coefficient = exp(my - exponent * mx)
        rSquared = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1
        points = pts.count
    }

    public func callAsFunction(_ x: Double) -> Double { coefficient * pow(x, exponent) }
}
