#!/usr/bin/env python3
"""Benchmark: the Swift CLIP text tower against transformers' CLIPTextModelWithProjection on CPU (issue 3, §6).

This is a benchmark, not a test: it needs ``torch==2.13.0+cpu`` and ``transformers`` (see
scripts/requirements-fixtures.txt) and is never run in CI.

How to run (from the repository root)::

    python3 scripts/bench_encode.py                 # threads 1 and 2, batch 64, 2,000 texts, best of 3
    python3 scripts/bench_encode.py --threads 1 --batch 32 --repeat 5 --keep

What it does:

1. Builds ``.build/release/sspa-bench-encode`` (Benchmarks/BenchEncode) if it is missing, or with ``--rebuild``,
   always under the shared lock: ``flock /tmp/sspa-swift-build.lock swift build -c release --product
   sspa-bench-encode``.
2. Makes a *random*, seeded CLIPTextModelWithProjection with the real ViT-B/16 text-tower size (hidden 512,
   12 layers, 8 heads, intermediate 2048, vocab 49,408, 77 positions, projection 512, quick_gelu, eos 49407),
   saves it with ``save_pretrained`` (safetensors) into a temporary folder (deleted at the end unless
   ``--keep``; never committed), and copies vocab.json/merges.txt from
   Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu/.  Weights are re-drawn at realistic scales (linear
   std 1/sqrt(fan_in)) so that activations are far from zero and the parity check means something.
3. Makes 2,000 deterministic description-like strings from templates and the display names in labels/*.txt,
   8-40 words each, plus a few over 77 tokens (truncated by both sides).
4. For each thread count T:
   * Swift: runs the bench binary with ``SSPA_THREADS=T OPENBLAS_NUM_THREADS=T`` under ``/usr/bin/time -v``.
   * transformers: a subprocess of this script (``--worker``) under ``/usr/bin/time -v`` with
     ``torch.set_num_threads(T)`` (and OMP/MKL_NUM_THREADS=T), ``CLIPTokenizer`` from the same vocab/merges,
     ``padding=True, truncation=True, max_length=77`` (pad to the longest in each batch), model in eval mode
     under ``torch.inference_mode()``.  Two variants: "plain" (batches in input order, the headline, as the
     issue asks) and "sorted" (length-sorted batches, like the Swift side's bucketing).
   Both sides time only the model (tokenization is timed separately), after a warm-up on a small batch, best of
   ``--repeat`` runs.  Peak RSS is "Maximum resident set size" from ``/usr/bin/time -v`` for each process.
5. Checks that the Swift embeddings equal transformers' ``text_embeds`` (same order) within 1e-4 max-abs, and
   that both sides saw the same number of tokens per text; prints a table.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: on some processors these are set in this environment.  This script leaves
them exactly as they are for both sides (it neither sets nor unsets them) and prints their values.  PyTorch's
CPU wheel uses MKL/oneDNN, not OpenBLAS, so they only affect the Swift side.

Run time: about 30 minutes on 2 idle cores with the defaults (transformers with padding=True at 1 thread takes
about 3.5 minutes per pass).  Each side is timed best of ``--repeat``; on a machine busy with other work the
numbers, the 2-thread ones especially, are noisy: check the load average printed per thread count.

Under load (issue 13 §3)::

    BENCH_LOCK=/tmp/sspa-swift.lock python3 scripts/bench_encode.py --load --threads 2 --texts-count 1000 --repeat 1 --rounds 5

``--load`` replaces the table above with rounds of: Swift and transformers (``padding=True``; ``--load-sorted`` adds
the length-sorted variant) quiet, then one background busy loop started (the loop of scripts/bench_load.sh, a
subprocess stopped by its PID at the end of the round, and on exit, error or Ctrl-C), Swift and transformers again.
It prints each side's quiet and loaded texts/s (median over rounds of each process's best of ``--repeat``) and its
fall = throughput loaded / quiet (1 = none). Goal: Swift's fall is no larger than transformers'. With
``BENCH_LOCK`` set, that lock is held during each round and released between rounds, so that no Swift build runs
beside a measurement.

Exit status: 0 when every parity check passes, 1 otherwise.  The Swift/transformers >= 1.5x goal is reported,
not enforced.
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("SSPA_BENCH_BIN") or ROOT / ".build" / "release" / "sspa-bench-encode")  # another build to time
LOCK = "/tmp/sspa-swift-build.lock"
VOCAB_SRC = ROOT / "Tests" / "CLIPTests" / "Fixtures" / "checkpoints" / "tiny-quickgelu"
TOLERANCE = 1e-4
GOAL_RATIO = 1.5
GOAL_RSS_MB = 1536

# ViT-B/16 text tower (same as ViT-B/32's).
TEXT_CONFIG = dict(
    hidden_size=512, num_hidden_layers=12, num_attention_heads=8, intermediate_size=2048,
    vocab_size=49408, max_position_embeddings=77, projection_dim=512, hidden_act="quick_gelu",
    bos_token_id=49406, eos_token_id=49407, pad_token_id=1, layer_norm_eps=1e-5,
)


# --------------------------------------------------------------------------------------------------- texts

SUBJECT_OPENERS = [
    "A {x} is", "The {x} is", "In most photos, a {x} is", "A typical {x} is", "Seen from afar, the {x} is",
    "Up close, a {x} is", "A {x} usually appears as", "In everyday scenes a {x} is",
]
DESCRIPTORS = [
    "a common sight in cities and towns", "something people recognise at a glance",
    "often photographed in daylight", "usually found outdoors", "sometimes seen indoors as well",
    "distinctive because of its shape and colour", "larger than most people expect",
    "smaller than it looks in pictures", "made of several clearly visible parts",
    "easy to tell apart from similar things", "frequently partly hidden by other objects",
    "shown in many sizes and styles", "typically bright and well lit in photos",
    "dark against the background in some images", "surrounded by people on busy days",
    "placed near roads, buildings or open ground", "recognisable by its outline alone",
]
DETAILS = [
    "its surface may be smooth, rough, shiny or matte", "the edges are usually sharp and well defined",
    "it casts a clear shadow when the sun is low", "colours range from pale grey to deep red",
    "a close view shows fine texture and small marks", "it often fills only a small part of the frame",
    "several of them may appear together in one picture", "people tend to stand or walk beside it",
    "in aerial images it looks flat and geometric", "at night it is lit by street lamps or headlights",
    "the background is often a wall, a field or the sky", "it is rarely the only thing in view",
    "motion blur is common when it is moving", "wet weather makes it look darker and glossier",
    "its size helps to tell it apart from nearby objects", "a label or marking is sometimes visible on it",
]
CONTEXTS = [
    "in parks", "near the coast", "on city streets", "at train stations", "in kitchens", "on farms",
    "in offices", "along rivers", "at sports events", "in shopping areas", "in the countryside",
    "around schools", "at airports", "in residential neighbourhoods", "on mountain roads",
]


def load_display_names(labels_dir: Path) -> list[str]:
    """Display names from every label file (`raw`, `raw => display`, optional `| synonyms`), de-duplicated."""
    names: list[str] = []
    seen: set[str] = set()
    for path in sorted(labels_dir.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            line = line.split("|", 1)[0].strip()
            display = line.split("=>", 1)[1].strip() if "=>" in line else line
            if display and display.lower() not in seen:
                seen.add(display.lower())
                names.append(display)
    return names


SHORT_DESCRIPTORS = ["common outdoors", "easy to spot", "often small", "usually bright", "rarely alone",
                     "seen in many places", "hard to miss"]


def make_texts(n: int, seed: int, names: list[str]) -> list[str]:
    """`n` deterministic description-like strings of 8-40 words, plus about 1% long enough to pass 77 tokens."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        x, y = rng.choice(names), rng.choice(names)
        long_one = i % 97 == 13  # ~20 strings, well over 77 tokens
        limit = 110 if long_one else 40
        target = rng.randint(75, 100) if long_one else rng.randint(8, 40)
        ending = f"often seen with {y} {rng.choice(CONTEXTS)}".split()
        words = rng.choice(SUBJECT_OPENERS).format(x=x).split()
        if target < len(words) + len(ending) + 5:
            words = f"A {x}, {rng.choice(SHORT_DESCRIPTORS)},".split()
            ending = f"often seen with {y}".split()
        else:
            words += rng.choice(DESCRIPTORS).split()
            words[-1] += ","
        while len(words) + len(ending) < target:
            clause = rng.choice(DETAILS).split()
            clause = (["and"] if rng.random() < 0.5 else []) + clause
            if len(words) + len(clause) + len(ending) > limit:
                break
            clause[-1] += ","
            words += clause
        text = " ".join(words + ending) + "."
        texts.append(text[0].upper() + text[1:])
    return texts


