import ArgumentParser
import Editing
import Foundation

/// `varlab edit`: in-painting, out-painting and class-conditional editing of a real image with VAR or DiT,
/// one image at a time or as a batch of jobs (`--jobs`). A job of the batch is exactly the argument list of a
/// single `edit` call (each field `name` becomes `--name`), so both share one code path.
struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Edit an image: in-paint (--mask / --box), out-paint (--outpaint) or repaint a region as another class (--class).",
        discussion: """
            Masks: white = regenerate, black = keep; grey values are thresholded at 0.5 (>= 128 regenerated); a mask of \
            another size than the image is resized to it (with a note). The models regenerate whole token cells (VAR) or \
            latent cells (DiT): a cell is regenerated when at least half of its pixels are marked (boxes follow the \
            official round-half-to-even rounding to the token grid). Boxes are x0,y0,x1,y1 in pixels of the input \
            image, or fractions of its width/height when every value is <= 1. --outpaint x0,y0,x1,y1 keeps that box and \
            regenerates everything around it; --outpaint grow:l,t,r,b enlarges the canvas by these margins (then to a square, so the model sees all of it) and fills them.
            Inputs of any size are resized (shorter side) and centre-cropped to the model resolution; --paste-back puts \
            the regenerated pixels back into the original frame.
            VAR: zero-shot editing as the official demo (ground-truth tokens wherever the mask keeps, at every scale); \
            the null class unless --class is given. DiT: RePaint-style latent in-painting (--resample for the RePaint jump \
            schedule, the built-in DiT's default), or SDEdit with --strength (noise to that level, denoise with --class), \
            optionally masked. Without --class both families regenerate with the null class (unguided), which \
            continues the surrounding image; --class asks for that class in the region (guided by --cfg).
            Batch: --jobs jobs.json (an array of objects, or {"defaults": {...}, "jobs": [...]}) or jobs.jsonl (one object \
            per line); field names are the long option names with underscores (top_k, patch_nums, ...), list values may be \
            JSON arrays, relative paths are relative to the jobs file. --resume skips jobs whose output exists.
            """)

    // What to edit
    @Option(help: "var or dit.") var model: String?
    @Option(help: "Model checkpoint (default: the tiny model in assets/).") var checkpoint: String?
    @Option(help: "Autoencoder checkpoint (VQ-VAE for var, KL-VAE for dit; default: assets/).") var vae: String?
    @Option(help: "Input image (PNG or JPEG).") var image: String?
    @Option(help: "Mask image: white = regenerate, black = keep.") var mask: String?
    @Option(help: "Region to regenerate: x0,y0,x1,y1 in pixels, or fractions when all values <= 1.") var box: String?
    @Option(help: "x0,y0,x1,y1: keep this box and regenerate around it; grow:l,t,r,b: enlarge the canvas and fill the margins.")
    var outpaint: String?
    @Option(
        name: .customLong("class"), parsing: .unconditional,
        help: "Class label for the regenerated region (default: the null / unconditional class).")
    var classLabel: Int?
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Classifier-free guidance scale (default: the checkpoint's varlab.sample_cfg, else 1.5 for var, 4.0 for dit).") var cfg:
        Double?

    // VAR sampler
    @Option(help: "VAR: top-k (0 = off). Default 900, or the checkpoint's varlab.sample_top_k.") var topK: Int?
    @Option(help: "VAR: top-p (0 = off). Default 0.96, or the checkpoint's varlab.sample_top_p.") var topP: Double?
    @Option(help: "VAR: scale sizes, e.g. 1,2,3,4 (default: from the checkpoint / config).") var patchNums: String?
    @Option(help: "VAR: nested state dict inside the checkpoint, e.g. trainer.var_wo_ddp.") var key: String?
    @Flag(help: "VAR: Gumbel-softmax smoothing of the next-scale input (the official more_smooth; default off in edit).")
    var moreSmooth = false

    // DiT sampler
    @Option(help: "DiT: sampling steps.") var steps: Int = 50
    @Option(help: "DiT: ddpm or ddim.") var sampler: String = "ddpm"
    @Option(help: "DiT: DDIM eta in [0, 1] (0 = deterministic DDIM; ignored by ddpm).") var eta: Float = 0
    @Option(
        help:
            "DiT: channels classifier-free guidance mixes: first3 (official) or all. Default: the checkpoint's varlab.sample_cfg_channels, else first3."
    )
    var cfgChannels: String?
    @Option(help: "KL-VAE: GroupNorm groups when the VAE has no config.json (default 32, the SD VAE).") var vaeGroups: Int?
    @Option(help: "DiT SDEdit: noise level in (0, 1] to start from; regenerates the masked region (or everything).")
    var strength: Double?
    @Flag(
        inversion: .prefixedNo,
        help:
            "DiT: RePaint resampling (jump back and re-denoise; slower, more coherent). Default: the checkpoint's varlab.edit_resample (on for the built-in DiT), else off."
    ) var resample: Bool?
    @Option(help: "DiT --resample: jump length in steps.") var jumpLength: Int = 10
    @Option(help: "DiT --resample: repeats of each jump.") var jumpNSample: Int = 10

    // Output
    @Option(name: [.short, .customLong("output")], help: "Output PNG.") var output: String?
    @Flag(help: "Paste the result back into the original frame (only the regenerated pixels).") var pasteBack = false
    @Flag(help: "Also write <output>-compare.png: input | mask | result.") var compare = false

    // Batch
    @Option(help: "Run a batch of jobs from a .json or .jsonl file.") var jobs: String?
    @Flag(help: "With --jobs: skip jobs whose output already exists.") var resume = false

    @OptionGroup var common: CommonOptions

    /// The library request these flags describe.
    var options: EditOptions {
        var o = EditOptions()
        o.model = model; o.checkpoint = checkpoint; o.vae = vae; o.image = image; o.mask = mask; o.box = box
        o.outpaint = outpaint; o.classLabel = classLabel; o.seed = seed; o.cfg = cfg
        o.topK = topK; o.topP = topP; o.patchNums = patchNums; o.key = key; o.moreSmooth = moreSmooth
        o.steps = steps; o.sampler = sampler; o.eta = eta; o.cfgChannels = cfgChannels; o.vaeGroups = vaeGroups
        o.strength = strength; o.resample = resample; o.jumpLength = jumpLength; o.jumpNSample = jumpNSample
        o.output = output; o.pasteBack = pasteBack; o.compare = compare
        return o
    }

    func validate() throws {
        if jobs != nil {
            let single = [image, mask, box, outpaint, output].compactMap { $0 }
            if !single.isEmpty {
                throw ValidationError("--jobs runs a batch: give the inputs in the jobs file, not as --image/--mask/--box/--outpaint/-o")
            }
            return
        }
        if resume { throw ValidationError("--resume only applies to --jobs") }
    }

    func run() throws {
        try common.apply()
        if let jobs {
            let outcomes = try EditJobRunner(path: jobs, resume: resume).run(log: note)
            print(EditJobRunner.table(outcomes))
            if outcomes.contains(where: { $0.status == .failed }) { throw ExitCode(1) }
            return
        }
        // An EditFieldError prints as "Error: --field: message" and exits with 1.
        let r = try EditRunner.run(options, progress: { note($0) })
        note(r.summary)
    }
}
