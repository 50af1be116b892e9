#!/usr/bin/env bash
# Feature-extraction benchmark of the CLIP vision tower, Swift vs transformers on CPU (issue 5, section 6). Not a test.
#
#   scripts/bench_vision.sh [IMAGES]      # IMAGES decoded 224² images (default 200)
#
# Builds sspa-bench-vision (release, under the shared build lock), then:
#   python3 scripts/bench_vision.py --prepare WORK    a random ViT-B/16-size CLIP checkpoint (CLIPModel layout, vision
#       768 wide, 12 layers, 12 heads, patch 16, 224², projection 512, quick_gelu) and IMAGES pixel tensors (random
#       crops and flips of scikit-image's sample photos through CLIPImageProcessor) in one pixels.safetensors, in a
#       temporary folder WORK that is deleted at the end (KEEP=1 keeps it); nothing is committed.
# and for threads in 1 2, back to back (same load conditions):
#   SSPA_THREADS=T OPENBLAS_NUM_THREADS=T .build/release/sspa-bench-vision --clip WORK/clip --pixels WORK/pixels.safetensors --batch 32 ...
#   python3 scripts/bench_vision.py --bench-one WORK --threads T --batch 32 ...   (torch.set_num_threads(T), inference_mode)
#   python3 scripts/bench_vision.py --compare swift.safetensors torch.safetensors  (x0 and regions, max |Δ| <= 1e-4)
# Both sides: the same pixels, batch 32 (`sspa features`' default), WARMUP untimed batches, then REPEAT timed
# passes over all images (median). It prints one table: images/s of each side, the ratio Swift/PyTorch (goal ≥ 1.2),
# peak RSS of each process, CPU/wall, the 1-minute load average before each run (the machine is shared), and the
# parity numbers. Raw JSON lines are kept in $OUT (default /tmp/sspa-bench-vision.jsonl).
#
# E2E=1 adds a second row per thread count, end to end on IMAGES JPEG files (the same crops): `sspa features`
# (libjpeg-turbo decoding, our preprocessing, the tower, f16 features file; its own images/s, which excludes model
# loading) against PIL + CLIPImageProcessor + transformers (same batch, model loading excluded, no warm-up on either
# side). Both processes are pinned with taskset to T cores there, because `sspa features` decodes on every core it
# may use. It needs the sspa and sspa-knowledge release builds and WordNet (the label set is built offline).
#
# LOAD=1: the rows under load instead (issue 13 §3). At LOAD_THREADS (default 2) threads, ROUNDS rounds (default
# 3) of: Swift and PyTorch quiet (parity checked), then one background busy loop started (scripts/bench_load.sh;
# stopped by its PID at the end of the round, and on exit, error or Ctrl-C), Swift and PyTorch again. Prints each
# side's quiet and loaded images/s (median over rounds) and its fall = throughput loaded / quiet (1 = no fall).
# Goal: Swift's fall is no larger than PyTorch's. BENCH_LOCK=/tmp/sspa-swift.lock holds that lock during each round
# and releases it between rounds, so no Swift build runs beside a measurement.
#
# Exit status 1 (after the table, with a loud message) when the parity check fails.
# Env: THREADS="1 2", BATCH=32, WARMUP=1, REPEAT=1, E2E=0, KEEP=0, OUT=...; SKIP_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_load.sh

IMAGES="${1:-${IMAGES:-200}}"
THREADS="${THREADS:-1 2}"
BATCH="${BATCH:-32}"
WARMUP="${WARMUP:-1}"
REPEAT="${REPEAT:-1}"
E2E="${E2E:-0}"
OUT="${OUT:-/tmp/sspa-bench-vision.jsonl}"
BIN="${SSPA_BENCH_BIN:-.build/release/sspa-bench-vision}"  # SSPA_BENCH_BIN: another build to time

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    products=(sspa-bench-vision)
    [[ "$E2E" == 1 ]] && products+=(sspa sspa-knowledge)
    for p in "${products[@]}"; do
        echo "building $p (release) ..." >&2
        flock /tmp/sspa-swift-build.lock swift build -c release --product "$p" >&2
    done
