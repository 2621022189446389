#!/usr/bin/env python3
"""Random-weight checkpoints of the released FD-DINOv2 / CMMD networks, from the fixtures' key lists.

Writes OUT/dinov2_vitl14_random.safetensors (the keys and shapes of dinov2_vitl14_pretrain.pth) and
OUT/clip-vit-large-patch14-336-random/ (model.safetensors with the keys and shapes of the released
openai/clip-vit-large-patch14-336 CLIPModel, and a config.json with its vision and text configuration), so
`varlab eval --dinov2 ... --clip ...` can be run end to end at the real sizes without the real weights.
numpy only; weights ~ U(-sqrt(3 / fan_in), +) so activations stay O(1), norm weights 1.

    python3 scripts/random_vit_checkpoints.py ../shared/fixtures/eval /tmp/vits
"""
import json
import os
import struct
import sys

import numpy as np


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for k, a in tensors.items():
        b = a.astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def random_weights(keys, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in keys.items():
        if k.endswith("position_ids"):
            continue  # int64 buffers some releases carry; not weights
        if "norm" in k and k.endswith(".weight") or "layrnorm.weight" in k:
            out[k] = np.ones(shape, np.float32)
            continue
        fan_in = int(np.prod(shape[1:])) if len(shape) >= 2 else 1
        bound = 0.01 if k.endswith(".bias") else np.sqrt(3.0 / max(fan_in, 1))
        out[k] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def main():
    fixtures, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    d = json.load(open(os.path.join(fixtures, "dinov2_vitl14_keys.json")))
    write_safetensors(os.path.join(out, "dinov2_vitl14_random.safetensors"), random_weights(d["keys"], 1))
    c = json.load(open(os.path.join(fixtures, "clip_vit_l14_336_keys.json")))
    repo = os.path.join(out, "clip-vit-large-patch14-336-random")
    os.makedirs(repo, exist_ok=True)
    write_safetensors(os.path.join(repo, "model.safetensors"), random_weights(c["keys"], 2))
    cfg = c["config"]
    cfg["vision_config"].update({"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5})
    cfg["architectures"] = ["CLIPModel"]
    cfg["model_type"] = "clip"
    with open(os.path.join(repo, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print("wrote", out)


if __name__ == "__main__":
    main()
