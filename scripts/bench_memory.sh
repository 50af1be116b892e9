#!/usr/bin/env bash
# Peak resident memory of `sspa train` (and optionally `sspa evaluate`) against the number of images (issue 11 §1).
# A measurement, not a test.
#
#   scripts/bench_memory.sh                      # N = 80,000 200,000 400,000 800,000 (0.5 to 5.0 GB on disk)
#   SIZES="20000 200000" STEPS=20 EVALUATE=1 scripts/bench_memory.sh
#
# For each N it writes a synthetic features file (scripts/make_features.py: M 196 regions, d 16, float16, 6 labels,
# like the issue's 1.26 GB file at N = 200,000), trains on it with the tiny CLIP fixture for STEPS optimizer steps
# (--max-steps; batch 32) under `/usr/bin/time -f %M`, and prints N, the file size and the peak RSS. EVALUATE=1 also
# runs `sspa evaluate --zero-shot` over the whole file (every image is read; it keeps the N × C scores the metrics
# need, so its memory grows by about 40 bytes per image and label). Each file is deleted after its row.
# Env: SIZES, STEPS (default 50), EVALUATE (0), BIN (default .build/release, else .build/debug), WORK (scratch folder,
# default /tmp/sspa-bench-memory). Build first (under the shared lock): flock /tmp/sspa-swift.lock swift build -c release --product sspa
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${SIZES:-80000 200000 400000 800000}"
STEPS="${STEPS:-50}"
EVALUATE="${EVALUATE:-0}"
WORK="${WORK:-/tmp/sspa-bench-memory}"
CLIP=Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu
if [[ -z "${BIN:-}" ]]; then
    if [[ -x .build/release/sspa ]]; then BIN=.build/release; else BIN=.build/debug; fi
fi
KBIN="$BIN/sspa-knowledge"
[[ -x "$KBIN" ]] || KBIN=.build/debug/sspa-knowledge   # only builds the small knowledge.db
[[ -x "$BIN/sspa" && -x "$KBIN" ]] || { echo "missing $BIN/sspa or sspa-knowledge; build first" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

mkdir -p "$WORK"
trap 'rm -f "$WORK/features.safetensors"; rm -rf "$WORK/run"' EXIT
printf 'dog\ncat\ncar\ntree\nboat\nbird\n' > "$WORK/bench.txt"
if [[ ! -f "$WORK/knowledge.db" ]]; then
    "$KBIN" build --labels "$WORK/bench.txt" --db "$WORK/knowledge.db" --quiet >&2
    "$KBIN" encode --clip "$CLIP" --label-set bench --db "$WORK/knowledge.db" --quiet >&2
fi
ENCODER=$(sqlite3 "$WORK/knowledge.db" "select id from encoders where identity <> 'weights-sha256' limit 1")

echo "binary: $BIN; M 196, d 16, f16, 6 labels, batch 32, $STEPS steps; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf '| %9s | %9s | %15s | %8s |%s\n' "N" "file" "train peak RSS" "train s" "$([[ $EVALUATE == 1 ]] && printf ' %18s | %8s |' 'evaluate peak RSS' 'eval s')"
printf '|%s|%s|%s|%s|%s\n' "-----------:" "----------:" "----------------:" "---------:" "$([[ $EVALUATE == 1 ]] && printf -- '-------------------:|---------:|')"
for N in $SIZES; do
    python3 scripts/make_features.py --out "$WORK/features.safetensors" --images "$N" --regions 196 --width 16 \
        --labels dog,cat,car,tree,boat,bird --encoder "$ENCODER"
    size=$(stat -c %s "$WORK/features.safetensors")
    rm -rf "$WORK/run"
    start=$(date +%s.%N)
    /usr/bin/time -f %M -o "$WORK/rss-train" "$BIN/sspa" train --features "$WORK/features.safetensors" \
        --knowledge "$WORK/knowledge.db" --label-set bench --clip "$CLIP" --out "$WORK/run" --batch 32 \
        --max-steps "$STEPS" --quiet > "$WORK/train.log"
    train_s=$(echo "$(date +%s.%N) - $start" | bc)
    row=$(printf '| %9s | %6.2f GB | %12.1f MB | %8.1f |' "$N" "$(echo "$size / 1000000000" | bc -l)" \
        "$(echo "$(cat "$WORK/rss-train") / 1024" | bc -l)" "$train_s")
    if [[ $EVALUATE == 1 ]]; then
        start=$(date +%s.%N)
        /usr/bin/time -f %M -o "$WORK/rss-eval" "$BIN/sspa" evaluate --zero-shot --features "$WORK/features.safetensors" \
            --knowledge "$WORK/knowledge.db" --label-set bench --clip "$CLIP" --json > /dev/null
        eval_s=$(echo "$(date +%s.%N) - $start" | bc)
        row+=$(printf ' %15.1f MB | %8.1f |' "$(echo "$(cat "$WORK/rss-eval") / 1024" | bc -l)" "$eval_s")
    fi
    echo "$row"
    rm -f "$WORK/features.safetensors"
done
