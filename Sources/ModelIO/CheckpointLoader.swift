import Foundation
import Tensor

/// Opens any supported checkpoint by content (not extension): safetensors, PyTorch zip (.pth/.pt/.bin/.ckpt,
/// torch >= 1.6) or the legacy pre-1.6 torch.save format. `keyPath` selects a nested state dict such as
/// "model", "ema" or "trainer.var_wo_ddp" inside a PyTorch checkpoint (or a key prefix in safetensors).
public enum CheckpointLoader {
    public enum Format: String, Sendable { case safetensors, torchZip = "pytorch-zip", torchLegacy = "pytorch-legacy" }

    public static func detectFormat(path: String) throws -> Format {
        if FileManager.default.fileExists(atPath: path) { try requireRegularFile(path) }
        guard let fh = FileHandle(forReadingAtPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                throw CheckpointError.cannotOpen(path: path, reason: isDir.boolValue ? "is a directory" : "permission denied")
            }
            throw CheckpointError.cannotOpen(path: path, reason: "no such file")
        }
        defer { try? fh.close() }
        let head = (try? fh.read(upToCount: 8)) ?? Data()
        let b = [UInt8](head)
        if b.count >= 4 && b[0] == 0x50 && b[1] == 0x4B { return .torchZip }
        if b.count >= 2 && b[0] == 0x80 && b[1] <= 5 { return .torchLegacy }
        if b.count == 8 && b[7] == 0 && b[6] == 0 { return .safetensors }  // little-endian header length < 2^48
        throw CheckpointError.malformed(path: path, reason: "not a safetensors, PyTorch zip or legacy torch.save file")
    }

    public static func open(path: String, keyPath: String? = nil) throws -> TensorArchive {
        let format = try detectFormat(path: path)
        switch format {
        case .safetensors:
            let f = try SafetensorsFile(path: path)
            if let keyPath, !keyPath.isEmpty {
                let a = PrefixedArchive(f, prefix: keyPath + ".")
                if a.keys.isEmpty {
                    var firsts: [String] = []
                    for k in f.keys { let h = String(k.split(separator: ".").first ?? ""); if !firsts.contains(h) { firsts.append(h) } }
                    throw CheckpointError.keyPathNotFound(path: path, keyPath: keyPath, candidates: firsts.prefix(20).map { $0 + ".*" })
                }
                return a
            }
            return f
        case .torchZip, .torchLegacy:
            return try openTorch(path: path, format: format, keyPath: keyPath)
        }
    }
}
