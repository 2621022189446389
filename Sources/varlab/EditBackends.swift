import Foundation
import ImageIO

/// VAR zero-shot editing (filled in once the VAR models land).
final class VAREditBackend: EditBackend {
    let imageSize = 0, numClasses = 0
    let preprocessFilter = ResampleFilter.lanczos
    static func load(_ o: Edit) throws -> VAREditBackend { throw EditFieldError(field: "model", message: "VAR editing is not available in this build yet") }
    func edit(_ request: EditRequest, progress: (String) -> Void) throws -> EditResult { fatalError() }
}

/// DiT RePaint / SDEdit (filled in once DiT lands).
final class DiTEditBackend: EditBackend {
    let imageSize = 0, numClasses = 0
    let preprocessFilter = ResampleFilter.bicubic
    static func load(_ o: Edit) throws -> DiTEditBackend { throw EditFieldError(field: "model", message: "DiT editing is not available in this build yet") }
    func edit(_ request: EditRequest, progress: (String) -> Void) throws -> EditResult { fatalError() }
}
