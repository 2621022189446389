#!/usr/bin/env python3
"""Whole-model gradient fixture of the official VAR transformer (issue 13: check varlab's VARModel backward against
the official PyTorch implementation).

    python3 scripts/make_var_grad_fixture.py --var-repo PATH/TO/FoundationVision/VAR [-o FILE]

Builds a tiny official `models.var.VAR` (attn_l2_norm=False, per-block ada_lin: what varlab trains) on a tiny
official VQVAE, sets every parameter to random values (the official init zeroes the gammas, which would hide most
gradients), runs the teacher-forced `VAR.forward` with cond_drop_rate 0 on random VQ features, takes the mean
cross-entropy against random targets (varlab's loss: the official loss.mul(1/L).sum(-1).mean() is the same mean),
calls backward, and writes a safetensors file with the state dict (official names), the inputs, the logits, the
loss and every parameter's gradient as `grad.<name>`. Nothing of the official code is copied; it is imported from
the checkout given. Needs torch, numpy, safetensors and huggingface_hub.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--var-repo", required=True, help="a checkout of FoundationVision/VAR")
    ap.add_argument("-o", "--output", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "TrainingTests",
                                                          "Fixtures", "var_grad_official.safetensors"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.var_repo))
    from models.var import VAR
    from models.vqvae import VQVAE

    torch.manual_seed(a.seed)
    patch_nums = (1, 2, 4)
    vae = VQVAE(vocab_size=16, z_channels=4, ch=32, test_mode=True, share_quant_resi=4, v_patch_nums=patch_nums)
    var = VAR(vae_local=vae, num_classes=3, depth=2, embed_dim=32, num_heads=2, mlp_ratio=2.0, norm_eps=1e-6,
              shared_aln=False, cond_drop_rate=0.0, attn_l2_norm=False, patch_nums=patch_nums,
              flash_if_available=False, fused_if_available=False)
    var.train()
    g = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():
        for _, p in var.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    B, L, first_l, V, Cvae = 3, var.L, var.first_l, var.V, var.Cvae
    labels = torch.tensor([1, 3, 0])            # 3 = the null class
    x = torch.randn(B, L - first_l, Cvae, generator=g)
    targets = torch.randint(0, V, (B, L), generator=g)
    logits = var(labels, x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()

    out = {k: v.detach().float().contiguous() for k, v in var.state_dict().items()
           if not k.startswith("vae") and v.dtype.is_floating_point and k != "attn_bias_for_masking"}
    for k, p in var.named_parameters():
        out["grad." + k] = p.grad.detach().contiguous()
    out["input.labels"] = labels.to(torch.int64)
    out["input.features"] = x
    out["input.targets"] = targets.to(torch.int64)
    out["output.logits"] = logits.detach().contiguous()
    out["output.loss"] = loss.detach().reshape(1)
    meta = {"varlab.heads": "2", "varlab.patch_nums": ",".join(map(str, patch_nums)),
            "generator": "scripts/make_var_grad_fixture.py", "torch": torch.__version__}
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    save_file(out, a.output, metadata=meta)
    print(f"{a.output}: {len(out)} tensors, loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
