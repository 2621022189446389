import Foundation

/// One edit, as `varlab edit` flags or one job of a jobs file give it (field names are the long option names).
/// nil sampling settings take the checkpoint's recorded defaults (`varlab.sample_*`), else the official ones.
public struct EditOptions: Sendable {
    // What to edit
    public var model: String?
    public var checkpoint: String?
    public var vae: String?
    public var image: String?
    public var mask: String?
    public var box: String?
    public var outpaint: String?
    public var classLabel: Int?
    public var seed: UInt64 = 0
    public var cfg: Double?
    // VAR sampler
    public var topK: Int?
    public var topP: Double?
    public var patchNums: String?
    public var key: String?
    public var moreSmooth = false
    // DiT sampler
    public var steps = 50
    public var sampler = "ddpm"
    public var eta: Float = 0
    public var cfgChannels: String?
    public var vaeGroups: Int?
    public var strength: Double?
    /// RePaint resampling; nil = what the checkpoint recommends (`varlab.edit_resample`), else off.
    public var resample: Bool?
    public var jumpLength = 10
    public var jumpNSample = 10
    // Output
    public var output: String?
    public var pasteBack = false
    public var compare = false
    /// Worker threads for this edit (jobs files only; the CLI's --threads applies to a single edit).
    public var threads: Int?

    public init() {}

    /// The files an edit writes: its output and, with compare, the strip beside it.
    public var writtenFiles: [String] {
        guard let output else { return [] }
        return [output] + (compare ? [EditRunner.comparePath(output)] : [])
    }
}

/// An error about one input: `field` is the long option name without dashes (e.g. "image", "top-k").
public struct EditFieldError: Error, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(field: String, message: String) { self.field = field; self.message = message }
    public var description: String { messageForCLI }
    public var messageForCLI: String { "--\(field): \(message)" }
    public var messageForJob: String { "field '\(field.replacingOccurrences(of: "-", with: "_"))': \(message)" }
}
