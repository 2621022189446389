#!/usr/bin/env python3
"""Side by side: FD-DINOv2's and CMMD's feature networks in the official PyTorch code vs `varlab bench eval`.

Optional, never part of the tests. Needs torch (and transformers for CLIP) installed, and a checkout of
facebookresearch/dinov2 given with --dinov2-repo (its hub code builds the model: dinov2.hub.backbones.dinov2_vitl14,
pretrained=False, random weights; no code of it is copied into varlab). CLIP ViT-L/14-336 is transformers'
CLIPVisionModelWithProjection with the released configuration (random weights).

Both run on the same machine in one run, alternating, several rounds, with the same thread count; the script prints
the median seconds per image of each and the ratio varlab / PyTorch, with the CPU and the OpenBLAS kernel varlab chose.

    python3 scripts/bench_features_torch.py --dinov2-repo /path/to/dinov2 --varlab .build/release/varlab
"""
import argparse
import platform
import re
import statistics
import subprocess
import sys
import time


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_isa():
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    return ",".join(f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2") if f in flags)


def time_torch(model, x, reps=1):
    import torch
    with torch.inference_mode():
        model(x)  # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            model(x)
        return (time.perf_counter() - t) / reps / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dinov2-repo", required=True, help="checkout of facebookresearch/dinov2")
    ap.add_argument("--varlab", default=".build/release/varlab")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    sys.path.insert(0, a.dinov2_repo)
    from dinov2.hub.backbones import dinov2_vitl14
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    dinov2 = dinov2_vitl14(pretrained=False).eval()
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, patch_size=14,
        image_size=336, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5)).eval()
    xd = torch.randn(a.batch, 3, 224, 224)
    xc = torch.randn(a.batch, 3, 336, 336)

    res = {"dinov2 torch": [], "clip torch": [], "dinov2 varlab": [], "clip varlab": []}
    kernel = "?"
    for r in range(a.rounds):
        def run_torch():
            res["dinov2 torch"].append(time_torch(dinov2, xd))
            res["clip torch"].append(time_torch(clip, xc))

        def run_varlab():
            nonlocal kernel
            out = subprocess.run([a.varlab, "bench", "eval", "--n", "0", "--pr-n", "0", "--images", "0",
                                  "--vit-images", str(a.batch), "--threads", str(a.threads)],
                                 check=True, capture_output=True, text=True).stdout
            kernel = out.splitlines()[0]
            for name, key in (("DINOv2", "dinov2 varlab"), ("CLIP", "clip varlab")):
                m = re.search(name + r" .*?: ([0-9.]+) s per image", out)
                res[key].append(float(m.group(1)))

        for f in ((run_torch, run_varlab) if r % 2 == 0 else (run_varlab, run_torch)):
            f()
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s/img" for k, v in res.items()), flush=True)

    print(f"\nmachine: {cpu_model()} [{cpu_isa()}], {a.threads} threads, torch {torch.__version__}")
    print(f"varlab: {kernel}")
    print(f"{'network':<28} {'PyTorch s/img':>14} {'varlab s/img':>13} {'varlab / PyTorch':>17}")
    for net, label in (("dinov2", "DINOv2 ViT-L/14 @224"), ("clip", "CLIP ViT-L/14-336 @336")):
        t, v = statistics.median(res[net + " torch"]), statistics.median(res[net + " varlab"])
        print(f"{label:<28} {t:>14.3f} {v:>13.3f} {v / t:>16.2f}x")


if __name__ == "__main__":
    main()
