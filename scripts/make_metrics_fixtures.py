#!/usr/bin/env python3
"""Writes Tests/SSPATests/Fixtures/metrics_sklearn.json: scikit-learn reference values for SSPA.Metrics.

Only needed to regenerate the fixture (the Swift tests read the JSON):

    pip install numpy scikit-learn
    python3 scripts/make_metrics_fixtures.py

Each case holds seeded random probabilities `scores` [N, C] (float64) and targets [N, C] in {1, 0, -1}
(-1 = unknown), and the expected metrics computed with scikit-learn, with unknown entries removed before every call.
The "saturated" case also holds `logits` (float32 values, stored exactly, many above 17) and its `scores` are
1 / (1 + exp(-logit)) in float64: in float32 many of them round to 1 and would tie; the Swift test computes the
scores from the logits itself (SSPA.Metrics.probabilities), as SSPA-SPEC.md says metrics rank them.

- `ap[c]`: average_precision_score on label c's known entries (null without a known positive); `map`: their mean.
- `threshold` / `top3`: cp, cr (mean over labels with a known positive of precision_score / recall_score with
  zero_division=0 on that label's known entries) and op, or (precision_score / recall_score on all known entries
  pooled). Predictions: p >= 0.5, or (ML-GCN's top-3) among the 3 highest scores of each sample among all labels
  and p >= 0.5.
- `ma`: mean of balanced_accuracy_score over labels with both a known positive and a known negative.
- `instance`: per sample over its known labels jaccard_score, precision_score, recall_score (zero_division=0),
  averaged over samples.

The scores are tie-free within every label (known entries) and within every sample, so the ranking conventions of
SSPA.Metrics and scikit-learn agree; the Swift tests cover ties by hand. F1 values are not stored: the Swift test
derives them from the stored P and R (F1 of the averages).
"""
import json
import os

import numpy as np
import sklearn
from sklearn.metrics import (average_precision_score, balanced_accuracy_score, jaccard_score, precision_score,
                             recall_score)

N, C, K = 40, 7, 3
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "SSPATests", "Fixtures",
                   "metrics_sklearn.json")


def make_case(name, seed, unknown_rate, informative, empty_label, saturated=False):
    rng = np.random.default_rng(seed)
    while True:
        logits = None
        prevalence = rng.uniform(0.15, 0.5, size=C)
        y = (rng.random((N, C)) < prevalence).astype(np.int64)
        if empty_label is not None:
            y[:, empty_label] = 0
        if unknown_rate > 0:
            y[rng.random((N, C)) < unknown_rate] = -1
        if saturated:
            logits = (11 + 9 * (2 * (y == 1) - 1) + rng.normal(0, 6, size=(N, C))).clip(-8, 30)
            logits = logits.astype(np.float32).astype(np.float64)
            p = 1 / (1 + np.exp(-logits))
        elif informative:
            p = 1 / (1 + np.exp(-(1.5 * (2 * (y == 1) - 1) + rng.normal(0, 1.5, size=(N, C)))))
        else:
            p = rng.random((N, C))
        # Tie-free with a margin (so that a last-bit difference of exp between libraries cannot reorder).
        gaps = lambda v: np.diff(np.sort(v)).min(initial=1.0) > 1e-15 * 64
        ok = all(gaps(p[n]) for n in range(N)) and not np.any(np.abs(p - 0.5) < 1e-12)
        for c in range(C):
            known = y[:, c] != -1
            ok = ok and gaps(p[known, c])
            if c != empty_label:
                ok = ok and (y[:, c] == 1).any() and (y[:, c] == 0).any()
        if saturated:  # the case is only worth having if float32 would tie many scores at 1
            ok = ok and (1 / (1 + np.exp(-logits.astype(np.float32))) == np.float32(1)).sum() >= 20
        if ok:
            return name, y, p, logits


def class_overall(y, pred):
    known = y != -1
    cp, cr = [], []
    for c in range(C):
        k = known[:, c]
        if not (y[k, c] == 1).any():
            continue
        cp.append(precision_score(y[k, c], pred[k, c], zero_division=0))
        cr.append(recall_score(y[k, c], pred[k, c], zero_division=0))
    return {
        "cp": float(np.mean(cp)), "cr": float(np.mean(cr)),
        "op": float(precision_score(y[known], pred[known], zero_division=0)),
        "or": float(recall_score(y[known], pred[known], zero_division=0)),
    }


def expected(y, p):
    known = y != -1
    ap = []
    for c in range(C):
        k = known[:, c]
        ap.append(float(average_precision_score(y[k, c], p[k, c])) if (y[k, c] == 1).any() else None)
    thr = (p >= 0.5).astype(np.int64)
    top = np.zeros_like(thr)
    for n in range(N):
        top[n, np.argsort(-p[n])[:K]] = 1
    top = top * thr  # ML-GCN's top-3: among the 3 most probable and p >= 0.5
    ma = []
    for c in range(C):
        k = known[:, c]
        if (y[k, c] == 1).any() and (y[k, c] == 0).any():
            ma.append(balanced_accuracy_score(y[k, c], thr[k, c]))
    acc, prec, rec = [], [], []
    for n in range(N):
        k = known[n]
        if not k.any():
            continue
        acc.append(jaccard_score(y[n, k], thr[n, k], zero_division=0))
        prec.append(precision_score(y[n, k], thr[n, k], zero_division=0))
        rec.append(recall_score(y[n, k], thr[n, k], zero_division=0))
    return {
        "ap": ap,
        "map": float(np.mean([a for a in ap if a is not None])),
        "threshold": class_overall(y, thr),
        "top3": class_overall(y, top),
        "ma": float(np.mean(ma)),
        "instance": {"accuracy": float(np.mean(acc)), "precision": float(np.mean(prec)),
                     "recall": float(np.mean(rec))},
    }


def main():
    cases = [
        make_case("uniform, all known", 0, 0.0, False, None),
        make_case("informative, all known", 1, 0.0, True, None),
        make_case("informative, 15% unknown", 2, 0.15, True, None),
        make_case("uniform, 20% unknown, label 4 without positives", 3, 0.2, False, 4),
        make_case("saturated logits, 10% unknown", 4, 0.1, True, None, saturated=True),
    ]
    doc = {
        "generator": "scripts/make_metrics_fixtures.py",
        "sklearn": sklearn.__version__,
        "samples": N, "labels": C, "k": K,
        "cases": [dict({"name": name, "scores": [float(v) for v in p.ravel()], "targets": [int(v) for v in y.ravel()],
                        "expected": expected(y, p)},
                       **({} if logits is None else {"logits": [float(v) for v in logits.ravel()]}))
                  for name, y, p, logits in cases],
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
