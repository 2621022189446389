#!/usr/bin/env python3
"""Times the official PyTorch implementations against `varlab bench` on this machine, in one run.

Optional, never part of the tests. Needs an installed torch (CPU), `pip install diffusers pytorch-fid timm` (DiT's
models.py imports timm; timm and pytorch-fid need a torchvision built for the same torch: PyPI's CUDA torchvision
does not load with a CPU-only torch, so install both from the same index), and
checkouts of the official repositories (none of their code is copied into varlab):
  FoundationVision/VAR        (tested at 78b9539)  models.build_vae_var, VAR.autoregressive_infer_cfg
  facebookresearch/DiT        (tested at ed81ce2)  models.DiT_models['DiT-XL/2'].forward_with_cfg
  diffusers AutoencoderKL     (the SD-VAE shape: block_out_channels 128,256,512,512) .decode
  pytorch-fid InceptionV3     (pool3 of 256x256 inputs resized to 299)

Usage:
  python3 scripts/side_by_side.py --var-repo ~/src/VAR --dit-repo ~/src/DiT [--rounds 3] [--threads 2]
      [--workloads var1,var4,vqdecode,dit,sdvae,inception] [--varlab .build/release/varlab] [--json out.json]

Both sides use random weights of the official shapes (fp32, batch as listed), the same thread count, and run
alternately for several rounds; the report gives per-workload medians and the ratio varlab / PyTorch (below 1 =
varlab faster), with the machine: CPU model, ISA, and the OpenBLAS kernel varlab chose.
"""
import argparse, json, os, platform, re, statistics, subprocess, sys, time


