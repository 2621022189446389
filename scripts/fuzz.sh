#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of every parser of untrusted input: pickle, torch zip / legacy checkpoints,
# safetensors, npy, npz, PNG, JPEG and edit-jobs files. Each target runs for a bounded time on a corpus seeded from
# the fixtures and the examples; an input may be refused with an error, but a crash, a hang (-timeout) or a memory
# blow-up (-rss_limit_mb / -malloc_limit_mb) fails the run, with the input saved under $WORK/artifacts/.
# Usage: scripts/fuzz.sh [seconds per target, default 20] [targets...]   (CI runs it after the tests)
# Replay a saved input: swift build -c release --product varlab-fuzz && .build/release/varlab-fuzz TARGET FILE
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
shift || true
TARGETS=${*:-pickle torch safetensors npy npz png jpeg jobs}
FIX=${VARLAB_FIXTURES:-../shared/fixtures}
WORK=${FUZZ_WORK:-.build-fuzz/work}

swift build -c release --product varlab-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer \
    -Xswiftc -DVARLAB_LIBFUZZER -Xlinker --export-dynamic-symbol=LLVMFuzzerRunDriver
BIN=.build-fuzz/release/varlab-fuzz

rm -rf "$WORK/seeds" "$WORK/artifacts"
mkdir -p "$WORK/artifacts"
for t in $TARGETS; do mkdir -p "$WORK/seeds/$t" "$WORK/corpus/$t"; done
seed() {  # seed TARGET FILE...: copies the files that exist into the target's seed folder
    local t=$1; shift
    [ -d "$WORK/seeds/$t" ] || return 0
    for f in "$@"; do [ -f "$f" ] && cp "$f" "$WORK/seeds/$t/$(echo "$f" | tr '/' '_')"; done
    return 0
}
shopt -s nullglob globstar
seed torch "$FIX"/dit/dit_legacy_format.pt "$FIX"/eval/dinov2_tiny_pretrain.pth
seed safetensors "$FIX"/dit/dit_forward_io.safetensors "$FIX"/dit/diffusion_schedule.safetensors "$FIX"/eval/clip_cmmd.safetensors
seed npz "$FIX"/eval/*.npz
seed png assets/examples/*.png
seed jobs assets/examples/*.json assets/examples/*.jsonl
# The pickles inside the torch files (data.pkl of the zip format; the legacy format starts with its pickles).
if [ -d "$WORK/seeds/pickle" ]; then
    python3 - "$WORK/seeds/pickle" "$FIX"/**/*.pth "$FIX"/**/*.pt <<'EOF'
import sys, zipfile, os
out = sys.argv[1]
for i, path in enumerate(sys.argv[2:]):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if n.endswith("data.pkl"):
                    open(os.path.join(out, f"{i}_data.pkl"), "wb").write(z.read(n))
    else:
        open(os.path.join(out, f"{i}_legacy.pkl"), "wb").write(open(path, "rb").read()[:65536])
EOF
fi
# npy seeds: the members of the npz fixtures.
if [ -d "$WORK/seeds/npy" ]; then
    python3 - "$WORK/seeds/npy" "$FIX"/eval/*.npz <<'EOF'
import sys, zipfile, os
for i, path in enumerate(sys.argv[2:]):
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            open(os.path.join(sys.argv[1], f"{i}_{n}"), "wb").write(z.read(n))
EOF
fi
if [ -d "$WORK/seeds/jpeg" ]; then
    python3 - "$WORK/seeds/jpeg" <<'EOF'
import sys, os
# Python's standard library writes no JPEG: seed with the marker skeleton of a 16x16 greyscale baseline file
# (SOI, APP0, DQT, SOF0, DHT, SOS, EOI) and let the fuzzer grow it; libjpeg's error paths matter most here.
skeleton = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb004300") + bytes(range(1, 65)) + bytes.fromhex(
    "ffc0000b080010001001011100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffda0008010100003f00d2cf20ffd9")
open(os.path.join(sys.argv[1], "skeleton.jpg"), "wb").write(skeleton)
EOF
fi

status=0
for t in $TARGETS; do
    echo "== fuzz $t for ${SECS}s"
    if ! VARLAB_FUZZ_TARGET=$t "$BIN" "$WORK/corpus/$t" "$WORK/seeds/$t" -seed=1 -max_total_time="$SECS" -timeout=10 \
        -rss_limit_mb=3072 -malloc_limit_mb=3072 -max_len=4194304 -len_control=100 -print_final_stats=1 \
        -artifact_prefix="$WORK/artifacts/$t-" 2>"$WORK/$t.log"; then
        status=1
        echo "FAILED: $t (log: $WORK/$t.log, input: $WORK/artifacts/$t-*)"
        grep -E "ERROR|Fatal|SUMMARY|crash|timeout|out-of-memory" "$WORK/$t.log" | head -5 || true
    else
        grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$WORK/$t.log" | tr '\n' ' '; echo
    fi
done
exit $status