fi
[[ -x "$BIN" ]] || { echo "missing $BIN" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sspa-bench-vision.XXXXXX)
cleanup() {
    load_stop
    lock_give
    if [[ "${KEEP:-0}" == 1 ]]; then echo "keeping $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "preparing $IMAGES images and a random ViT-B/16-size checkpoint in $WORK ..." >&2
python3 scripts/bench_vision.py --prepare "$WORK" --images "$IMAGES" $([[ "$E2E" == 1 ]] && echo --e2e) >&2
if [[ "$E2E" == 1 ]]; then
    .build/release/sspa-knowledge build --labels "$WORK/labels.txt" --name benchvision --db "$WORK/knowledge.db" \
        --provider wordnet --quiet >&2
fi

load() { cut -d' ' -f1 /proc/loadavg; }
if [[ "${LOAD:-0}" == 1 ]]; then
    T="${LOAD_THREADS:-2}"
    ROUNDS="${ROUNDS:-3}"
    OUT="${OUT_LOAD:-/tmp/sspa-bench-vision-load.jsonl}"
    export SSPA_THREADS=$T OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T
    : > "$OUT"
    parity_ok=1
    for r in $(seq "$ROUNDS"); do
        lock_take
        for cond in quiet loaded; do
            if [[ $cond == loaded ]]; then load_start; fi
            l=$(load); echo "threads=$T round $r/$ROUNDS $cond: swift ... (load $l)" >&2
            s=$("$BIN" --clip "$WORK/clip" --pixels "$WORK/pixels.safetensors" --batch "$BATCH" --warmup "$WARMUP" \
                --repeat "$REPEAT" --threads "$T" --out "$WORK/swift.safetensors" | tail -1)
            echo "{\"kind\": \"swift\", \"cond\": \"$cond\", \"round\": $r, \"threads\": $T, \"load\": $l, \"result\": $s}" >> "$OUT"
            l=$(load); echo "threads=$T round $r/$ROUNDS $cond: pytorch ... (load $l)" >&2
            p=$(python3 scripts/bench_vision.py --bench-one "$WORK" --threads "$T" --batch "$BATCH" --warmup "$WARMUP" \
                --repeat "$REPEAT" --out "$WORK/torch.safetensors" | tail -1)
            echo "{\"kind\": \"pytorch\", \"cond\": \"$cond\", \"round\": $r, \"threads\": $T, \"load\": $l, \"result\": $p}" >> "$OUT"
            if [[ $cond == loaded ]]; then load_stop; fi
            if c=$(python3 scripts/bench_vision.py --compare "$WORK/swift.safetensors" "$WORK/torch.safetensors"); then :; else parity_ok=0; fi
            echo "threads=$T round $r $cond: parity $(echo "$c" | tail -1)" >&2
            rm -f "$WORK/swift.safetensors" "$WORK/torch.safetensors"
        done
        lock_give
    done
    python3 scripts/bench_vision.py --load-table "$OUT" --cpu "$(cpu_name)" --blas "$(blas_line)"
    if [[ $parity_ok != 1 ]]; then
        echo "!!! PARITY FAILED: Swift and transformers outputs differ by more than 1e-4; the timings are void. !!!" >&2
        exit 1
    fi
    exit 0
fi

record() {  # kind threads load result-json
    echo "{\"kind\": \"$1\", \"threads\": $2, \"load\": $3, \"result\": $4}" >> "$OUT"
}
maxrss_mb() { awk '{printf "%.1f", $1 / 1024}' "$1"; }

: > "$OUT"
parity_ok=1
for T in $THREADS; do
    export SSPA_THREADS=$T OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T
    l=$(load); echo "threads=$T: swift ... (load $l)" >&2
    s=$("$BIN" --clip "$WORK/clip" --pixels "$WORK/pixels.safetensors" --batch "$BATCH" --warmup "$WARMUP" \
        --repeat "$REPEAT" --threads "$T" --out "$WORK/swift-$T.safetensors" | tail -1)
    record swift "$T" "$l" "$s"
    l=$(load); echo "threads=$T: pytorch ... (load $l)" >&2
    p=$(python3 scripts/bench_vision.py --bench-one "$WORK" --threads "$T" --batch "$BATCH" --warmup "$WARMUP" \
        --repeat "$REPEAT" --out "$WORK/torch-$T.safetensors" | tail -1)
    record pytorch "$T" "$l" "$p"
    if c=$(python3 scripts/bench_vision.py --compare "$WORK/swift-$T.safetensors" "$WORK/torch-$T.safetensors"); then :; else parity_ok=0; fi
    record parity "$T" "$(load)" "$(echo "$c" | tail -1)"
    echo "threads=$T: parity $(echo "$c" | tail -1)" >&2
    rm -f "$WORK/swift-$T.safetensors" "$WORK/torch-$T.safetensors"

    if [[ "$E2E" == 1 ]]; then
        cpus=$(seq -s, 0 $((T - 1)))
        l=$(load); echo "threads=$T: sspa features (end to end, cores $cpus) ... (load $l)" >&2
        rm -rf "$WORK/features-$T.safetensors" "$WORK/features-$T.safetensors.partial"
        line=$(taskset -c "$cpus" /usr/bin/time -f "%M" -o "$WORK/rss" .build/release/sspa features --clip "$WORK/clip" \
            --manifest "$WORK/manifest.json" --out "$WORK/features-$T.safetensors" --knowledge "$WORK/knowledge.db" \
            --label-set benchvision --batch "$BATCH" --quiet | grep '^wrote ')
        echo "  $line" >&2
        rate=$(echo "$line" | sed -E 's/.*, ([0-9.]+) images\/s\)$/\1/')
        record swift-e2e "$T" "$l" "{\"images_per_s\": $rate, \"seconds\": $(python3 -c "print($IMAGES / $rate)"), \"peak_rss_mb\": $(maxrss_mb "$WORK/rss"), \"output\": \"f16\"}"
        l=$(load); echo "threads=$T: PIL + CLIPImageProcessor + transformers (end to end, cores $cpus) ... (load $l)" >&2
        p=$(taskset -c "$cpus" /usr/bin/time -f "%M" -o "$WORK/rss" python3 scripts/bench_vision.py --e2e-one "$WORK" \
            --threads "$T" --batch "$BATCH" --out "$WORK/torch-e2e-$T.safetensors" | tail -1)
        p=$(echo "$p" | python3 -c "import json,sys; r=json.load(sys.stdin); r['peak_rss_mb']=$(maxrss_mb "$WORK/rss"); print(json.dumps(r))")
        record pytorch-e2e "$T" "$l" "$p"
        c=$(python3 scripts/bench_vision.py --compare "$WORK/features-$T.safetensors" "$WORK/torch-e2e-$T.safetensors" --informative)
        record parity-e2e "$T" "$(load)" "$(echo "$c" | tail -1)"
        rm -rf "$WORK/features-$T.safetensors" "$WORK/torch-e2e-$T.safetensors"
    fi
done

echo
table_ok=1
python3 scripts/bench_vision.py --table "$OUT" || table_ok=0
if [[ $parity_ok != 1 || $table_ok != 1 ]]; then
    echo >&2
    echo "!!! PARITY FAILED: Swift and transformers outputs differ by more than 1e-4 (see $OUT); the timings are void. !!!" >&2
    exit 1
fi
