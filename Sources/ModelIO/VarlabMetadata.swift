import Foundation

/// The `varlab.*` keys varlab writes into safetensors metadata, in one place: what each means, who writes it,
/// and typed reading. Official checkpoints carry none of them; every reader treats a missing key as "not set".
public enum MetadataKey: String, CaseIterable, Sendable {
    // Every trained file (TrainCheckpoint)
    /// Model kind of a training checkpoint ("vqvae", "var", "dit", "classifier").
    case model = "varlab.model"
    /// The model's JSON config (its family's Codable config type).
    case config = "varlab.config"
    /// Optimizer steps done.
    case step = "varlab.step"
    /// AdamW's own step counter (training checkpoints only; removed on export).
    case optimizerStep = "varlab.optimizer.step"
    /// Canonical JSON of the training options.
    case train = "varlab.train"
    /// One-line description of the training data.
    case data = "varlab.data"
    /// JSON array of class names, index = label.
    case classNames = "varlab.class_names"
    /// File name of the training checkpoint an export came from.
    case exportedFrom = "varlab.exported_from"
    // Tokenizer (VQ-VAE)
    /// Scale schedule, comma-separated (VQ-VAE and VAR).
    case patchNums = "varlab.patch_nums"
    /// GroupNorm groups of the VQ-VAE (absent: the official 32).
    case normGroups = "varlab.norm_groups"
    /// The tokenizer a decoder fine-tuning started from: file name and step (its encoder and codebook are kept).
    case finetunedFrom = "varlab.finetuned_from"
    // VAR
    /// Attention heads (VAR, DiT) when the width alone does not say.
    case heads = "varlab.heads"
    /// Ablation variant of a VAR ("next", "ar", "plain-ln").
    case variant = "varlab.variant"
    /// Recommended sampling settings (`sample` uses them for flags left unset).
    case sampleCFG = "varlab.sample_cfg"
    case sampleTopK = "varlab.sample_top_k"
    case sampleTopP = "varlab.sample_top_p"
    case sampleMoreSmooth = "varlab.sample_more_smooth"
    case sampleSteps = "varlab.sample_steps"
    case sampleSampler = "varlab.sample_sampler"
    case sampleCFGChannels = "varlab.sample_cfg_channels"
    /// Recommended for `edit` (DiT in-painting): RePaint resampling on ("1") when --resample / --no-resample is not given.
    case editResample = "varlab.edit_resample"
    // DiT
    /// The latent space a DiT was trained on: "var-vqvae" (the VQ-VAE's f-hat), absent for the SD KL-VAE.
    case vae = "varlab.vae"
    /// f-hat is multiplied by this before the DiT sees it.
    case latentScale = "varlab.latent_scale"
    /// The VQ-VAE's scale schedule the latents were made with.
    case vaePatchNums = "varlab.vae_patch_nums"
    case emaDecay = "varlab.ema_decay"
    /// "ema" or "raw": which weights a DiT file holds.
    case weights = "varlab.weights"
    case augment = "varlab.augment"
    // Caches (token and latent sets)
    case tokenCache = "varlab.token_cache"
    case kind = "varlab.kind"
    case summary = "varlab.summary"
    case key = "varlab.key"
    case classes = "varlab.classes"
}

extension Dictionary where Key == String, Value == String {
    public subscript(key: MetadataKey) -> String? {
        get { self[key.rawValue] }
        set { self[key.rawValue] = newValue }
    }

    public func int(_ key: MetadataKey) -> Int? { self[key].flatMap { Int($0) } }
    public func double(_ key: MetadataKey) -> Double? { self[key].flatMap { Double($0) } }
    public func float(_ key: MetadataKey) -> Float? { self[key].flatMap { Float($0) } }
    /// "1" or "true".
    public func bool(_ key: MetadataKey) -> Bool? { self[key].map { $0 == "1" || $0 == "true" } }
    /// A comma-separated integer list; nil when absent or when any item is not an integer.
    public func ints(_ key: MetadataKey) -> [Int]? {
        guard let text = self[key] else { return nil }
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let v = parts.compactMap { Int($0) }
        return v.count == parts.count ? v : nil
    }
    public mutating func setInts(_ key: MetadataKey, _ values: [Int]) { self[key] = values.map(String.init).joined(separator: ",") }
}
