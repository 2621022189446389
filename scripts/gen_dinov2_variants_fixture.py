#!/usr/bin/env python3
"""Golden outputs of the official DINOv2 code for the two hub variants the shared fixtures do not cover:
register tokens (the `_reg4` models: 4 registers, interpolate_antialias=True, interpolate_offset=0) and the SwiGLU
feed-forward of ViT-g (ffn_layer='swiglufused'). Tiny random-weight models of the official class
`dinov2.models.vision_transformer.DinoVisionTransformer` with the hub's keyword arguments, img_size 518 (so the
position grid 37 x 37 is resampled to 16 x 16 on every 224 input).

Writes Tests/MetricsTests/Fixtures/dinov2_variants.safetensors: for each variant V in (reg4, swiglu) the state dict
under `V.model.<official key>`, `V.pos_embed_added` (interpolate_pos_encoding at 224), `V.tokens`
(prepare_tokens_with_masks) and `V.features` (the CLS token after the final norm) for `image_u8`, one 224 x 224
RGB image (so dgm-eval's resize is the identity), and `V.heads`. Needs torch and a dinov2 checkout:

    python3 scripts/gen_dinov2_variants_fixture.py /path/to/dinov2 Tests/MetricsTests/Fixtures/dinov2_variants.safetensors
"""
import json
import os
import struct
import sys

import numpy as np
import torch


def write_safetensors(path, tensors):
    dt = {np.dtype("float32"): "F32", np.dtype("uint8"): "U8", np.dtype("int64"): "I64"}
    header, offset, blobs = {}, 0, []
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        b = a.tobytes()
        header[k] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    sys.path.insert(0, sys.argv[1])
    out = sys.argv[2]
    from dinov2.models.vision_transformer import DinoVisionTransformer
    from dinov2.layers import MemEffAttention, NestedTensorBlock as Block
    from functools import partial

    torch.manual_seed(5)
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = torch.from_numpy(((img.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None].copy())
    tensors = {"image_u8": img}
    variants = {
        "reg4": dict(num_register_tokens=4, interpolate_antialias=True, interpolate_offset=0.0, ffn_layer="mlp"),
        "swiglu": dict(num_register_tokens=0, interpolate_antialias=False, interpolate_offset=0.1, ffn_layer="swiglufused"),
    }
    for name, kw in variants.items():
        m = DinoVisionTransformer(img_size=518, patch_size=14, embed_dim=48, depth=2, num_heads=2, mlp_ratio=4,
                                  init_values=1.0, block_chunks=0, block_fn=partial(Block, attn_class=MemEffAttention), **kw).eval()
        with torch.no_grad():
            for k, p in m.state_dict().items():
                # N(0, 1/fan_in) matrices, N(0, 0.3^2) vectors (norm weights around 1): activations stay O(1).
                scale = p[0].numel() ** -0.5 if p.dim() > 1 and k not in ("pos_embed", "cls_token", "register_tokens") else 0.3
                p.copy_(torch.randn_like(p) * scale + (1.0 if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "norm.weight" else 0.0))
            for k, p in m.state_dict().items():
                tensors[f"{name}.model.{k}"] = p.numpy().astype(np.float32)
            tok = m.prepare_tokens_with_masks(x)
            feats = m(x)
            pos = m.interpolate_pos_encoding(torch.cat((m.cls_token.expand(1, -1, -1), m.patch_embed(x)), dim=1), 224, 224)
        tensors[f"{name}.pos_embed_added"] = pos.numpy()
        tensors[f"{name}.tokens"] = tok.numpy()
        tensors[f"{name}.features"] = feats.numpy()
        tensors[f"{name}.heads"] = np.array([2], np.int64)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, tensors)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
