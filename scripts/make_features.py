#!/usr/bin/env python3
"""Writes a synthetic SSPA features file of any size without holding it in memory (issue 11 memory benchmark).

    scripts/make_features.py --out F.safetensors --images N [--regions 196] [--width 16] --labels a,b,c --encoder SHA

The file is what `sspa features` writes: x0 [N, d] and X [N, M, d] as F16, labels [N, C] as I8 (each image has at
least one positive), metadata labels / encoder_sha256 / image_paths ([]) / region_mode (patch). The values are
finite random halves from one pre-made chunk written over and over: the benchmark measures memory, not learning.
Only the standard library is used.
"""
import argparse
import json
import random
import struct


def chunk_writer(out, pattern: bytes, total: int) -> None:
    """Writes `total` bytes made of `pattern` repeated (and cut)."""
    while total > 0:
        piece = pattern if total >= len(pattern) else pattern[:total]
        out.write(piece)
        total -= len(piece)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--regions", type=int, default=196)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--labels", required=True, help="comma-separated raw label names, in column order")
    parser.add_argument("--encoder", required=True, help="the CLIP encoder id the knowledge was encoded with")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, m, d = args.images, args.regions, args.width
    names = args.labels.split(",")
    c = len(names)
    rng = random.Random(args.seed)

    x0_bytes, x_bytes, y_bytes = n * d * 2, n * m * d * 2, n * c
    header = {
        "x0": {"dtype": "F16", "shape": [n, d], "data_offsets": [0, x0_bytes]},
        "X": {"dtype": "F16", "shape": [n, m, d], "data_offsets": [x0_bytes, x0_bytes + x_bytes]},
        "labels": {"dtype": "I8", "shape": [n, c], "data_offsets": [x0_bytes + x_bytes, x0_bytes + x_bytes + y_bytes]},
        "__metadata__": {"labels": json.dumps(names), "encoder_sha256": args.encoder, "image_paths": "[]",
                         "region_mode": "patch"},
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned, as safetensors writers do

    # 1 Mi halves (2 MiB) of N(0, 1) values; an odd length in halves so rows do not repeat in lockstep.
    values = [rng.gauss(0, 1) for _ in range((1 << 20) + 7)]
    floats = struct.pack("<%de" % len(values), *values)
    rows = []
    for _ in range(4099):
        row = [1 if rng.random() < 0.3 else 0 for _ in range(c)]
        if not any(row):
            row[rng.randrange(c)] = 1
        rows.append(bytes(row))
    labels = b"".join(rows)
    with open(args.out, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        chunk_writer(out, floats, x0_bytes)
        chunk_writer(out, floats[2 * 12345:] + floats[:2 * 12345], x_bytes)
        chunk_writer(out, labels, y_bytes)


if __name__ == "__main__":
    main()
