#!/usr/bin/env bash
# Throughput benchmark of `sspa-knowledge build` against the fault server's canned answers.
#
# It starts Tests/Support/fault_server.py with --canned and a fixed latency per answer, writes a temporary label
# file of real label names, and runs `build` with --jobs 1, 4 and 16. For each it prints the wall time, the ideal
# time (labels × latency / jobs), their ratio, and the client's user+sys CPU time per request.
#
# The canned answers are for measuring throughput only; they say nothing about knowledge content.
#
# Environment:
#   SSPA_BIN      the binary to run (default .build/release/sspa-knowledge, built if missing)
#   BENCH_LABELS  number of labels (default 200)
#   LATENCY_MS    fault server latency per answer (default 200)
#   JOBS_LIST     jobs values to run (default "1 4 16")
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

N_LABELS="${BENCH_LABELS:-200}"
LATENCY_MS="${LATENCY_MS:-200}"
JOBS_LIST="${JOBS_LIST:-1 4 16}"

if [[ -n "${SSPA_BIN:-}" ]]; then
    BIN="$SSPA_BIN"
    [[ -x "$BIN" ]] || { echo "SSPA_BIN=$BIN is not an executable file" >&2; exit 1; }
else
    BIN="$ROOT/.build/release/sspa-knowledge"
    if [[ ! -x "$BIN" ]]; then
        echo "building $BIN" >&2
        swift build -c release --product sspa-knowledge >&2
    fi
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/sspa-bench.XXXXXX")"
FS_PID=""
cleanup() {
    if [[ -n "$FS_PID" ]]; then
        kill "$FS_PID" 2>/dev/null || true
        wait "$FS_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- labels: real names from labels/*.txt, distinct
LABELS="$TMP/labels.txt"
python3 - "$ROOT/labels" "$ROOT/../shared/data/label-sets.json" "/work/shared/data/label-sets.json" \
    "$N_LABELS" "$LABELS" <<'PY'
import json, os, sys

labels_dir, shared_json, fallback_json, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
lines = []  # label lines in the label-file syntax: `raw`, `raw => display`, optionally `| synonym, ...`


def names(line):
    """(raw, display) of a label line, as Sources/Knowledge/Labels/LabelFile.swift reads it."""
    rest, _, _ = line.partition("|")
    raw, arrow, display = rest.partition("=>")
    raw = raw.strip()
    return raw, (display.strip() if arrow else raw)


if os.path.isdir(labels_dir):
    for fn in sorted(os.listdir(labels_dir)):
        if fn.endswith(".txt"):
            with open(os.path.join(labels_dir, fn), encoding="utf-8-sig") as f:
                for line in f:
                    line = line.split("#", 1)[0].strip()
                    if line:
                        lines.append(line)
if not lines:
    for path in (shared_json, fallback_json):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            for ds in data.values():
                if isinstance(ds, dict) and isinstance(ds.get("classes"), list):
                    lines += [" ".join(c.split()) for c in ds["classes"]
                              if isinstance(c, str) and c.strip() and not set("#|") & set(c) and "=>" not in c]
            break

# The label file rejects a repeated raw name or display name (display names case-insensitively).
seen_raw, seen_display, picked = set(), set(), []
for line in lines:
    raw, display = names(line)
    if not raw or not display or raw.lower() in seen_raw or display.lower() in seen_display:
        continue
    seen_raw.add(raw.lower())
    seen_display.add(display.lower())
    picked.append(line)
    if len(picked) == n:
        break
if not picked:
    sys.exit("no label names found (labels/*.txt or shared/data/label-sets.json)")
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(picked) + "\n")
PY
LABEL_COUNT=$(grep -c . "$LABELS")
echo "labels: $LABEL_COUNT distinct names (first: $(head -3 "$LABELS" | paste -sd, -))" >&2

# ---------------------------------------------------------------- fault server
python3 "$ROOT/Tests/Support/fault_server.py" --canned --latency-ms "$LATENCY_MS" \
    >"$TMP/fault.out" 2>"$TMP/fault.err" &
FS_PID=$!
PORT=""
for _ in $(seq 100); do
    PORT="$(awk '/^PORT [0-9]+$/ {print $2; exit}' "$TMP/fault.out" 2>/dev/null || true)"
    [[ -n "$PORT" ]] && break
    kill -0 "$FS_PID" 2>/dev/null || { cat "$TMP/fault.err" >&2; echo "fault server died" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$PORT" ]] || { echo "fault server did not report its port" >&2; exit 1; }

control() { # control METHOD PATH -> prints the body
    python3 - "$1" "http://127.0.0.1:$PORT$2" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[2], method=sys.argv[1], data=b"" if sys.argv[1] == "POST" else None)
with urllib.request.urlopen(req, timeout=10) as r:
    sys.stdout.write(r.read().decode())
PY
}

# ---------------------------------------------------------------- runs
RESULTS="$TMP/results.txt"
: >"$RESULTS"
FAILED=0
for jobs in $JOBS_LIST; do
    control POST /_reset >/dev/null
    rm -f "$TMP/bench-$jobs.db"
    TIMEFORMAT='%R %U %S'
    rc=0
    { time "$BIN" build --labels "$LABELS" --db "$TMP/bench-$jobs.db" \
        --endpoint "http://127.0.0.1:$PORT/s/ok" --model bench --jobs "$jobs" --quiet --max-attempts 1 \
        >"$TMP/client-$jobs.out" 2>"$TMP/client-$jobs.err" ; } 2>"$TMP/time-$jobs" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "jobs=$jobs: sspa-knowledge build exited $rc; its stderr:" >&2
        tail -20 "$TMP/client-$jobs.err" >&2
        FAILED=1
    fi
    if ! kill -0 "$FS_PID" 2>/dev/null; then
        echo "the fault server is gone (interrupted?); stopping" >&2
        exit 1
    fi
    requests=$(control GET /_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"].get("ok", 0))')
    read -r wall user sys <"$TMP/time-$jobs"
    echo "$jobs $wall $user $sys $requests $rc" >>"$RESULTS"
done

# ---------------------------------------------------------------- table
python3 - "$RESULTS" "$LABEL_COUNT" "$LATENCY_MS" <<'PY'
import sys
path, labels, latency = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000
print(f"{labels} labels, {latency * 1000:.0f} ms per answer (fault server --canned)")
print(f"{'jobs':>4} {'wall s':>8} {'ideal s':>8} {'ratio':>6} {'requests':>8} {'CPU ms/req':>10} {'exit':>4}")
for line in open(path):
    jobs, wall, user, sys_, requests, rc = line.split()
    jobs, wall, cpu, requests = int(jobs), float(wall), float(user) + float(sys_), int(requests)
    ideal = labels * latency / jobs
    per = f"{cpu * 1000 / requests:.2f}" if requests else "-"
    print(f"{jobs:>4} {wall:>8.2f} {ideal:>8.2f} {wall / ideal:>6.2f} {requests:>8} {per:>10} {rc:>4}")
PY
exit "$FAILED"
