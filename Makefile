# The two commands a newcomer types: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo bench
deps:
	bash scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release

# Tests compute real (tiny) models, so they run in release mode.
test: deps
	$(SWIFT) test -c release --disable-swift-testing

bench: build
	.build/release/varlab bench gemm

# The whole pipeline on the fixture models (random weights: the pictures are structured noise).
FIXTURES ?= $(or $(VARLAB_FIXTURES),../shared/fixtures)
V = .build/release/varlab
demo: build
	@test -d "$(FIXTURES)" || { echo "fixtures not found at $(FIXTURES) (set VARLAB_FIXTURES)"; exit 1; }
	mkdir -p out
	$(V) sample --model var --checkpoint $(FIXTURES)/var/var.pth --vae $(FIXTURES)/var/vqvae.pth --patch-nums 1,2,3,4 \
	    --class 0,1,2,3 --n 8 --seed 0 -o out/var_grid.png
	$(V) sample --model dit --checkpoint $(FIXTURES)/dit/dit.safetensors --vae $(FIXTURES)/dit/autoencoder_kl \
	    --class 0,1 --n 4 --steps 50 --seed 0 -o out/dit_grid.png
	$(V) edit --model var --checkpoint $(FIXTURES)/var/var.pth --vae $(FIXTURES)/var/vqvae.pth --patch-nums 1,2,3,4 \
	    --image assets/examples/scene.png --box 0.25,0.25,0.75,0.75 --compare -o out/var_edit.png
	$(V) sample --model var --checkpoint $(FIXTURES)/var/var.pth --vae $(FIXTURES)/var/vqvae.pth --patch-nums 1,2,3,4 \
	    --classes all --per-class 2 --seed 0 -o out/var_samples.npz
	$(V) eval out/var_samples.npz $(FIXTURES)/eval/adm_reference_batch.npz \
	    --inception $(FIXTURES)/eval/fid_inception_v3_fp16.safetensors --no-cache
	@echo "demo outputs in out/: var_grid.png dit_grid.png var_edit.png var_edit-compare.png var_samples.npz"
