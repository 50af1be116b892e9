#!/usr/bin/env bash
# Training-step benchmark of the SSPA classifier, Swift vs PyTorch CPU (issue 4, section 6). Not a test.
#
#   scripts/bench_train.sh [STEPS]        # STEPS timed steps per run (default 2), after 1 warm-up step
#
# Builds sspa-bench-train (release, under the shared build lock), then for C in 20 80 and threads in 1 2 runs
#   SSPA_THREADS=T OPENBLAS_NUM_THREADS=T .build/release/sspa-bench-train --d 512 --m 196 --c C --b 32 ...
#   python3 scripts/sspa_reference.py --bench --classes C --threads T --iters STEPS   (torch.set_num_threads(T))
# back to back (same load conditions), and prints a table: ms/step (median), PyTorch/Swift ratio (goal ≥ 1.2),
# peak RSS of each process, and Swift's CPU time per step (all threads; on a busy machine wall time ≫ CPU time
# means the run waited for a core). The 1-minute load average before each run is shown: the machine is shared. Raw JSON lines are kept in $OUT (default /tmp/sspa-bench-train.jsonl).
# Env: CLASSES="20 80", THREADS="1 2", WARMUP=1, OUT=...; SKIP_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS="${1:-${STEPS:-2}}"
WARMUP="${WARMUP:-1}"
CLASSES="${CLASSES:-20 80}"
THREADS="${THREADS:-1 2}"
OUT="${OUT:-/tmp/sspa-bench-train.jsonl}"
BIN=.build/release/sspa-bench-train

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "building sspa-bench-train (release) ..." >&2
    flock /tmp/sspa-swift-build.lock swift build -c release --product sspa-bench-train >&2
fi
[[ -x "$BIN" ]] || { echo "missing $BIN" >&2; exit 1; }

: > "$OUT"
for C in $CLASSES; do
    for T in $THREADS; do
        export SSPA_THREADS=$T OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T
        echo "C=$C threads=$T: swift ... (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        s=$("$BIN" --d 512 --m 196 --c "$C" --b 32 --threads "$T" --steps "$STEPS" --warmup "$WARMUP" 2>/dev/null | tail -1)
        echo "{\"side\": \"swift\", \"load\": $(cut -d' ' -f1 /proc/loadavg), \"result\": $s}" >> "$OUT"
        echo "C=$C threads=$T: pytorch ... (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        p=$(python3 scripts/sspa_reference.py --bench --classes "$C" --threads "$T" --iters "$STEPS" 2>/dev/null | tail -1)
        echo "{\"side\": \"pytorch\", \"load\": $(cut -d' ' -f1 /proc/loadavg), \"result\": $p}" >> "$OUT"
    done
done

python3 - "$OUT" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
swift = {(r["result"]["C"], r["result"]["threads"]): r for r in rows if r["side"] == "swift"}
torch = {(r["result"]["C"], r["result"]["threads"]): r for r in rows if r["side"] == "pytorch"}
print("B=32 M=196 d=512, ViT-B/16-size random text tower; ms per training step (median); ratio = PyTorch/Swift, goal >= 1.2")
print(f"{'C':>3} {'thr':>3} | {'Swift ms':>9} {'PyTorch ms':>10} {'ratio':>6} {'goal':>4} | {'Swift RSS MB':>12} {'PyTorch RSS MB':>14} | {'Swift CPU ms':>12} | load 1min S / P")
for key in sorted(swift):
    s, p = swift[key]["result"], torch.get(key, {}).get("result")
    sm = s["step_ms_median"]
    pm = p["median_s"] * 1000 if p else float("nan")
    ratio = pm / sm
    print(f"{key[0]:>3} {key[1]:>3} | {sm:>9.0f} {pm:>10.0f} {ratio:>6.2f} {'ok' if ratio >= 1.2 else 'MISS':>4} | "
          f"{s['peak_rss_mb']:>12.0f} {(p['peak_rss_mb'] if p else float('nan')):>14.0f} | "
          f"{s.get('step_cpu_ms_median', float('nan')):>12.0f} | "
          f"{swift[key]['load']:.1f} / {torch.get(key, {}).get('load', float('nan')):.1f}")
EOF
