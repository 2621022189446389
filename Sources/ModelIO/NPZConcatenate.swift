import Foundation

/// Joins .npz files with the same keys along axis 0 (e.g. the shards of a 50k sample set into one ADM batch),
/// streaming: only one input array is held in memory at a time. The output is written atomically.
public enum NPZConcatenate {
    public static func run(inputs: [String], to path: String) throws {
        guard let first = inputs.first else { throw CheckpointError.malformed(path: path, reason: "no input .npz files") }
        let files = try inputs.map { try NPZFile(path: $0) }
        let keys = files[0].keys
        var headers: [[NPYHeader]] = []
        for key in keys {
            var hs: [NPYHeader] = []
            for f in files {
                guard f.keys.contains(key) else {
                    throw CheckpointError.missingKey(path: f.path, key: key, available: f.keys.count)
                }
                let h = try f.header(key)
                let h0 = hs.first ?? h
                guard h.dtype == h0.dtype, !h.shape.isEmpty, Array(h.shape.dropFirst()) == Array(h0.shape.dropFirst()) else {
                    throw NPYError.malformed(
                        source: "\(f.path)[\(key)]",
                        reason: "shape \(h.shape) \(h.dtype.rawValue) does not stack with \(h0.shape) \(h0.dtype.rawValue) of \(first)")
                }
                hs.append(h)
            }
            headers.append(hs)
        }
        // Every key must have the same number of rows per file (images and their labels stay paired).
        for (i, f) in files.enumerated() {
            let rows = Set(headers.map { $0[i].shape[0] })
            guard rows.count <= 1 else {
                throw NPYError.malformed(source: f.path, reason: "arrays have different lengths \(rows.sorted()) along axis 0")
            }
        }
        try AtomicFile.produce(path) { tmp in
            let archive = try ZipWriter(path: tmp)
            for (ki, key) in keys.enumerated() {
                let hs = headers[ki]
                let shape = [hs.reduce(0) { $0 + $1.shape[0] }] + Array(hs[0].shape.dropFirst())
                // Windows are asked for in order; serve them from one loaded input at a time.
                var current = -1
                var currentData = Data()
                var currentStart = 0
                try NPZWriter.addMember(to: archive, key: key, dtype: hs[0].dtype, shape: shape, compressed: false) { offset, count in
                    var out = Data(capacity: count)
                    var p = offset
                    let end = offset + count
                    while p < end {
                        if current < 0 || p >= currentStart + currentData.count {
                            currentStart += currentData.count
                            current += 1
                            currentData = try files[current].array(key).data
                            continue
                        }
                        let s = p - currentStart
                        let e = min(end - currentStart, currentData.count)
                        out.append(currentData[(currentData.startIndex + s)..<(currentData.startIndex + e)])
                        p = currentStart + e
                    }
                    return out
                }
            }
            try archive.finish()
        }
    }
}
