import Foundation
import Generation
import ImageIO

/// The region to regenerate, in the model frame (S x S).
public struct EditRegion {
    /// true = regenerate. For DiT SDEdit without a region: all true.
    public var pixels: PixelMask
    /// Set when the region came from a box / keep box: (y0, x0, y1, x1) fractions of the model frame and the
    /// official `inpainting` flag. VAR then builds the token mask exactly like `get_edit_mask`.
    public var tokenBox: (y0: Double, x0: Double, y1: Double, x1: Double, inpainting: Bool)?
}

public struct EditRequest {
    public var image: Image8  // model frame, RGB
    public var region: EditRegion
    public var classLabel: Int?  // nil = null class
    public var options: EditOptions
}

public struct EditResult {
    public var image: Image8  // model frame, RGB
    /// What was actually regenerated (token / latent cells), model frame; shown by --compare.
    public var regenerated: PixelMask
    public var details: String
}

/// A model family able to edit (VAR zero-shot, DiT RePaint / SDEdit).
public protocol EditBackend: AnyObject {
    var imageSize: Int { get }
    var numClasses: Int { get }
    /// The family's official preprocessing (resize + centre crop).
    var pipeline: CenterCropGeometry.Pipeline { get }
    func edit(_ request: EditRequest, progress: (String) -> Void) throws -> EditResult
}

/// The families that can edit: each registered family's name and how its back end loads (the sampling side of a
/// family lives in Generation's `ModelFamilies`).
public enum EditFamilies {
    public static let loaders: [String: (EditOptions) throws -> EditBackend] = [
        VARFamily.name: { try VAREditBackend.load($0) },
        DiTFamily.name: { try DiTEditBackend.load($0) },
    ]
    static var names: String { loaders.keys.sorted().joined(separator: " or ") }
}

/// The single code path of `edit` and of every job of `edit --jobs`.
public enum EditRunner {
    public struct Summary { public var summary: String }

    /// Loaded models, reused by the jobs of a batch that name the same files.
    nonisolated(unsafe) static var backends: [String: EditBackend] = [:]

    static func backend(for given: EditOptions, family: String) throws -> EditBackend {
        var o = given
        do {
            let files = try BuiltinModels.resolve(family: try ModelFamilies.named(family), checkpoint: o.checkpoint, vae: o.vae)
            o.checkpoint = files.checkpoint; o.vae = files.vae
        } catch let e as GenerationError {
            throw EditFieldError(field: o.checkpoint == nil ? "checkpoint" : "vae", message: e.description)
        }
        let key = [family, o.checkpoint ?? "", o.vae ?? "", o.patchNums ?? ""].joined(separator: "|")
        if let b = backends[key] { return b }
        guard let load = EditFamilies.loaders[family] else {
            throw EditFieldError(field: "model", message: "'\(family)' is not a model family (\(EditFamilies.names))")
        }
        let b = try load(o)
        backends[key] = b
        return b
    }

