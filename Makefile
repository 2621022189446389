# The two commands a newcomer types: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test fuzz demo demo-fixtures bench install format format-check
deps:
	bash scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release

# Tests compute real (tiny) models, so they run in release mode.
test: deps
	$(SWIFT) test -c release --disable-swift-testing

# The binary and the built-in models: PREFIX/bin/varlab finds PREFIX/share/varlab/assets/models by itself
# (`varlab --version` says where its models are). The binary uses the Swift runtime of the toolchain it was built with.
PREFIX ?= /usr/local
install: build
	install -d "$(PREFIX)/bin" "$(PREFIX)/share/varlab/assets/models"
	install -m 755 .build/release/varlab "$(PREFIX)/bin/varlab"
	install -m 644 assets/models/*.safetensors "$(PREFIX)/share/varlab/assets/models/"
	@echo "installed $(PREFIX)/bin/varlab; built-in models in $(PREFIX)/share/varlab/assets/models"

# swift-format with the repository's .swift-format (the toolchain's `swift format`).
FORMAT_PATHS = Sources Tests Fuzz Package.swift
format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMAT_PATHS)
format-check:
	$(SWIFT) format lint --strict --recursive --parallel $(FORMAT_PATHS)

# libFuzzer on every parser of untrusted input, FUZZ_SECONDS per target (CI runs 20).
FUZZ_SECONDS ?= 60
fuzz: deps
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

bench: build
	.build/release/varlab bench gemm

# The whole pipeline on the built-in toy models of assets/models (trained here, see README "Built-in models"):
# class-conditional grids from both families, an edit with each, and the toy metric suite on VAR samples.
V = .build/release/varlab
TOY_CLASSES = 0,1,2,3,4,5,6,7,8,9
demo: build
	mkdir -p out
	$(V) sample --model var --class $(TOY_CLASSES) --n 40 --seed 0 -o out/var_grid.png
	$(V) sample --model dit --class $(TOY_CLASSES) --n 40 --seed 0 -o out/dit_grid.png
	$(V) data toy --n 20 --split heldout -o out/toy_heldout/
	$(V) edit --model var --image out/toy_heldout/class3_000013.png --box 0,0,0.5,1 --class 3 --compare -o out/var_edit.png
	$(V) edit --model dit --image out/toy_heldout/class0_000010.png --outpaint 0.25,0.25,0.75,0.75 --compare -o out/dit_edit.png
	$(V) sample --model var --classes all --per-class 50 --seed 1 -o out/var_samples/
	$(V) data toy --n 500 --split heldout --start 1000 -o out/toy_reference/
	$(V) eval out/var_samples out/toy_reference
	@echo
	@echo "What the demo made (all in out/):"
	@echo "  out/var_grid.png          VAR samples, one row per toy class (name on the left), 4 per class"
	@echo "  out/dit_grid.png          DiT samples, the same layout"
	@echo "  out/var_edit-compare.png  VAR in-painting: the left half of a cross image re-drawn as class 'cross'"
	@echo "                            (input | regenerated cells | output, enlarged 4x); out/var_edit.png is the result"
	@echo "  out/dit_edit-compare.png  DiT out-painting: everything around the centre of a disc image re-drawn, no class"
	@echo "                            given, so the model continues the picture (RePaint with resampling, the built-in"
	@echo "                            DiT's default); input | regenerated cells | output, enlarged 4x; out/dit_edit.png"
	@echo "  out/var_samples/          500 VAR samples (50 per class) measured above against out/toy_reference/"
	@echo "                            (toy metrics: toy-FID, precision / recall, classifier accuracy)"

# The same pipeline on the random-weight fixture models (structured noise; checks the official-checkpoint paths).
FIXTURES ?= $(or $(VARLAB_FIXTURES),../shared/fixtures)
demo-fixtures: build
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
