import CPNG
import Foundation
import ImageIO
import ModelIO

/// Image files for `edit`. Temporary minimal PNG reader/writer (libpng's simplified API) until the shared
/// ImageIO codecs land; outputs are written atomically.
enum EditFiles {
    struct FileError: Error, CustomStringConvertible { var description: String }

    static func readImage(_ path: String) throws -> Image8 {
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&img, path) != 0 else {
            throw FileError(description: "not a readable PNG image")
        }
        img.format = 2 // PNG_FORMAT_RGB
        let w = Int(img.width), h = Int(img.height)
        var px = [UInt8](repeating: 0, count: w * h * 3)
        let ok = px.withUnsafeMutableBytes { png_image_finish_read(&img, nil, $0.baseAddress, Int32(w * 3), nil) }
        guard ok != 0 else { png_image_free(&img); throw FileError(description: "corrupt PNG data") }
        return Image8(width: w, height: h, channels: 3, pixels: px)
    }

    static func writePNG(_ image: Image8, to path: String) throws {
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        img.width = UInt32(image.width); img.height = UInt32(image.height)
        let rgb = image.channels == 1 ? image : image.converted(channels: 3)
        // PNG_FORMAT_GRAY = 0, PNG_FORMAT_RGB = PNG_FORMAT_FLAG_COLOR (2)
        img.format = rgb.channels == 1 ? 0 : 2
        var size: Int = 0
        let stride = Int32(rgb.width * rgb.channels)
        guard rgb.pixels.withUnsafeBytes({ png_image_write_to_memory(&img, nil, &size, 0, $0.baseAddress, stride, nil) }) != 0 else {
            throw FileError(description: "PNG encoding failed")
        }
        var data = Data(count: size)
        let ok = data.withUnsafeMutableBytes { dst in
            rgb.pixels.withUnsafeBytes { png_image_write_to_memory(&img, dst.baseAddress, &size, 0, $0.baseAddress, stride, nil) }
        }
        guard ok != 0 else { throw FileError(description: "PNG encoding failed") }
        try AtomicFile.write(data.prefix(size), to: path)
    }
}
