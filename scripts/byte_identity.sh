#!/usr/bin/env bash
# Behaviour-preservation check for refactorings (issue 13): runs a fixed set of commands (sample, edit, jobs,
# eval, a 40-step run of every trainer; built-in and fixture models) and records the SHA-256 of every output.
#   scripts/byte_identity.sh record FILE   write the hashes to FILE
#   scripts/byte_identity.sh check FILE    run again and compare; prints IDENTICAL or the files that differ (exit 1)
# Outputs are deterministic for any thread count, but float results depend on the CPU's BLAS kernel, so compare
# only on the same machine kind. Uses .build/release/varlab (or $VARLAB).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?record or check}; ref=${2:?hash file}
V=${VARLAB:-.build/release/varlab}
F=${VARLAB_FIXTURES:-../shared/fixtures}
# A fixed folder: file metadata records paths (checkpoints name their data and tokenizer).
W=/tmp/varlab-identity; rm -rf "$W"; mkdir -p "$W"
q() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; }

# Sampling: both built-in families, every output kind, a shard; the fixture VAR with its scale schedule.
q $V sample --model var --class 0,3,7 --n 6 --seed 1 --batch-size 4 -o "$W/var_grid.png"
q $V sample --model var --classes all --per-class 2 --seed 2 -o "$W/var_all.npz"
q $V sample --model var --class 1,2 --n 5 --seed 3 --shard 1/2 -o "$W/var_dir/"
q $V sample --model var --class 4 --n 2 --top-k 0 --top-p 0 --no-more-smooth --cfg 3 --temperature 0.8 -o "$W/var_knobs.npz"
q $V sample --model dit --class 0,5 --n 4 --seed 1 --steps 10 -o "$W/dit_grid.png"
q $V sample --model dit --class 2 --n 2 --steps 8 --sampler ddim --cfg 2 -o "$W/dit_ddim.npz"
q $V sample --model var --checkpoint "$F/var/var.pth" --vae "$F/var/vqvae.pth" --patch-nums 1,2,3,4 --class 1,2 --n 2 -o "$W/fixture_var.npz"
# The ablation variants (raster AR, no AdaLN): 20 training steps, then sampled with every token knob.
for v in ar plain-ln; do
  q $V train var --variant $v --vae assets/models/toy-vqvae.safetensors --train-size 300 --steps 20 --batch-size 16 --seed 0 -o "$W/var-$v.safetensors"
  q $V sample --checkpoint "$W/var-$v.safetensors" --vae assets/models/toy-vqvae.safetensors --class 1,2,3 --n 3 --cfg 2 --temperature 0.9 --top-k 50 -o "$W/var-$v.npz"
done
# Editing: both families, a mask, compare strips; the example jobs file (fixture models).
q $V data toy --n 4 --split heldout -o "$W/toy/"
img=$(ls "$W"/toy/*.png | head -1)
q $V edit --model var --image "$img" --box 0,0,0.5,1 --class 3 --seed 4 --compare -o "$W/var_edit.png"
q $V edit --model dit --image "$img" --outpaint 0.25,0.25,0.75,0.75 --class 0 --steps 10 --compare -o "$W/dit_edit.png"
mkdir -p "$W/jobs" && cp assets/examples/*.png "$W/jobs/"
sed -e "s#\.\./\.\./\.\./shared/fixtures#$(cd "$F" && pwd)#g" -e "s#\.\./\.\./out/edit#$W/jobs/out#g" assets/examples/jobs.json > "$W/jobs/jobs.json"
q $V edit --jobs "$W/jobs/jobs.json"
# Evaluation (toy metrics) of the VAR samples against held-out images.
q $V data toy --n 30 --split heldout --start 100 -o "$W/ref/"
q $V sample --model var --classes all --per-class 3 --seed 5 -o "$W/eval_samples/"
$V eval "$W/eval_samples" "$W/ref" --json "$W/eval.json" > "$W/eval.txt" 2>/dev/null
# 40 steps of every trainer (checkpoints include the optimizer state).
q $V train classifier --steps 40 --seed 0 -o "$W/classifier.safetensors"
q $V train vqvae --steps 40 --seed 0 --save-every 40 --eval-n 8 -o "$W/vqvae.safetensors"
q $V train var --vae assets/models/toy-vqvae.safetensors --train-size 600 --steps 40 --batch-size 16 --seed 0 -o "$W/var.safetensors"
q $V train dit --vae assets/models/toy-vqvae.safetensors --train-size 600 --steps 40 --batch-size 16 --seed 0 -o "$W/dit.safetensors"

# Hashes of every output file (eval.txt carries no timings).
(cd "$W" && find . -type f ! -name hashes ! -name '*.tmp*' | LC_ALL=C sort | xargs sha256sum) > "$W/hashes"
case "$mode" in
  record) cp "$W/hashes" "$ref"; echo "recorded $(wc -l < "$ref") output hashes in $ref" ;;
  check)
    if diff "$ref" "$W/hashes" > "$W/diff"; then echo "IDENTICAL: $(wc -l < "$ref") outputs byte-identical"
    else echo "DIFFERENT:"; cat "$W/diff"; exit 1; fi ;;
  *) echo "mode must be record or check" >&2; exit 2 ;;
esac
