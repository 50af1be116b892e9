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
#
# LOAD=1: the rows under load instead (issue 13 §3). At LOAD_THREADS (default 2) threads and each C of CLASSES
# (default 20 here), ROUNDS rounds (default 5, each STEPS timed steps, default 4 here) of: Swift and PyTorch quiet, then one background busy loop started
# (scripts/bench_load.sh; stopped by its PID at the end of the round, and on exit, error or Ctrl-C), Swift and
# PyTorch again. Prints each side's quiet and loaded ms/step (median over rounds of each process's median step) and
# its fall = throughput loaded / quiet = quiet ms / loaded ms (1 = no fall; one core of two taken costs an ideal
# 2-thread run at most a third, 0.67). Goal: Swift's fall is no larger than PyTorch's. Raw lines in $OUT
# (default /tmp/sspa-bench-train-load.jsonl). BENCH_LOCK=/tmp/sspa-swift.lock holds that lock during each round
# (and releases it between rounds), so no Swift build runs beside a measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_load.sh

STEPS_USER="${1:-${STEPS:-}}"
STEPS="${STEPS_USER:-2}"
WARMUP="${WARMUP:-1}"
CLASSES_USER="${CLASSES:-}"
CLASSES="${CLASSES:-20 80}"
THREADS="${THREADS:-1 2}"
OUT="${OUT:-/tmp/sspa-bench-train.jsonl}"
BIN="${SSPA_BENCH_BIN:-.build/release/sspa-bench-train}"  # SSPA_BENCH_BIN: another build to time (e.g. a copy from before a change)

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "building sspa-bench-train (release) ..." >&2
    flock /tmp/sspa-swift-build.lock swift build -c release --product sspa-bench-train >&2
fi
[[ -x "$BIN" ]] || { echo "missing $BIN" >&2; exit 1; }

# One timed run of each side at C classes and T threads; prints its JSON result line.
swift_run() { "$BIN" --d 512 --m 196 --c "$C" --b 32 --threads "$T" --steps "$STEPS" --warmup "$WARMUP" 2>/dev/null | tail -1; }
pytorch_run() { python3 scripts/sspa_reference.py --bench --classes "$C" --threads "$T" --iters "$STEPS" 2>/dev/null | tail -1; }

if [[ "${LOAD:-0}" == 1 ]]; then
    CLASSES="${CLASSES_USER:-20}"
    T="${LOAD_THREADS:-2}"
    ROUNDS="${ROUNDS:-5}"
    STEPS="${STEPS_USER:-4}"
    OUT="${OUT_LOAD:-/tmp/sspa-bench-train-load.jsonl}"
    trap 'load_stop; lock_give' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    export SSPA_THREADS=$T OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T
    : > "$OUT"
    for C in $CLASSES; do
        for r in $(seq "$ROUNDS"); do
            lock_take
            for cond in quiet loaded; do
                if [[ $cond == loaded ]]; then load_start; fi
                echo "C=$C threads=$T round $r/$ROUNDS $cond: swift ... (load $(cut -d' ' -f1 /proc/loadavg))" >&2
                s=$(swift_run)
                echo "{\"side\": \"swift\", \"cond\": \"$cond\", \"round\": $r, \"result\": $s}" >> "$OUT"
                echo "C=$C threads=$T round $r/$ROUNDS $cond: pytorch ..." >&2
                p=$(pytorch_run)
                echo "{\"side\": \"pytorch\", \"cond\": \"$cond\", \"round\": $r, \"result\": $p}" >> "$OUT"
                if [[ $cond == loaded ]]; then load_stop; fi
            done
            lock_give
        done
    done
    python3 - "$OUT" "$(cpu_name)" "$(blas_line)" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"SSPA training step under load: B=32 M=196 d=512; CPU {sys.argv[2]}; {sys.argv[3]}")
print("one background busy loop keeps one core busy in the loaded rows; ms/step = median over rounds of each "
      "process's median step; fall = throughput loaded / quiet (1 = none)")
print(f"{'C':>3} {'thr':>3} {'rounds':>6} | {'side':<8} {'quiet ms':>9} {'loaded ms':>9} {'fall':>6} | runs quiet / loaded (ms)")
verdicts = []
for C in sorted({r["result"]["C"] for r in rows}):
    falls = {}
    for side in ("swift", "pytorch"):
        def ms(cond):
            v = [r["result"]["step_ms_median"] if side == "swift" else r["result"]["median_s"] * 1000
                 for r in rows if r["side"] == side and r["cond"] == cond and r["result"]["C"] == C]
            return v
        q, l = ms("quiet"), ms("loaded")
        qm, lm = statistics.median(q), statistics.median(l)
        falls[side] = qm / lm
        thr = rows[0]["result"]["threads"]
        print(f"{C:>3} {thr:>3} {len(q):>6} | {side:<8} {qm:>9.0f} {lm:>9.0f} {qm / lm:>6.2f} | "
              f"{' '.join(f'{x:.0f}' for x in q)} / {' '.join(f'{x:.0f}' for x in l)}")
    ok = falls["swift"] >= falls["pytorch"]
    verdicts.append(ok)
    print(f"C={C}: Swift keeps {falls['swift']:.2f} of its quiet throughput, PyTorch {falls['pytorch']:.2f}: "
          f"goal (Swift's fall no larger) {'met' if ok else 'MISSED'}")
EOF
    exit 0
fi

: > "$OUT"
for C in $CLASSES; do
    for T in $THREADS; do
        export SSPA_THREADS=$T OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T
        echo "C=$C threads=$T: swift ... (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        s=$(swift_run)
        echo "{\"side\": \"swift\", \"load\": $(cut -d' ' -f1 /proc/loadavg), \"result\": $s}" >> "$OUT"
        echo "C=$C threads=$T: pytorch ... (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        p=$(pytorch_run)
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
