import Foundation
import ImageIO

/// Kept for callers that adopted it before the shared codecs landed (varlab data); delegates to ImageIO.
/// New code should call `ImageFile` / `PNG` directly.
enum EditFiles {
    static func readImage(_ path: String) throws -> Image8 { try ImageFile.read(path: path) }
    static func writePNG(_ image: Image8, to path: String) throws { try PNG.write(image, to: path) }
}