# --------------------------------------------------------------------------------------------------- checkpoint

def make_checkpoint(folder: Path, seed: int) -> None:
    import math
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    model = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_CONFIG)).eval()
    g = torch.Generator().manual_seed(seed + 1)

    def normal_(t, std, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std + mean)

    with torch.no_grad():
        for _, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                normal_(module.weight, 1.0 / math.sqrt(module.weight.shape[1]))
                if module.bias is not None:
                    normal_(module.bias, 0.02)
            elif isinstance(module, torch.nn.Embedding):
                normal_(module.weight, 0.1)
            elif isinstance(module, torch.nn.LayerNorm):
                normal_(module.weight, 0.1, 1.0)
                normal_(module.bias, 0.02)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(VOCAB_SRC / name, folder / name)


# --------------------------------------------------------------------------------------------------- worker

def worker(args) -> None:
    """The transformers side, in its own process (so its peak RSS is its own). Prints one JSON line."""
    import numpy as np
    import torch
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    torch.set_num_threads(args.threads)
    texts = Path(args.texts).read_text(encoding="utf-8").split("\n")
    texts = [t for t in texts if t]
    ckpt = Path(args.ckpt)
    tok = CLIPTokenizer(str(ckpt / "vocab.json"), str(ckpt / "merges.txt"))
    model = CLIPTextModelWithProjection.from_pretrained(ckpt).eval()

    if args.mode == "sorted":
        order = sorted(range(len(texts)), key=lambda i: len(tok(texts[i], truncation=True, max_length=77)["input_ids"]))
    else:
        order = list(range(len(texts)))
    chunks = [order[s:s + args.batch] for s in range(0, len(order), args.batch)]

    t0 = time.perf_counter()
    batches = [tok([texts[i] for i in c], padding=True, truncation=True, max_length=77, return_tensors="pt")
               for c in chunks]
    tokenize_s = time.perf_counter() - t0

    lengths = np.zeros(len(texts), dtype=np.int64)
    padded = 0
    for c, b in zip(chunks, batches):
        lengths[c] = b["attention_mask"].sum(dim=1).numpy()
        padded += b["input_ids"].numel()

    out = np.zeros((len(texts), TEXT_CONFIG["projection_dim"]), dtype=np.float32)
    with torch.inference_mode():
        warm = tok(texts[:8], padding=True, truncation=True, max_length=77, return_tensors="pt")
        model(input_ids=warm["input_ids"], attention_mask=warm["attention_mask"])
        runs = []
        for r in range(args.repeat):
            t0 = time.perf_counter()
            embeds = [model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).text_embeds for b in batches]
            runs.append(time.perf_counter() - t0)
            print(f"  transformers {args.mode} T={args.threads} run {r + 1}/{args.repeat}: {runs[-1]:.3f} s",
                  file=sys.stderr, flush=True)
            if r == 0:
                for c, e in zip(chunks, embeds):
                    out[c] = e.numpy()
    np.save(args.out, out)
    best = min(runs)
    print(json.dumps({
        "sentences_per_s": len(texts) / best, "seconds": best, "runs_s": runs, "tokenize_s": tokenize_s,
        "threads": torch.get_num_threads(), "lengths": lengths.tolist(), "padded_tokens": padded,
        "attn_implementation": model.config._attn_implementation,
    }))


