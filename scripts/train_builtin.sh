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
# Multi-scale VQ-VAE: 64 px, ch 32 x (1,1,2,2), 8x8x16 latent, 512 codes, scales 1,2,3,4,5,6,8, with the colour
# recipe (`varlab train vqvae` defaults: --norm-groups 1 --conv-init he --codebook-init data --dead-code-restart 100;
# README "Built-in models").
$V train vqvae --ch-mult 1,1,2,2 --patch-nums 1,2,3,4,5,6,8 --vocab 512 --z-channels 16 --batch-size 16 \
    --steps 3200 --lr 8e-4 --warmup 50 --seed 0 -o "$W/vqvae.safetensors"
# The rest of the tokenizer's 30 minutes: its decoder alone, fine-tuned (every image keeps its tokens and f-hat, so
# the VAR and DiT below, trained on vqvae.safetensors, decode through the fine-tuned decoder unchanged).
$V train vqvae --finetune-decoder "$W/vqvae.safetensors" --steps 900 --lr 6e-4 --warmup 50 --seed 0 \
    -o "$W/vqvae-decoder.safetensors"
# VAR on the frozen tokenizer's tokens of 20k training images, with an EMA of its weights (exported).
$V train var --vae "$W/vqvae.safetensors" --train-size 20000 --token-cache "$W/var-tokens.safetensors" \
    --steps 7000 --batch-size 32 --lr 5e-3 --warmup 100 --weight-decay 0.05 --ema 0.999 --seed 0 -o "$W/var.safetensors"
# DiT on the same tokenizer's continuous latent f-hat of 20k training images, patch 1 (64 tokens), with an EMA (exported).
$V train dit --vae "$W/vqvae.safetensors" --train-size 20000 --latents "$W/dit-latents.safetensors" \
    --steps 9600 --batch-size 64 --lr 4e-3 --warmup 100 --min-snr-gamma 5 --sample-cfg 6 --ema 0.9995 --patch 1 --seed 0 \
    -o "$W/dit.safetensors"

$V train export "$W/classifier.safetensors" -o assets/models/toy-classifier.safetensors
$V train export "$W/vqvae-decoder.safetensors" -o assets/models/toy-vqvae.safetensors
# The recommended sampling settings, recorded in the exported files (README "Built-in models"; chosen on 300
# samples of seed 5): DiT cfg 4, DDPM 250 steps (all channels); VAR cfg 1, top-k 20, top-p 0.9, no more_smooth.
# DiT edits in-paint with RePaint resampling (40 out-paintings: 7 of 40 lost the background without it, 0 with it).
$V train export "$W/dit.safetensors" -o assets/models/toy-dit.safetensors --meta varlab.sample_cfg=4 --meta varlab.sample_steps=250 \
    --meta varlab.edit_resample=1
$V train export "$W/var.safetensors" -o assets/models/toy-var.safetensors \
    --meta varlab.sample_more_smooth=0 --meta varlab.sample_top_k=20 --meta varlab.sample_top_p=0.9 --meta varlab.sample_cfg=1
$V bench toy-quality --n 1000 --scale-prefixes --grids assets/grids --json "$W/toy-quality.json"
