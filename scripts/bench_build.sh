#!/usr/bin/env bash
# Throughput benchmark of `sspa-knowledge build` against the fault server's canned answers.
#
# It starts a server of canned answers with a fixed latency per answer (scripts/bench_server.py, or the fault server
# itself with SERVER=fault), writes a temporary label
# file of real label names (numbered variants past the shipped ones), and for each size runs `build` and its peer,
# openai-python's AsyncOpenAI (scripts/bench_openai_client.py), RUNS times each, alternating. It prints the median
# wall time, the ideal time (ceil(labels / jobs) × latency), their ratio, the client's user+sys CPU time per request
# (process start included) and the server's CPU share, which shows when the Python server is the bottleneck.
#
# The canned answers are for measuring throughput only; they say nothing about knowledge content.
#
# Environment:
#   SSPA_BIN      the binary to run (default: .build/static/release/sspa-knowledge, built with --static-swift-stdlib)
#   SIZES         labels:jobs pairs (default "200:16 2000:128")
#   RUNS          runs of each row (default 5)
#   LATENCY_MS    the server's latency per answer (default 200)
#   PEERS         "openai" (default when openai-python is installed) or "" for this project alone
#   LOAD=1        also the rows under load (issue 13 §3): every run is then a round of both clients quiet, then both
#                 again with one background busy loop keeping one core busy (scripts/bench_load.sh; stopped by its
#                 PID at the end of the round, and on exit, error or Ctrl-C). The table adds each client's fall =
#                 throughput loaded / quiet = quiet wall / loaded wall (1 = no fall). Goal: this project's fall is
#                 no larger than openai-python's.
#   SERVER        "loop" (default): scripts/bench_server.py, the fault server's canned answers on one asyncio event
#                 loop, each due its latency after the request arrived, and reporting how late it sent them (the
#                 table's "server late" column); "fault": Tests/Support/fault_server.py --canned, a thread per
#                 connection (at 128 jobs its threads contend for the GIL and it took about a third of the wall time)
#   BENCH_LOCK    a lock file (e.g. /tmp/sspa-swift.lock) held during each round and released between rounds, so
#                 that no Swift build runs beside a measurement
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bench_load.sh
CONDS="quiet"
[[ "${LOAD:-0}" == 1 ]] && CONDS="quiet loaded"

LATENCY_MS="${LATENCY_MS:-200}"
SIZES="${SIZES:-200:16 2000:128}"
RUNS="${RUNS:-5}"
N_LABELS=0
for size in $SIZES; do n="${size%%:*}"; (( n > N_LABELS )) && N_LABELS=$n; done
# The peer: openai-python (scripts/requirements-bench.txt), when it is installed; PEERS="" runs this project alone.
if [[ -z "${PEERS+set}" ]]; then
    if python3 -c 'import openai' 2>/dev/null; then PEERS=openai; else
        PEERS=""; echo "note: openai-python is not installed (pip install -r scripts/requirements-bench.txt); running without the peer" >&2
    fi
fi

if [[ -n "${SSPA_BIN:-}" ]]; then
    BIN="$SSPA_BIN"
    [[ -x "$BIN" ]] || { echo "SSPA_BIN=$BIN is not an executable file" >&2; exit 1; }
else
    # The self-contained release binary (Swift runtime and Foundation linked in, as the README builds it for other
    # machines): it starts about 35 ms sooner than one that loads them as shared libraries. Built (or brought up to
    # date) every time, so that no stale binary is measured.
    BIN="$ROOT/.build/static/release/sspa-knowledge"
    echo "building $BIN (swift build -c release --static-swift-stdlib)" >&2
    flock "${BENCH_LOCK:-/tmp/sspa-swift-build.lock}" swift build -c release --static-swift-stdlib --scratch-path "$ROOT/.build/static" \
        --product sspa-knowledge >&2
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/sspa-bench.XXXXXX")"
FS_PID=""
cleanup() {
    load_stop
    lock_give
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
base = [names(line)[1] for line in picked]
variant = 2
while len(picked) < n:
    for name in base:
        if len(picked) == n:
            break
        picked.append(f"{name} {variant}")
    variant += 1
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(picked) + "\n")
PY
LABEL_COUNT=$(grep -c . "$LABELS")
echo "labels: $LABEL_COUNT distinct names (first: $(head -3 "$LABELS" | paste -sd, -))" >&2