# --------------------------------------------------------------------------------------------------- load

# The busy loop of scripts/bench_load.sh (kept in step by hand): a tight sh loop that checks every million
# iterations that this process ($1) is alive, so it never outlives the benchmark.
BUSY_LOOP = 'p=$1; while kill -0 "$p" 2>/dev/null; do i=0; while [ $i -lt 1000000 ]; do i=$((i + 1)); done; done'


class BusyLoop:
    """One background process keeping one core busy, started and stopped by PID (also at exit and on a signal)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        atexit.register(self.stop)

    def start(self) -> None:
        if self.proc is None:
            self.proc = subprocess.Popen(["sh", "-c", BUSY_LOOP, "busy-loop", str(os.getpid())])
            time.sleep(0.5)
            print(f"  load: busy loop started, PID {self.proc.pid}", flush=True)

    def stop(self) -> None:
        if self.proc is not None:
            pid = self.proc.pid
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            print(f"  load: busy loop {pid} stopped", flush=True)


class RoundLock:
    """$BENCH_LOCK (when set), held for one round at a time: Swift builds on this machine take the same lock."""

    def __init__(self) -> None:
        self.path, self.fd = os.environ.get("BENCH_LOCK"), None

    def take(self) -> None:
        if self.path and self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            print(f"  waiting for {self.path} ...", flush=True)
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def give(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def cpu_name() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def blas_line() -> str:
    exe = ROOT / ".build" / "release" / "sspa-knowledge"
    if exe.exists():
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
        return next((l for l in out.splitlines() if l.startswith("BLAS")), "BLAS: unknown")
    return "BLAS: unknown (no release sspa-knowledge)"


def load_rounds(args, ckpt: Path, texts_file: Path, work: Path, n_texts: int) -> bool:
    """Rounds of quiet and loaded runs at one thread count; prints the table; returns the parity verdict."""
    import numpy as np
    from safetensors.numpy import load_file

    t = int(args.threads)
    modes = ["plain"] + (["sorted"] if args.load_sorted else [])
    busy, lock = BusyLoop(), RoundLock()
    res: dict[tuple[str, str], list[float]] = {}
    ok = True
    env = dict(os.environ, SSPA_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t))
    penv = dict(os.environ, OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
    for r in range(1, args.rounds + 1):
        lock.take()
        try:
            for cond in ("quiet", "loaded"):
                if cond == "loaded":
                    busy.start()
                print(f"\n== round {r}/{args.rounds}, {cond}, threads {t} (load average {os.getloadavg()[0]:.2f}) ==",
                      flush=True)
                out_st = work / "swift_load.safetensors"
                sw, _, _ = run_timed([str(BIN), "--clip", str(ckpt), "--texts", str(texts_file), "--batch",
                                      str(args.batch), "--out", str(out_st), "--repeat", str(args.repeat)], env)
                res.setdefault(("swift", cond), []).append(sw["sentences_per_s"])
                sw_emb = load_file(str(out_st))["embeddings"]
                for mode in modes:
                    out_np = work / f"hf_load_{mode}.npy"
                    hf, _, _ = run_timed([sys.executable, __file__, "--worker", "--mode", mode, "--threads", str(t),
                                          "--ckpt", str(ckpt), "--texts", str(texts_file), "--batch", str(args.batch),
                                          "--repeat", str(args.repeat), "--out", str(out_np)], penv)
                    res.setdefault((mode, cond), []).append(hf["sentences_per_s"])
                    diff = float(np.abs(np.load(out_np).astype(np.float64) - sw_emb.astype(np.float64)).max())
                    ok &= diff <= TOLERANCE
                    print(f"  swift {sw['sentences_per_s']:.1f} texts/s, transformers {mode} "
                          f"{hf['sentences_per_s']:.1f} texts/s, max-abs diff {diff:.2e}", flush=True)
                if cond == "loaded":
                    busy.stop()
        finally:
            busy.stop()
            lock.give()
    print(f"\nCLIP ViT-B/16 text tower under load: {n_texts} texts, batch {args.batch}, {t} threads, {args.rounds} "
          f"rounds (each process best of {args.repeat}); CPU {cpu_name()}; {blas_line()}")
    print("loaded = one background busy loop keeps one core busy; texts/s = median over rounds; "
          "fall = throughput loaded / quiet (1 = none)")
    names = {"swift": "Swift", "plain": "transformers padding=True", "sorted": "transformers length-sorted"}
    print(f"{'side':<27} | {'quiet texts/s':>13} {'loaded texts/s':>14} {'fall':>6} | runs quiet / loaded")
    falls = {}
    for side in ["swift"] + modes:
        q, l = res[(side, "quiet")], res[(side, "loaded")]
        qm, lm = statistics.median(q), statistics.median(l)
        falls[side] = lm / qm
        print(f"{names[side]:<27} | {qm:>13.1f} {lm:>14.1f} {lm / qm:>6.2f} | {' '.join(f'{x:.1f}' for x in q)} / "
              f"{' '.join(f'{x:.1f}' for x in l)}")
    for mode in modes:
        met = falls["swift"] >= falls[mode]
        print(f"Swift keeps {falls['swift']:.2f} of its quiet throughput, {names[mode]} {falls[mode]:.2f}: "
              f"goal (Swift's fall no larger) {'met' if met else 'MISSED'}")
    print(f"parity (max-abs <= {TOLERANCE}): {'PASS' if ok else 'FAIL'}")
    return ok


# --------------------------------------------------------------------------------------------------- driver

def parse_time_v(stderr: str) -> float:
    m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", stderr)
    return int(m.group(1)) / 1024 if m else float("nan")


def run_timed(cmd: list[str], env: dict) -> tuple[dict, float, str]:
    """Runs `cmd` under /usr/bin/time -v; returns (its JSON stdout line, peak RSS in MiB, its stderr)."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    progress = "\n".join(l for l in proc.stderr.splitlines() if "run " in l)
    if progress:
        print(progress, flush=True)
    return json.loads(lines[-1]), parse_time_v(proc.stderr), proc.stderr


