# Sourced by the benchmarks (scripts/bench_train.sh, bench_vision.sh, bench_build.sh) for their "under load" rows
# (issue 13 §3). Not run on its own.
#
#   load_start / load_stop   one background process that keeps one core busy, started and stopped by its PID
#   lock_take / lock_give    hold $BENCH_LOCK (when set) around one measured round, released between rounds
#
# The busy process is a tight arithmetic loop in sh (no system calls), checking every million iterations (about a
# third of a second) that the benchmark's shell is still alive, so that even a SIGKILLed benchmark does not leave it
# spinning. The caller's traps call load_stop on EXIT, INT and TERM. scripts/bench_encode.py starts the same loop
# (BUSY_LOOP below, kept in step by hand).

BUSY_LOOP='p=$1; while kill -0 "$p" 2>/dev/null; do i=0; while [ $i -lt 1000000 ]; do i=$((i + 1)); done; done'
LOAD_PID=""

load_start() {
    [[ -z "$LOAD_PID" ]] || return 0
    sh -c "$BUSY_LOOP" busy-loop "$$" &
    LOAD_PID=$!
    sleep 0.5  # let it get going before the measured process starts
    echo "load: busy loop started, PID $LOAD_PID" >&2
}

load_stop() {
    [[ -n "$LOAD_PID" ]] || return 0
    kill "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
    echo "load: busy loop $LOAD_PID stopped" >&2
    LOAD_PID=""
}

# The measuring lock: other work on this machine (Swift builds) takes the same lock, so none runs beside a
# measurement. Held for one round at a time (a few minutes), so that builds can go in between.
BENCH_LOCK_HELD=0
lock_take() {
    [[ -n "${BENCH_LOCK:-}" && $BENCH_LOCK_HELD == 0 ]] || return 0
    exec 9>>"$BENCH_LOCK"
    echo "waiting for $BENCH_LOCK ..." >&2
    flock 9
    BENCH_LOCK_HELD=1
}

lock_give() {
    [[ $BENCH_LOCK_HELD == 1 ]] || return 0
    flock -u 9
    exec 9>&-
    BENCH_LOCK_HELD=0
}

# Median of the numbers on stdin (one a line).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# "BLAS: OpenBLAS 0.3.21, kernel Zen (…), 2 threads (pthreads)" from the release sspa-knowledge, when built.
blas_line() {
    local bin=.build/release/sspa-knowledge
    if [[ -x $bin ]]; then "$bin" --version 2>/dev/null | grep -m1 '^BLAS' || echo "BLAS: unknown"; else echo "BLAS: unknown (no release sspa-knowledge)"; fi
}

# The CPU's model name, e.g. "AMD EPYC".
cpu_name() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