# ---------------------------------------------------------------- server
if [[ "${SERVER:-loop}" == fault ]]; then
    python3 "$ROOT/Tests/Support/fault_server.py" --canned --latency-ms "$LATENCY_MS" \
        >"$TMP/fault.out" 2>"$TMP/fault.err" &
else
    python3 "$ROOT/scripts/bench_server.py" --latency-ms "$LATENCY_MS" >"$TMP/fault.out" 2>"$TMP/fault.err" &
fi
FS_PID=$!
PORT=""
for _ in $(seq 100); do
    PORT="$(awk '/^PORT [0-9]+$/ {print $2; exit}' "$TMP/fault.out" 2>/dev/null || true)"
    [[ -n "$PORT" ]] && break
    kill -0 "$FS_PID" 2>/dev/null || { cat "$TMP/fault.err" >&2; echo "the benchmark server died" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$PORT" ]] || { echo "the benchmark server did not report its port" >&2; exit 1; }

control() { # control METHOD PATH -> prints the body
    python3 - "$1" "http://127.0.0.1:$PORT$2" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[2], method=sys.argv[1], data=b"" if sys.argv[1] == "POST" else None)
with urllib.request.urlopen(req, timeout=10) as r:
    sys.stdout.write(r.read().decode())
PY
}

# ---------------------------------------------------------------- runs
# For each size, RUNS rounds; each round runs this project, then the peer (openai-python), against the same server,
# so both see the same noise. Wall and CPU times are the processes' own (start-up included), from `time`.
server_cpu() { # user+sys clock ticks of the server so far
    awk '{print $14 + $15}' "/proc/$FS_PID/stat"
}
RESULTS="$TMP/results.txt"
: >"$RESULTS"
FAILED=0
TICKS=$(getconf CLK_TCK)
for size in $SIZES; do
    n="${size%%:*}"; jobs="${size##*:}"
    head -n "$n" "$LABELS" >"$TMP/labels-$n.txt"
    for run in $(seq "$RUNS"); do
      lock_take
      for cond in $CONDS; do
        if [[ $cond == loaded ]]; then load_start; fi
        for client in sspa $PEERS; do
            control POST /_reset >/dev/null
            rm -f "$TMP/bench.db"
            before=$(server_cpu)
            TIMEFORMAT='%R %U %S'
            rc=0
            if [[ $client == sspa ]]; then
                { time "$BIN" build --labels "$TMP/labels-$n.txt" --db "$TMP/bench.db" \
                    --endpoint "http://127.0.0.1:$PORT/s/ok" --model bench --jobs "$jobs" --quiet --max-attempts 1 \
                    >"$TMP/client.out" 2>"$TMP/client.err" ; } 2>"$TMP/time" || rc=$?
            else
                { time python3 "$ROOT/scripts/bench_openai_client.py" --base-url "http://127.0.0.1:$PORT/s/ok/v1" \
                    --labels "$TMP/labels-$n.txt" --jobs "$jobs" >"$TMP/client.out" 2>"$TMP/client.err" ; } 2>"$TMP/time" || rc=$?
            fi
            after=$(server_cpu)
            if [[ $rc -ne 0 ]]; then
                echo "$client, $n labels, jobs $jobs: exited $rc; its stderr:" >&2
                tail -20 "$TMP/client.err" >&2
                FAILED=1
            fi
            kill -0 "$FS_PID" 2>/dev/null || { echo "the benchmark server is gone (interrupted?); stopping" >&2; exit 1; }
            # The requests the server answered, and how late its answers went out (median, ms; "nan" from a server
            # that does not say: SERVER=fault).
            read -r requests late < <(control GET /_stats | python3 -c 'import json, sys
s = json.load(sys.stdin); late = (s.get("late_ms") or {}).get("median")
print(s["counts"].get("ok", 0), "nan" if late is None else late)')
            read -r wall user sys <"$TMP/time"
            echo "$cond $client $n $jobs $wall $user $sys $requests $rc $(( after - before )) $late" >>"$RESULTS"
            echo "  $client $n labels jobs $jobs run $run $cond: ${wall} s" >&2
        done
        if [[ $cond == loaded ]]; then load_stop; fi
      done
      lock_give
    done
done

# ---------------------------------------------------------------- table
python3 - "$RESULTS" "$LATENCY_MS" "$TICKS" "$RUNS" "$(cpu_name)" "${SERVER:-loop}" <<'PY'
import statistics, sys
path, latency, ticks, runs = sys.argv[1], float(sys.argv[2]) / 1000, int(sys.argv[3]), int(sys.argv[4])
server_name = {"fault": "fault server --canned, a thread per connection"}.get(sys.argv[6], "scripts/bench_server.py, one event loop")
rows, loaded = {}, {}
for line in open(path):
    cond, client, n, jobs, wall, user, sys_, requests, rc, server, late = line.split()
    (rows if cond == "quiet" else loaded).setdefault((int(n), int(jobs), client), []).append(
        (float(wall), float(user) + float(sys_), int(requests), int(rc), int(server) / ticks, float(late)))
names = {"sspa": "sspa-knowledge build", "openai": "openai-python AsyncOpenAI"}
print(f"{latency * 1000:.0f} ms per answer ({server_name}); median of {runs} runs; ideal = ceil(labels / jobs) x latency")
print("server late = how long after its due time (arrival + latency) the server's median answer went out, in ms")
print(f"| client | labels | jobs | ideal s | wall s | ratio | client CPU ms/request | server CPU % of wall | server late ms |")
print(f"|---|---|---|---|---|---|---|---|---|")
for (n, jobs, client), values in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2] != "sspa")):
    ideal = -(-n // jobs) * latency
    wall = statistics.median(v[0] for v in values)
    per = statistics.median(v[1] * 1000 / v[2] for v in values if v[2]) if any(v[2] for v in values) else float("nan")
    server = statistics.median(100 * v[4] / v[0] for v in values)
    bad = sum(1 for v in values if v[3] != 0 or v[2] != n)
    note = f" ({bad} runs failed or short)" if bad else ""
    late = statistics.median(v[5] for v in values)
    print(f"| {names.get(client, client)} | {n} | {jobs} | {ideal:.2f} | {wall:.3f} | {wall / ideal:.3f} | {per:.2f} | {server:.0f} | "
          f"{late:.2f}{note} |")
if loaded:
    print()
    print(f"Under load (CPU {sys.argv[5]}, 2 cores): one background busy loop keeps one core busy in the loaded runs; "
          f"median of {runs} rounds; fall = throughput loaded / quiet = quiet wall / loaded wall (1 = none)")
    print("| client | labels | jobs | quiet wall s | loaded wall s | fall | loaded client CPU ms/request |")
    print("|---|---|---|---|---|---|---|")
    falls = {}
    for key, values in sorted(loaded.items(), key=lambda kv: (kv[0][0], kv[0][2] != "sspa")):
        n, jobs, client = key
        q = statistics.median(v[0] for v in rows[key])
        l = statistics.median(v[0] for v in values)
        per = statistics.median(v[1] * 1000 / v[2] for v in values if v[2]) if any(v[2] for v in values) else float("nan")
        bad = sum(1 for v in values if v[3] != 0 or v[2] != n)
        note = f" ({bad} runs failed or short)" if bad else ""
        falls[key] = q / l
        print(f"| {names.get(client, client)} | {n} | {jobs} | {q:.2f} | {l:.2f} | {q / l:.2f} | {per:.2f}{note} |")
    for (n, jobs, client), fall in sorted(falls.items()):
        if client == "sspa" and (n, jobs, "openai") in falls:
            peer = falls[(n, jobs, "openai")]
            print(f"{n} labels: this project keeps {fall:.2f} of its quiet throughput, openai-python {peer:.2f}: "
                  f"goal (fall no larger) {'met' if fall >= peer else 'MISSED'}")
PY
exit "$FAILED"
