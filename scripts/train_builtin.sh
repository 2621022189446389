#!/usr/bin/env bash
# Re-trains the four built-in toy models from scratch and exports them to assets/models (README "Built-in models"),
# then measures them with `varlab bench toy-quality`. Deterministic given the seeds (any thread count).
# Usage: scripts/train_builtin.sh [work-dir]   (default: runs/; the exported files replace assets/models/*)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
V=.build/release/varlab
mkdir -p "$W" assets/models assets/grids
swift build -c release

# Toy classifier (the toy feature extractor): 1200 steps, batch 64, random-grayscale augmentation p = 0.5.
$V train classifier --steps 1200 --seed 0 --gray-prob 0.5 -o "$W/classifier.safetensors"
# Multi-scale VQ-VAE: 64 px, ch 32 x (1,1,2,2), 8x8x16 latent, 512 codes, scales 1,2,3,4,5,6,8. The shipped
# (grey) tokenizer's recipe, pinned: 32 norm groups, PyTorch init, uniform codebook. The colour recipe
# (`varlab train vqvae` defaults: --norm-groups 1 --conv-init he --codebook-init data --dead-code-restart 100)
# is measured in the README ("Why the built-in tokenizer is grey") and not shipped yet.
$V train vqvae --ch-mult 1,1,2,2 --patch-nums 1,2,3,4,5,6,8 --vocab 512 --z-channels 16 --batch-size 16 \
    --norm-groups 32 --conv-init torch --codebook-init uniform --dead-code-restart 0 \
    --steps 1000 --lr 8e-4 --warmup 50 --seed 0 -o "$W/vqvae.safetensors"
# VAR on the frozen tokenizer's tokens of 20k training images.
$V train var --vae "$W/vqvae.safetensors" --train-size 20000 --token-cache "$W/var-tokens.safetensors" \
    --steps 2600 --batch-size 32 --lr 5e-3 --warmup 100 --weight-decay 0.05 --seed 0 -o "$W/var.safetensors"
# DiT on the same tokenizer's continuous latent f-hat of 20k training images.
$V train dit --vae "$W/vqvae.safetensors" --train-size 20000 --latents "$W/dit-latents.safetensors" \
    --steps 11500 --batch-size 64 --lr 4e-3 --warmup 100 --min-snr-gamma 5 --sample-cfg 6 --seed 0 -o "$W/dit.safetensors"

for m in classifier vqvae dit; do
    $V train export "$W/$m.safetensors" -o "assets/models/toy-$m.safetensors"
done
# The built-in VAR's recommended sampling settings (README "Built-in models" compares them with the official ones):
# more_smooth, top-k 10, top-p 0.9, cfg 1.5.
$V train export "$W/var.safetensors" -o assets/models/toy-var.safetensors \
    --meta varlab.sample_more_smooth=1 --meta varlab.sample_top_k=10 --meta varlab.sample_top_p=0.9
$V bench toy-quality --n 1000 --grids assets/grids --json "$W/toy-quality.json"