    static func requireFile(_ path: String?, field: String, directoryOK: Bool = false) throws -> String? {
        guard let path else { return nil }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), directoryOK || !isDir.boolValue else {
            throw EditFieldError(field: field, message: "file not found: \(path)")
        }
        return path
    }

    /// Checks the inputs, loads (or reuses) the models, edits and writes the output (and the compare strip).
    public static func run(_ o: EditOptions, progress: (String) -> Void) throws -> Summary {
        let family = (o.model ?? VARFamily.name).lowercased()
        guard EditFamilies.loaders[family] != nil else {
            throw EditFieldError(field: "model", message: "'\(o.model ?? "")' is not a model family (\(EditFamilies.names))")
        }
        // Inputs first (cheap checks before loading models).
        guard let imagePath = try requireFile(o.image, field: "image") else {
            throw EditFieldError(field: "image", message: "missing: the image to edit")
        }
        guard let outputPath = o.output else {
            throw EditFieldError(field: "output", message: "missing: where to write the result (-o out.png)")
        }
        guard outputPath.lowercased().hasSuffix(".png") else {
            throw EditFieldError(field: "output", message: "must be a .png file, got \(outputPath)")
        }
        _ = try requireFile(o.mask, field: "mask")
        _ = try requireFile(o.checkpoint, field: "checkpoint")
        _ = try requireFile(o.vae, field: "vae", directoryOK: true)  // a diffusers AutoencoderKL folder
        let regions = [("mask", o.mask), ("box", o.box), ("outpaint", o.outpaint)].filter { $0.1 != nil }
        if regions.count > 1 {
            throw EditFieldError(
                field: regions[1].0, message: "give only one of mask, box, outpaint (got \(regions.map(\.0).joined(separator: " and ")))")
        }
        let sdedit = o.strength != nil
        if let s = o.strength {
            guard family == DiTFamily.name else { throw EditFieldError(field: "strength", message: "only applies to --model dit (SDEdit)") }
            guard s > 0 && s <= 1 else { throw EditFieldError(field: "strength", message: "must be in (0, 1], got \(s)") }
        }
        if regions.isEmpty && !sdedit {
            throw EditFieldError(
                field: "mask",
                message: "missing: say what to regenerate with --mask, --box or --outpaint"
                    + (family == DiTFamily.name ? " (or use --strength for SDEdit of the whole image)" : ""))
        }
        if o.resample == true && family != DiTFamily.name {
            throw EditFieldError(field: "resample", message: "only applies to --model dit")
        }
        if o.resample == true && sdedit {
            throw EditFieldError(field: "resample", message: "RePaint resampling is for in-painting; not with --strength")
        }
        if o.jumpLength < 1 { throw EditFieldError(field: "jump-length", message: "must be at least 1") }
        if o.jumpNSample < 1 { throw EditFieldError(field: "jump-n-sample", message: "must be at least 1") }

        var original: Image8
        do { original = try ImageFile.read(path: imagePath).toRGB() } catch {
            throw EditFieldError(field: "image", message: "cannot read \(imagePath): \(error)")
        }

        progress("loading \(family) model")
        let backend = try backend(for: o, family: family)
        let s = backend.imageSize
        if let c = o.classLabel, c < 0 || c >= backend.numClasses {
            throw EditFieldError(
                field: "class", message: "\(c) is not a class of this model (0..<\(backend.numClasses); omit it for the null class)")
        }

        // Out-painting by growing the canvas: the canvas becomes the image, its margins the region.
        var frameMask: PixelMask? = nil  // a region given in the (possibly grown) original frame
        if let text = o.outpaint, let grown = try parseOutpaint(text).grownCanvas(original, square: true) {
            original = grown.image
            frameMask = grown.mask
        }
        let geometry: CenterCropGeometry
        do {
            geometry = try CenterCropGeometry(
                sourceWidth: original.width, sourceHeight: original.height, size: s, pipeline: backend.pipeline)
        } catch {
            throw EditFieldError(field: "image", message: "\(error)")
        }
        let modelImage: Image8
        do { modelImage = try geometry.apply(original) } catch { throw EditFieldError(field: "image", message: "\(error)") }
        if !geometry.isIdentity {
            progress("input \(original.width)x\(original.height) resized (shorter side) and centre-cropped to \(s)x\(s)")
        }

        var region: EditRegion
        if let frameMask {
            region = EditRegion(pixels: try frameMask.toModel(geometry), tokenBox: nil)
        } else if let maskPath = o.mask {
            let img: Image8
            do { img = try ImageFile.read(path: maskPath) } catch {
                throw EditFieldError(field: "mask", message: "cannot read \(maskPath): \(error)")
            }
            var (m, binary) = PixelMask.fromImage(img)
            if !binary { progress("note: the mask is not binary; thresholded at 0.5 (values >= 128 are regenerated)") }
            if m.width != original.width || m.height != original.height {
                progress("note: mask \(m.width)x\(m.height) resized to the image size \(original.width)x\(original.height)")
                m = try m.resized(width: original.width, height: original.height)
            }
            frameMask = m
            region = EditRegion(pixels: try m.toModel(geometry), tokenBox: nil)
        } else if o.box != nil || o.outpaint != nil {
            let field = o.box != nil ? "box" : "outpaint"
            let spec: BoxSpec
            if let b = o.box {
                do { spec = try BoxSpec(parsing: b) } catch { throw EditFieldError(field: field, message: "\(error)") }
            } else {
                guard case let .keep(b) = try parseOutpaint(o.outpaint!) else { fatalError("grow handled above") }
                spec = b
            }
            let inpainting = o.box != nil
            let f: (y0: Double, x0: Double, y1: Double, x1: Double)
            let px: (x0: Double, y0: Double, x1: Double, y1: Double)
            do {
                px = try spec.pixels(width: original.width, height: original.height)
                f = try spec.modelFractions(geometry)
            } catch { throw EditFieldError(field: field, message: "\(error)") }
            frameMask = try PixelMask.rectangle(
                width: original.width, height: original.height, x0: px.x0, y0: px.y0,
                x1: px.x1, y1: px.y1, regenerateInside: inpainting)
            let sd = Double(s)
            let pm = try PixelMask.rectangle(
                width: s, height: s, x0: f.x0 * sd, y0: f.y0 * sd, x1: f.x1 * sd, y1: f.y1 * sd,
                regenerateInside: inpainting)
            region = EditRegion(pixels: pm, tokenBox: (f.y0, f.x0, f.y1, f.x1, inpainting))
        } else {
            // SDEdit of the whole image.
            region = EditRegion(pixels: try PixelMask.filled(width: s, height: s, regenerate: true), tokenBox: nil)
        }
        if region.pixels.regeneratedCount == 0 && !sdedit {
            throw EditFieldError(
                field: regions.first?.0 ?? "mask", message: "the region to regenerate is empty inside the \(s)x\(s) model frame")
        }

        let t0 = Date()
        let result = try backend.edit(
            EditRequest(image: modelImage, region: region, classLabel: o.classLabel, options: o), progress: progress)
        let secs = Date().timeIntervalSince(t0)

        var final = result.image
        if o.pasteBack {
            final = try geometry.pasteBack(result.image, into: original, regenerate: frameMask)
        }
        let outDir = URL(fileURLWithPath: outputPath).deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true) } catch {
            throw EditFieldError(field: "output", message: "cannot create the folder \(outDir.path): \(error)")
        }
        do { try ImageFile.write(final, to: outputPath) } catch {
            throw EditFieldError(field: "output", message: "cannot write \(outputPath): \(error)")
        }
        var written = [outputPath]
        if o.compare {
            let strip = compareStrip([modelImage, result.regenerated.image.converted(channels: 3), result.image])
            let path = comparePath(outputPath)
            do { try ImageFile.write(strip, to: path) } catch {
                throw EditFieldError(field: "output", message: "cannot write \(path): \(error)")
            }
            written.append(path)
        }
        return Summary(summary: "\(result.details); \(String(format: "%.1f", secs)) s; wrote \(written.joined(separator: ", "))")
    }

    static func parseOutpaint(_ text: String) throws -> OutpaintSpec {
        do { return try OutpaintSpec(parsing: text) } catch { throw EditFieldError(field: "outpaint", message: "\(error)") }
    }

    public static func comparePath(_ output: String) -> String {
        let u = URL(fileURLWithPath: output)
        let stem = u.deletingPathExtension().lastPathComponent
        return u.deletingLastPathComponent().appendingPathComponent(stem + "-compare.png").path
    }

    /// Input | what was regenerated | result, captioned, enlarged by nearest neighbour to at least 256 pixels
    /// tall so a 64-pixel toy result is visible.
    static func compareStrip(_ images: [Image8]) -> Image8 {
        let h = images.map(\.height).max() ?? 1
        return CaptionedLayout.strip(images, captions: ["input", "regenerated", "output"], factor: max(1, 256 / max(h, 1)))
    }
}
