#!/usr/bin/env bash
# Installs llama-cpp-python[server] (the real LLM server the tests talk to) as a PORTABLE build.
#
# llama-cpp-python builds llama.cpp from source, and by default with -march=native: a wheel built like that on one
# CPU traps (invalid opcode) on another, and on CPUs with AMX / AVX-512 FP16 even the native build's server dies on its
# first completion. So this script:
#   - builds with GGML_NATIVE=OFF and an explicit, conservative instruction set (AVX2+FMA+F16C where the CPU has
#     them, else SSE4.2 only; never AVX-512 or AMX);
#   - builds into its own wheel folder keyed by the version and those flags, with pip's cache off, so a native wheel
#     that pip cached earlier can never be picked up instead;
#   - reinstalls that wheel whenever the installed llama_cpp carries no stamp of the same key;
#   - checks the built CPU backend contains no AVX-512 instructions (zmm registers) before installing it.
set -euo pipefail

VERSION=0.3.36
log() { printf '\n==> %s\n' "$*" >&2; }

if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then
  ISA="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
else
  ISA="-DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF"
fi
FLAGS="-DGGML_NATIVE=OFF $ISA -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_AVX_VNNI=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
KEY="$VERSION-$(printf '%s' "$FLAGS" | sha256sum | cut -c1-16)"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/sspa-knowledge/llama-cpp-python/$KEY"

installed_key() {
  python3 - <<'EOF' 2>/dev/null || true
import importlib.util, os
spec = importlib.util.find_spec("llama_cpp")
if spec and spec.origin:
    stamp = os.path.join(os.path.dirname(spec.origin), ".sspa-portable-build")
    if os.path.exists(stamp):
        print(open(stamp).read().strip())
EOF
}

if [ "$(installed_key)" = "$KEY" ]; then
  log "llama-cpp-python $VERSION: the portable build ($KEY) is installed"
  exit 0
fi

wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
  log "llama-cpp-python $VERSION: building a portable wheel (about 5 minutes on 2 cores; flags: $FLAGS)"
  tmp="$WHEELS.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" FORCE_CMAKE=1 \
    python3 -m pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -w "$tmp"
  wheel="$(ls "$tmp"/llama_cpp_python-"$VERSION"-*.whl | head -1)"
  # The guard: a portable build has no AVX-512 (zmm) instructions in its CPU backend.
  check="$(mktemp -d)"
  python3 -m zipfile -e "$wheel" "$check"
  for lib in $(find "$check" -name 'libggml*.so*'); do
    if objdump -d --no-show-raw-insn "$lib" | grep -q '%zmm'; then
      echo "error: $(basename "$lib") in the freshly built wheel uses AVX-512 instructions; it is not portable" >&2
      rm -rf "$check" "$tmp"; exit 1
    fi
  done
  rm -rf "$check"
  rm -rf "$WHEELS"; mv "$tmp" "$WHEELS"
  wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl | head -1)"
fi

log "llama-cpp-python $VERSION: installing the portable wheel $(basename "$wheel")"
python3 -m pip install -q --no-cache-dir --force-reinstall --no-deps "$wheel"
python3 -m pip install -q "$wheel[server]"
site="$(python3 -c 'import llama_cpp, os; print(os.path.dirname(llama_cpp.__file__))')"
printf '%s\n' "$KEY" >"$site/.sspa-portable-build"
