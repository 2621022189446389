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
