import Foundation

extension EvalReport {
    /// The report as an aligned text table: metric, value, sample and reference counts, network, preprocessing.
    public func table() -> String {
        let r = self
        let header = ["metric", "value", "N samples", "N ref", "network", "preprocessing"]
        let rows = r.values.map { v -> [String] in
            let pre = v.preprocessing ?? (v.network.hasPrefix("ResNet") ? "resize 256, crop 224" : r.preprocessing)
            return [
                v.name, String(format: "%.4f", v.value), "\(v.samples)",
                v.referenceCountUnknown ? "unknown" : v.reference.map { "\($0)" } ?? "-", v.network, pre,
            ]
        }
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, s in
                c == 1 || c == 2 || c == 3
                    ? String(repeating: " ", count: widths[c] - s.count) + s
                    : s + String(repeating: " ", count: widths[c] - s.count)
            }.joined(separator: "  ")
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
            .joined(separator: "\n")
    }

    /// The report as JSON (sorted keys), with the inputs it was computed from and per-class accuracy.
    public func json(samples: [String], reference: String, inception: String, classifier: String?) throws -> Data {
        let r = self
        var obj: [String: Any] = [
            "samples": samples, "reference": reference, "inception": inception, "preprocessing": r.preprocessing,
            "metrics": r.values.map { v -> [String: Any] in
                var m: [String: Any] = ["name": v.name, "value": v.value, "n_samples": v.samples, "network": v.network]
                if let n = v.reference { m["n_reference"] = n } else if v.referenceCountUnknown { m["n_reference"] = "unknown" }
                if let p = v.preprocessing { m["preprocessing"] = p }
                return m
            },
            "notes": r.notes,
        ]
        if let classifier { obj["classifier"] = classifier }
        if !r.perClass.isEmpty {
            obj["per_class_top1"] = r.perClass.map { c -> [String: Any] in
                [
                    "class": c.label, "n": c.total, "correct": c.correct, "accuracy": c.accuracy,
                    "predicted_instead": Dictionary(uniqueKeysWithValues: c.mistakes.map { (String($0.key), $0.value) }),
                ]
            }
        }
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }
}
