import Foundation
import Tensor

extension CheckpointLoader {
    static func openTorch(path: String, format: Format, keyPath: String?) throws -> TensorArchive {
        throw CheckpointError.unsupported(path: path, reason: "PyTorch checkpoints are not readable yet")
    }
}