def build_binary(rebuild: bool) -> None:
    if BIN.exists() and not rebuild:
        return
    cmd = ["flock", LOCK, "swift", "build", "-c", "release", "--product", "sspa-bench-encode"]
    print("building:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def padded_sorted(lengths: list[int], batch: int) -> int:
    s = sorted(lengths)
    return sum(max(s[i:i + batch]) * len(s[i:i + batch]) for i in range(0, len(s), batch))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--texts-count", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240603)
    ap.add_argument("--keep", action="store_true", help="keep the temporary checkpoint/output folder")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the Swift bench binary (under the lock)")
    ap.add_argument("--no-sorted", action="store_true", help="skip the length-sorted transformers variant")
    ap.add_argument("--load", action="store_true",
                    help="rows under load instead: quiet vs one core kept busy, at one --threads count (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="with --load: rounds of quiet + loaded runs (default 3)")
    ap.add_argument("--load-sorted", action="store_true", help="with --load: also length-sorted transformers")
    # internal: the transformers side
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="plain", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    ap.add_argument("--texts", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.threads = int(args.threads)
        worker(args)
        return 0

    import numpy as np
    from safetensors.numpy import load_file

    if args.load and args.threads == "1,2":
        args.threads = "2"
    if args.load and "," in args.threads:
        raise SystemExit("--load measures one thread count; give --threads T")
    threads = [int(t) for t in args.threads.split(",")]
    build_binary(args.rebuild)
    work = Path(tempfile.mkdtemp(prefix="sspa_bench_encode_"))
    ckpt = work / "clip-vitb16-text-random"
    try:
        t0 = time.perf_counter()
        make_checkpoint(ckpt, args.seed)
        print(f"checkpoint: {ckpt} ({(ckpt / 'model.safetensors').stat().st_size / 2**20:.0f} MiB, "
              f"{time.perf_counter() - t0:.1f} s)", flush=True)
        texts = make_texts(args.texts_count, args.seed, load_display_names(ROOT / "labels"))
        assert all("\n" not in t and t for t in texts)
        texts_file = work / "texts.txt"
        texts_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        words = [len(t.split()) for t in texts]
        print(f"texts: {len(texts)}, words {min(words)}-{max(words)} (mean {sum(words) / len(words):.1f}), "
              f"e.g. {texts[0]!r}", flush=True)

        blas_env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        print("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE left as found in the environment (neither set nor unset) "
              f"for both sides: {blas_env}", flush=True)

        if args.load:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that atexit stops the busy loop
            return 0 if load_rounds(args, ckpt, texts_file, work, len(texts)) else 1

        results = []
        ok = True
        for t in threads:
            print(f"\n== threads {t} (load average {os.getloadavg()[0]:.2f}) ==", flush=True)
            env = dict(os.environ, SSPA_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t))
            out_st = work / f"swift_T{t}.safetensors"
            sw, sw_rss, _ = run_timed([str(BIN), "--clip", str(ckpt), "--texts", str(texts_file), "--batch",
                                       str(args.batch), "--out", str(out_st), "--repeat", str(args.repeat)], env)
            sw_emb = load_file(str(out_st))["embeddings"]
            sw_len = load_file(str(out_st)).get("lengths")

            row = {"threads": t, "swift": sw, "swift_rss": sw_rss}
            for mode in ["plain"] + ([] if args.no_sorted else ["sorted"]):
                penv = dict(os.environ, OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
                out_np = work / f"hf_{mode}_T{t}.npy"
                hf, hf_rss, _ = run_timed([sys.executable, __file__, "--worker", "--mode", mode, "--threads", str(t),
                                           "--ckpt", str(ckpt), "--texts", str(texts_file), "--batch",
                                           str(args.batch), "--repeat", str(args.repeat), "--out", str(out_np)], penv)
                hf_emb = np.load(out_np)
                diff = float(np.abs(hf_emb.astype(np.float64) - sw_emb.astype(np.float64)).max())
                rel = diff / float(np.abs(hf_emb).max())
                same_len = sw_len is None or list(map(int, sw_len)) == hf["lengths"]
                passed = sw_emb.shape == hf_emb.shape and diff <= TOLERANCE and same_len
                ok &= passed
                print(f"  {mode}: max-abs diff {diff:.3e} (relative to max |x| {rel:.2e}), token lengths "
                      f"{'equal' if same_len else 'DIFFER'} -> {'PASS' if passed else 'FAIL'}", flush=True)
                row[mode] = dict(hf, rss=hf_rss, diff=diff, rel=rel, passed=passed)
            row["swift_padded"] = padded_sorted(row["plain"]["lengths"], args.batch)
            row["real_tokens"] = sum(row["plain"]["lengths"])
            results.append(row)

        first = results[0]
        print(f"\nCLIP ViT-B/16 text tower (random weights), {len(texts)} texts, batch {args.batch}, best of "
              f"{args.repeat}; transformers {first['plain']['attn_implementation']} attention, fp32.")
        print(f"tokens: {first['real_tokens']} real; padded to {first['plain']['padded_tokens']} by transformers "
              f"padding=True in input order, {first.get('sorted', {}).get('padded_tokens', '-')} when length-sorted, "
              f"{first['swift_padded']} by Swift's length buckets.")
        hdr = (f"{'threads':>7} | {'Swift s/s':>9} | {'HF s/s':>8} | {'ratio':>6} | {'HF sorted s/s':>13} | "
               f"{'ratio':>6} | {'Swift RSS':>9} | {'HF RSS':>8} | {'max|diff|':>9} | {'tok s (Sw/HF)':>13}")
        print(hdr)
        print("-" * len(hdr))
        for r in results:
            sw, pl, so = r["swift"], r["plain"], r.get("sorted")
            ratio = sw["sentences_per_s"] / pl["sentences_per_s"]
            sratio = sw["sentences_per_s"] / so["sentences_per_s"] if so else float("nan")
            diff = max(pl["diff"], so["diff"] if so else 0.0)
            print(f"{r['threads']:>7} | {sw['sentences_per_s']:>9.1f} | {pl['sentences_per_s']:>8.1f} | "
                  f"{ratio:>5.2f}x | {so['sentences_per_s'] if so else float('nan'):>13.1f} | {sratio:>5.2f}x | "
                  f"{r['swift_rss']:>6.0f} MB | {pl['rss']:>5.0f} MB | {diff:>9.2e} | "
                  f"{sw['tokenize_s']:.3f}/{pl['tokenize_s']:.3f}")
        print("ratio = Swift / transformers (padding=True, input order: the headline); sorted = transformers with "
              "length-sorted batches. RSS = peak resident set size of each process (/usr/bin/time -v).")
        for r in results:
            ratio = r["swift"]["sentences_per_s"] / r["plain"]["sentences_per_s"]
            print(f"goal T={r['threads']}: ratio {ratio:.2f} {'>=' if ratio >= GOAL_RATIO else '<'} {GOAL_RATIO} "
                  f"({'met' if ratio >= GOAL_RATIO else 'MISSED'}); Swift peak RSS {r['swift_rss']:.0f} MB "
                  f"({'met' if r['swift_rss'] < GOAL_RSS_MB else 'MISSED'}, goal < {GOAL_RSS_MB} MB)")
        print(f"parity (max-abs <= {TOLERANCE}): {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
