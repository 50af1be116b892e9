#!/usr/bin/env python3
"""Vision-tower benchmark: Swift CLIP.VisionModel vs transformers CLIPVisionModelWithProjection on CPU (issue 5, §6).

Not a test; scripts/bench_vision.sh drives it (read that first). Needs torch, transformers, safetensors, PIL and
scikit-image (scripts/requirements-fixtures.txt), never at run time.

  python3 scripts/bench_vision.py --prepare DIR [--images 200] [--seed 0] [--e2e]
  python3 scripts/bench_vision.py --bench-one DIR --threads T [--batch 32] [--warmup 1] [--repeat 1] [--out FILE]
  python3 scripts/bench_vision.py --compare SWIFT.safetensors TORCH.safetensors
  python3 scripts/bench_vision.py --e2e-one DIR --threads T [--batch 32] [--out FILE]
  python3 scripts/bench_vision.py --table RESULTS.jsonl
  python3 scripts/bench_vision.py --load-table LOAD.jsonl [--cpu NAME] [--blas LINE]   (LOAD=1 bench_vision.sh)

--prepare writes into DIR (a temporary folder, never committed):
  clip/  a random CLIP checkpoint in Hugging Face's CLIPModel layout (config.json with vision_config/text_config,
         model.safetensors, preprocessor_config.json, vocab.json + merges.txt of the tiny test fixture). The vision
         tower is ViT-B/16 size: hidden 768, 12 layers, 12 heads, intermediate 3072, patch 16, image 224,
         projection 512, quick_gelu. The text tower is tiny (64 wide, 1 layer): only `sspa features` (the optional
         end-to-end row) loads it, to hash the weights. Weights are re-drawn at realistic scales (linear and conv std
         1/sqrt(fan_in), biases 0.02, LayerNorm N(1, 0.1)) so activations are O(1) and the parity check means
         something. transformers loads the vision half with CLIPVisionModelWithProjection.from_pretrained (checked:
         no missing key), the Swift side with CLIP.VisionModel(directory:).
  pixels.safetensors  "pixel_values" [N, 3, 224, 224] float32: N random crops (50-100 % of the area, aspect 3:4 to
         4:3) and horizontal flips of scikit-image's sample photos (astronaut, coffee, chelsea, rocket, in turn),
         through CLIPImageProcessor (PIL backend: shortest side 224 bicubic, centre crop, rescale, normalise). Both
         sides read this one file, so their inputs are identical to the bit.
  with --e2e also images/NNNN.jpg (the same crops as JPEG, quality 95), labels.txt and manifest.json for the
         end-to-end row.

--bench-one: the PyTorch side, one process per thread count (peak RSS is its own). torch.set_num_threads(T), model
in eval mode, default attention implementation (recorded), everything under torch.inference_mode(). Per batch of
--batch images (the last one smaller), as `sspa features` does: image_embeds (= x0) and the regions
visual_projection(post_layernorm(last_hidden_state[:, 1:, :])) (= Swift's `regions` in the default patch mode).
--warmup untimed batches first, then --repeat timed passes over all N images; images/s uses the median pass.
Prints one JSON line; peak RSS is ru_maxrss of the process (at the end, so it covers the setup too).

--compare: parity of x0 [N, 512] and regions [N, 196, 512] (Swift vs transformers). Measure: max |swift - torch|
over all elements, in absolute terms, the same as Tests/CLIPTests/VisionModelParityTests (also printed relative to
max |torch|). Pass iff both are <= 1e-4. Prints one JSON line; exits 1 on failure (never with --informative, which
the end-to-end row uses: its inputs are decoded separately and `sspa features` stores float16).

--e2e-one: the optional end-to-end row on the transformers side: PIL decode (convert RGB) + CLIPImageProcessor +
the model, batch by batch over images/*.jpg, timed from the first file opened to the last output (model load
excluded, no warm-up, exactly as `sspa features` reports its own images/s). Decoding runs on the calling thread, as
in the usual transformers recipe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_SRC = ROOT / "Tests" / "CLIPTests" / "Fixtures" / "checkpoints" / "tiny-quickgelu"
TOLERANCE = 1e-4
GOAL_RATIO = 1.2

VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224,
              patch_size=16, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=512)
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, vocab_size=49408,
            max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=512,
            bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
E2E_LABELS = ["person", "cup", "cat", "rocket"]  # astronaut, coffee, chelsea, rocket


def image_processor():
    """CLIPImageProcessor with the PIL backend (what CLIPImageProcessor falls back to without torchvision)."""
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # older transformers: the class is PIL-based already
        from transformers import CLIPImageProcessor as Processor
    return Processor()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------------------------------- prepare

def make_checkpoint(folder: Path, seed: int) -> None:
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=VISION["projection_dim"])
    model = CLIPModel(config).eval()
    g = torch.Generator().manual_seed(seed + 1)

    def normal_(t, std, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std + mean)

    with torch.no_grad():
        for _, module in model.named_modules():  # deterministic order
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                normal_(module.weight, 1.0 / math.sqrt(module.weight[0].numel()))
                if module.bias is not None:
                    normal_(module.bias, 0.02)
            elif isinstance(module, torch.nn.Embedding):
                normal_(module.weight, 0.1)
            elif isinstance(module, torch.nn.LayerNorm):
                normal_(module.weight, 0.1, 1.0)
                normal_(module.bias, 0.02)
            if isinstance(getattr(module, "class_embedding", None), torch.nn.Parameter):
                normal_(module.class_embedding, 1.0)
    model.save_pretrained(folder, safe_serialization=True)
    image_processor().save_pretrained(folder)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(TOKENIZER_SRC / name, folder / name)


def make_crops(n: int, seed: int):
    """`n` random crops (with flips) of scikit-image's sample photos, as uint8 HxWx3 arrays, and their photo index."""
    import numpy as np
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(seed)
    crops, which = [], []
    for i in range(n):
        k = i % len(photos)
        img = photos[k]
        h, w = img.shape[:2]
        area = rng.uniform(0.5, 1.0) * h * w
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch = max(16, min(h, round(math.sqrt(area / aspect))))
        cw = max(16, min(w, round(math.sqrt(area * aspect))))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = img[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(np.ascontiguousarray(crop))
        which.append(k)
    return crops, which


def prepare(a) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    work = Path(a.prepare)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    make_checkpoint(work / "clip", a.seed)
    t_ckpt = time.perf_counter() - t0

    t0 = time.perf_counter()
    crops, which = make_crops(a.images, a.seed)
    proc = image_processor()
    pixels = proc(images=[Image.fromarray(c) for c in crops], return_tensors="np")["pixel_values"].astype(np.float32)
    assert pixels.shape == (a.images, 3, VISION["image_size"], VISION["image_size"]), pixels.shape
    save_file({"pixel_values": torch.from_numpy(np.ascontiguousarray(pixels))}, str(work / "pixels.safetensors"),
              metadata={"source": "scikit-image astronaut/coffee/chelsea/rocket, random crops+flips, "
                                  f"{type(proc).__name__}", "seed": str(a.seed)})
    t_pix = time.perf_counter() - t0

    if a.e2e:
        (work / "images").mkdir(exist_ok=True)
        entries = []
        for i, (c, k) in enumerate(zip(crops, which)):
            name = f"images/{i:04d}.jpg"
            Image.fromarray(c).save(work / name, quality=95)
            entries.append([name, [E2E_LABELS[k]]])
        (work / "labels.txt").write_text("\n".join(E2E_LABELS) + "\n", encoding="utf-8")
        (work / "manifest.json").write_text(json.dumps({"classes": E2E_LABELS, "images": entries}), encoding="utf-8")
    size = (work / "clip" / "model.safetensors").stat().st_size / 2**20
    print(json.dumps(dict(checkpoint=str(work / "clip"), checkpoint_mib=round(size, 1), checkpoint_s=round(t_ckpt, 2),
                          images=a.images, pixels_s=round(t_pix, 2), pixel_min=float(pixels.min()),
                          pixel_max=float(pixels.max()), processor=type(proc).__name__, e2e=bool(a.e2e))))


# --------------------------------------------------------------------------------------------------- PyTorch side

def load_model(ckpt: Path):
    import transformers
    from transformers import CLIPVisionModelWithProjection

    transformers.logging.set_verbosity_error()  # the text tower's keys are "unexpected" here; checked below

    model, info = CLIPVisionModelWithProjection.from_pretrained(ckpt, output_loading_info=True)
    assert not info.get("missing_keys") and not info.get("mismatched_keys"), f"loading {ckpt} was not exact: {info}"
    return model.float().eval()


def forward(model, pixels):
    """x0 = image_embeds [B, 512]; regions = visual_projection(post_layernorm(patch tokens)) [B, 196, 512]."""
    o = model(pixel_values=pixels)
    regions = model.visual_projection(model.vision_model.post_layernorm(o.last_hidden_state[:, 1:, :]))
    return o.image_embeds, regions


def bench_one(a) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(a.threads)
    work = Path(a.bench_one)
    t0 = time.perf_counter()
    model = load_model(work / "clip")
    pixels = load_file(str(work / "pixels.safetensors"))["pixel_values"]
    setup_s = time.perf_counter() - t0
    rss_setup = vm_rss_mb()
    n, b = pixels.shape[0], a.batch
    runs, cpus = [], []
    with torch.inference_mode():
        for i in range(a.warmup):
            t0 = time.perf_counter()
            forward(model, pixels[:b])
            print(f"pytorch T={a.threads}: warm-up batch {i + 1}: {time.perf_counter() - t0:.2f} s", file=sys.stderr, flush=True)
        for r in range(a.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            outs = [forward(model, pixels[s:s + b]) for s in range(0, n, b)]
            runs.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            print(f"pytorch T={a.threads}: pass {r + 1}/{a.repeat}: {runs[-1]:.2f} s, {n / runs[-1]:.2f} images/s",
                  file=sys.stderr, flush=True)
            if r == 0 and a.out:
                save_file({"x0": torch.cat([o[0] for o in outs]).contiguous(),
                           "regions": torch.cat([o[1] for o in outs]).contiguous()}, a.out)
            del outs
    med = statistics.median(runs)
    print(json.dumps(dict(side="pytorch", threads=torch.get_num_threads(), images=n, batch=b, warmup=a.warmup,
                          repeat=a.repeat, images_per_s=n / med, seconds=med, runs_s=[round(t, 3) for t in runs],
                          cpu_s=statistics.median(cpus), setup_s=round(setup_s, 2), rss_after_setup_mb=round(rss_setup, 1),
                          peak_rss_mb=round(peak_rss_mb(), 1), loadavg_1min=os.getloadavg()[0],
                          attn_implementation=model.config._attn_implementation, torch=torch.__version__)))


def e2e_one(a) -> None:
    import torch
    from PIL import Image

    torch.set_num_threads(a.threads)
    work = Path(a.e2e_one)
    manifest = json.loads((work / "manifest.json").read_text())
    paths = [work / p for p, _ in manifest["images"]]
    model = load_model(work / "clip")
    proc = image_processor()
    n, b = len(paths), a.batch
    x0s, regs = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for s in range(0, n, b):
            images = []
            for p in paths[s:s + b]:
                with Image.open(p) as im:
                    images.append(im.convert("RGB"))
            pixels = proc(images=images, return_tensors="pt")["pixel_values"]
            x0, regions = forward(model, pixels)
            x0s.append(x0)
            regs.append(regions)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if a.out:
        from safetensors.torch import save_file
        save_file({"x0": torch.cat(x0s).contiguous(), "regions": torch.cat(regs).contiguous()}, a.out)
    print(json.dumps(dict(side="pytorch-e2e", threads=torch.get_num_threads(), images=n, batch=b,
                          images_per_s=n / seconds, seconds=seconds, cpu_s=cpu, peak_rss_mb=round(peak_rss_mb(), 1),
                          loadavg_1min=os.getloadavg()[0])))


# --------------------------------------------------------------------------------------------------- parity, table

def compare(swift_path: str, torch_path: str, tolerance: float) -> bool:
    import numpy as np
    from safetensors.numpy import load_file

    s, t = load_file(swift_path), load_file(torch_path)
    if "regions" not in s and "X" in s:  # a features file of `sspa features` (SSPA-SPEC.md's X)
        s["regions"] = s["X"]
    result, ok = {}, True
    for key in ("x0", "regions"):
        a, b = s[key].astype(np.float64), t[key].astype(np.float64)
        if a.shape != b.shape:
            result[key] = dict(shape_swift=list(a.shape), shape_torch=list(b.shape), passed=False)
            ok = False
            continue
        diff = float(np.abs(a - b).max())
        scale = float(np.abs(b).max())
        passed = diff <= tolerance
        ok &= passed
        result[key] = dict(shape=list(a.shape), max_abs_diff=diff, max_abs_torch=scale, relative=diff / scale,
                           passed=passed)
    print(json.dumps(dict(side="parity", tolerance=tolerance, measure="max |swift - torch| (absolute)", passed=ok,
                          **result)))
    return ok


def table(path: str) -> bool:
    # Lines of scripts/bench_vision.sh: {"kind": …, "threads": T, "load": 1-min load before the run, "result": {…}}.
    rows = [dict(r["result"], kind=r["kind"], threads=r["threads"], load=r["load"])
            for r in (json.loads(l) for l in open(path) if l.strip())]
    by = {}
    for r in rows:
        by.setdefault(r["threads"], {})[r["kind"]] = r
    ok = True
    first = next((r for r in rows if r["kind"] == "pytorch"), {})
    print(f"CLIP ViT-B/16 vision tower (random weights, fp32), 224², {first.get('images', '?')} images, batch "
          f"{first.get('batch', '?')}, warm-up {first.get('warmup', '?')} batch(es) excluded, median of "
          f"{first.get('repeat', '?')} pass(es); transformers {first.get('attn_implementation', '?')} attention, "
          f"torch {first.get('torch', '?')}")
    hdr = (f"{'row':<22} {'thr':>3} | {'Swift img/s':>11} {'PyTorch img/s':>13} {'ratio':>6} {'goal':>4} | "
           f"{'Swift RSS MB':>12} {'PyTorch RSS MB':>14} | {'Swift CPU/wall':>14} {'PT CPU/wall':>11} | "
           f"{'load 1min S/P':>13} | parity max|Δ| x0 / regions")
    print(hdr)
    print("-" * len(hdr))
    for t in sorted(by):
        r = by[t]
        for label, sk, pk in (("model, same pixels", "swift", "pytorch"), ("end-to-end JPEG→feat", "swift-e2e", "pytorch-e2e")):
            if sk not in r or pk not in r:
                continue
            s, p = r[sk], r[pk]
            ratio = s["images_per_s"] / p["images_per_s"]
            parity = r.get("parity" if sk == "swift" else "parity-e2e")
            if parity:
                pt = (f"{parity['x0']['max_abs_diff']:.2e} / {parity['regions']['max_abs_diff']:.2e} "
                      f"{'PASS' if parity['passed'] else 'FAIL'}")
                if sk == "swift":
                    ok &= parity["passed"]
                else:
                    pt += " (info)"
            else:
                pt = "-"
                if sk == "swift":
                    ok = False
            scw = s.get("cpu_s", float("nan")) / s["seconds"]
            pcw = p.get("cpu_s", float("nan")) / p["seconds"]
            print(f"{label:<22} {t:>3} | {s['images_per_s']:>11.2f} {p['images_per_s']:>13.2f} {ratio:>6.2f} "
                  f"{'ok' if ratio >= GOAL_RATIO else 'MISS':>4} | {s['peak_rss_mb']:>12.0f} {p['peak_rss_mb']:>14.0f} | "
                  f"{scw:>14.2f} {pcw:>11.2f} | {s.get('load', float('nan')):>5.2f} / {p.get('load', float('nan')):<5.2f} | {pt}")
    print(f"ratio = Swift images/s / PyTorch images/s, goal >= {GOAL_RATIO}. Peak RSS: VmHWM (Swift) and ru_maxrss "
          "(PyTorch) of each whole process, setup included; end-to-end rows: /usr/bin/time's maximum RSS for both. "
          "CPU/wall = process CPU time over wall time in the timed part (≈ threads when nothing else competed). "
          f"Parity: max |swift - torch| over all elements, pass iff <= {TOLERANCE} (absolute) for x0 and regions; "
          "the end-to-end row's parity is informative only (JPEG decoding and PIL's bicubic may differ in the last bit, "
          "and `sspa features` stores float16).")
    print(f"parity: {'PASS' if ok else 'FAIL'}")
    return ok


def load_table(path: str, cpu: str, blas: str) -> None:
    """The rows under load of `LOAD=1 scripts/bench_vision.sh`: each side quiet and loaded, and its fall."""
    rows = [json.loads(l) for l in open(path) if l.strip()]
    first = next(r["result"] for r in rows if r["kind"] == "pytorch")
    threads = rows[0]["threads"]
    print(f"CLIP ViT-B/16 vision tower under load: {first['images']} images, batch {first['batch']}, {threads} threads, "
          f"{len({r['round'] for r in rows})} rounds; CPU {cpu}; {blas}; torch {first.get('torch', '?')}")
    print("loaded = one background busy loop keeps one core busy; images/s = median over rounds; "
          "fall = throughput loaded / quiet (1 = none)")
    print(f"{'side':<8} | {'quiet img/s':>11} {'loaded img/s':>12} {'fall':>6} | runs quiet / loaded (img/s)")
    falls = {}
    for side in ("swift", "pytorch"):
        q = [r["result"]["images_per_s"] for r in rows if r["kind"] == side and r["cond"] == "quiet"]
        l = [r["result"]["images_per_s"] for r in rows if r["kind"] == side and r["cond"] == "loaded"]
        qm, lm = statistics.median(q), statistics.median(l)
        falls[side] = lm / qm
        print(f"{side:<8} | {qm:>11.2f} {lm:>12.2f} {lm / qm:>6.2f} | {' '.join(f'{x:.2f}' for x in q)} / "
              f"{' '.join(f'{x:.2f}' for x in l)}")
    ok = falls["swift"] >= falls["pytorch"]
    print(f"Swift keeps {falls['swift']:.2f} of its quiet throughput, PyTorch {falls['pytorch']:.2f}: "
          f"goal (Swift's fall no larger) {'met' if ok else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepare", metavar="DIR")
    ap.add_argument("--bench-one", metavar="DIR")
    ap.add_argument("--e2e-one", metavar="DIR")
    ap.add_argument("--compare", nargs=2, metavar=("SWIFT", "TORCH"))
    ap.add_argument("--table", metavar="JSONL")
    ap.add_argument("--load-table", metavar="JSONL")
    ap.add_argument("--cpu", default="?")
    ap.add_argument("--blas", default="BLAS: ?")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--e2e", action="store_true", help="with --prepare: also the JPEGs, labels and manifest")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass (sspa features' default)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=TOLERANCE)
    ap.add_argument("--informative", action="store_true", help="with --compare: report, never fail")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.prepare:
        prepare(a)
    if a.bench_one:
        bench_one(a)
    if a.e2e_one:
        e2e_one(a)
    if a.compare:
        if not compare(*a.compare, a.tolerance) and not a.informative:
            print(f"PARITY FAILED: Swift and transformers outputs differ by more than {a.tolerance}", file=sys.stderr)
            return 1
    if a.table:
        return 0 if table(a.table) else 1
    if a.load_table:
        load_table(a.load_table, a.cpu, a.blas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