def machine():
    info = {"python": platform.python_version()}
    try:
        text = open("/proc/cpuinfo").read()
        info["cpu"] = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
        # Under a hypervisor the name alone ("AMD EPYC") covers several generations: add family and model.
        fam, mod = re.search(r"cpu family\s*:\s*(\d+)", text), re.search(r"^model\s*:\s*(\d+)", text, re.M)
        if fam and mod:
            info["cpu"] += f" (family {fam.group(1)} model {mod.group(1)})"
        flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split())
        info["isa"] = ",".join(f for f in ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"] if f in flags)
    except Exception:
        pass
    return info


def timed(fn, repeat=1):
    fn()  # warm-up (page in weights, allocator)
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


class Torch:
    """The official models, built once with random weights of the released shapes."""

    def __init__(self, args, torch):
        self.torch, self.args = torch, args
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        self._var = self._dit = self._sdvae = self._inception = None

    def var(self):
        if self._var is None:
            import torch.nn as nn
            sys.path.insert(0, self.args.var_repo)
            # build_vae_var switches off every layer's reset_parameters for speed; restore them afterwards so the
            # other models start from real initialisations (uninitialised memory may hold denormals or NaNs).
            saved = {c: c.reset_parameters for c in (nn.Linear, nn.LayerNorm, nn.BatchNorm2d, nn.SyncBatchNorm, nn.Conv1d,
                                                     nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)}
            from models import build_vae_var
            vae, var = build_vae_var(device="cpu", depth=16, shared_aln=False, flash_if_available=False,
                                     fused_if_available=False)
            for c, f in saved.items():
                c.reset_parameters = f
            with self.torch.no_grad():
                for p in vae.parameters():
                    p.normal_(0, 0.02)
            sys.path.remove(self.args.var_repo)
            for m in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
                del sys.modules[m]   # DiT's repo also has a top-level `models`
            self._var = (vae.eval(), var.eval())
        return self._var

    def var_generate(self, batch):
        vae, var = self.var()
        labels = self.torch.arange(batch) * 97 % 1000
        with self.torch.inference_mode():
            return timed(lambda: var.autoregressive_infer_cfg(B=batch, label_B=labels, g_seed=0, cfg=1.5, top_k=900,
                                                              top_p=0.96, more_smooth=False)) / batch

    def vq_decode(self):
        vae, _ = self.var()
        fhat = self.torch.randn(1, 32, 16, 16)
        with self.torch.inference_mode():
            return timed(lambda: vae.fhat_to_img(fhat))

    def dit_step(self):
        if self._dit is None:
            sys.path.insert(0, self.args.dit_repo)
            from models import DiT_models
            self._dit = DiT_models["DiT-XL/2"](input_size=32, num_classes=1000).eval()
            sys.path.remove(self.args.dit_repo)
        x = self.torch.randn(2, 4, 32, 32)
        t = self.torch.tensor([500, 500])
        y = self.torch.tensor([207, 1000])
        with self.torch.inference_mode():
            return timed(lambda: self._dit.forward_with_cfg(x, t, y, 1.5), repeat=3)

    def sd_vae_decode(self):
        if self._sdvae is None:
            from diffusers.models import AutoencoderKL
            self._sdvae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                                        layers_per_block=2, latent_channels=4, sample_size=256).eval()
        z = self.torch.randn(1, 4, 32, 32)
        with self.torch.inference_mode():
            return timed(lambda: self._sdvae.decode(z).sample)

    def inception(self):
        """Seconds per image of pytorch-fid's InceptionV3 (pool3) on 256x256 inputs, batch --inception-batch."""
        if self._inception is None:
            import pytorch_fid.inception as pi
            # Random weights: the FID weights are a download; their values do not change the arithmetic.
            orig = self.torch.nn.Module.load_state_dict
            pi.load_state_dict_from_url = lambda *a, **k: {}
            self.torch.nn.Module.load_state_dict = lambda self_, sd, strict=True, assign=False: None
            try:
                self._inception = pi.InceptionV3([pi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
            finally:
                self.torch.nn.Module.load_state_dict = orig
        b = self.args.inception_batch
        x = self.torch.rand(b, 3, 256, 256)
        with self.torch.inference_mode():
            return timed(lambda: self._inception(x)) / b


def run_varlab(args, argv):
    out = subprocess.run([args.varlab] + argv + ["--threads", str(args.threads)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"varlab {' '.join(argv)} failed: {out.stderr.strip()[-400:]}")
    return out.stdout


def varlab_var(args, batch):
    text = run_varlab(args, ["bench", "var", "--depth", "16", "--batches", str(batch)])
    row = next(l for l in text.splitlines() if re.match(rf"^{batch}\s+\d", l)).split()
    return {"kernel": text.splitlines()[0], "total": float(row[5]), "decode": float(row[3])}


def varlab_dit(args):
    text = run_varlab(args, ["bench", "dit", "--config", "XL/2", "--repeats", "3"])
    step = float(re.search(r"median of \d+: ([0-9.]+) s/step", text).group(1))
    decode = float(re.search(r"SD-VAE decode \d+x\d+: ([0-9.]+) s/image", text).group(1))
    return {"step": step, "decode": decode}


def varlab_inception(args):
    text = run_varlab(args, ["bench", "eval", "--n", "0", "--pr-n", "0", "--vit-images", "0",
                             "--images", str(2 * args.inception_batch), "--batch-size", str(args.inception_batch)])
    rate = float(re.search(r"Inception \(.*?\): ([0-9.]+) images/s", text).group(1))
    return 1 / rate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--var-repo", required=True, help="checkout of FoundationVision/VAR")
    ap.add_argument("--dit-repo", required=True, help="checkout of facebookresearch/DiT")
    ap.add_argument("--varlab", default=".build/release/varlab")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inception-batch", type=int, default=16)
    ap.add_argument("--workloads", default="var1,var4,vqdecode,dit,sdvae,inception")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    import torch
    wanted = args.workloads.split(",")
    unknown = set(wanted) - {"var1", "var4", "vqdecode", "dit", "sdvae", "inception"}
    if unknown:
        sys.exit(f"--workloads: unknown {sorted(unknown)}")
    pt = Torch(args, torch)
    names = {"var1": "VAR-d16 generation, batch 1 (s/image)", "var4": "VAR-d16 generation, batch 4 (s/image)",
             "vqdecode": "VQ-VAE decode 256 px (s/image)", "dit": "DiT-XL/2 step, CFG pair (s/step)",
             "sdvae": "SD-VAE decode 256 px (s/image)", "inception": "InceptionV3 pool3 (s/image)"}
    samples = {w: {"torch": [], "varlab": []} for w in wanted}
    kernel = ""
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        for w in wanted:   # alternate: PyTorch, then varlab, workload by workload
            if w in ("var1", "var4"):
                b = 1 if w == "var1" else 4
                samples[w]["torch"].append(pt.var_generate(b))
                v = varlab_var(args, b); kernel = v["kernel"]; samples[w]["varlab"].append(v["total"])
            elif w == "vqdecode":
                samples[w]["torch"].append(pt.vq_decode())
                v = varlab_var(args, 1); kernel = v["kernel"]; samples[w]["varlab"].append(v["decode"])
            elif w in ("dit", "sdvae"):
                samples[w]["torch"].append(pt.dit_step() if w == "dit" else pt.sd_vae_decode())
                samples[w]["varlab"].append(varlab_dit(args)["step" if w == "dit" else "decode"])
            else:
                samples[w]["torch"].append(pt.inception())
                samples[w]["varlab"].append(varlab_inception(args))
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "varlab_blas": kernel, "threads": args.threads,
              "rounds": args.rounds, "torch": torch.__version__, "workloads": {}}
    print(f"{result['date']}  {result['machine'].get('cpu', '?')} [{result['machine'].get('isa', '')}], {args.threads} threads, "
          f"torch {torch.__version__}; varlab: {kernel}")
    print(f"{'workload':42} {'PyTorch':>9} {'varlab':>9} {'varlab/PyTorch':>15}   (medians of {args.rounds} rounds)")
    for w in wanted:
        t, v = statistics.median(samples[w]["torch"]), statistics.median(samples[w]["varlab"])
        ratios = [b / a for a, b in zip(samples[w]["torch"], samples[w]["varlab"])]
        result["workloads"][w] = {"name": names[w], "torch_s": t, "varlab_s": v, "median_ratio": statistics.median(ratios),
                                  "rounds": samples[w]}
        print(f"{names[w]:42} {t:9.3f} {v:9.3f} {statistics.median(ratios):14.2f}x")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
