#!/usr/bin/env bash
# Sample the standard 50k FID set (50 images for each of the 1000 ImageNet classes) on N nodes with a Slurm
# job array, then merge the shards. Each array task produces exactly the slice one machine would produce
# of the whole set: the randomness of sample i is a function of (seed, i) only.
#
#   sbatch --array=0-7 scripts/slurm_sample_50k.sh          # 8 nodes
#   # when all tasks are done:
#   varlab merge-shards samples/shard_{0..7}of8.npz -o samples/var_d16_50k.npz
#   varlab eval samples/var_d16_50k.npz VIRTUAL_imagenet256_labeled.npz --inception pt_inception-2015-12-05-6726825d.pth
#
#SBATCH --job-name=varlab-50k
#SBATCH --cpus-per-task=32
#SBATCH --time=48:00:00
#SBATCH --output=logs/%x_%A_%a.log
set -euo pipefail
N=${SLURM_ARRAY_TASK_COUNT:?run as a job array (sbatch --array=0-N-1)}
K=${SLURM_ARRAY_TASK_ID:?}
MODEL=${MODEL:-var}                       # var or dit
CKPT=${CKPT:-var_d16.pth}                 # DiT: DiT-XL-2-256x256.pt
VAE=${VAE:-vae_ch160v4096z32.pth}         # DiT: sd-vae-ft-ema/
mkdir -p samples logs
varlab sample --model "$MODEL" --checkpoint "$CKPT" --vae "$VAE" \
  --classes all --per-class 50 --seed 0 --threads "$SLURM_CPUS_PER_TASK" \
  --shard "$K/$N" -o "samples/shard_${K}of${N}.npz"
