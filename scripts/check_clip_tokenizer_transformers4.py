#!/usr/bin/env python3
"""Cross-check Tests/CLIPTests/Fixtures/tokenizer_cases.json against transformers 4's CLIP tokenizers.

transformers 5 only has the tokenizers-backed CLIPTokenizer.  transformers 4 also has the "slow" Python
CLIPTokenizer, which follows OpenAI's SimpleTokenizer: it uses ftfy when ftfy is installed and otherwise falls
back to a BasicTokenizer.  This script checks the reference ids in tokenizer_cases.json (written by
scripts/make_clip_fixtures.py) against three transformers 4 tokenizers:

* the slow CLIPTokenizer with ftfy (expected: identical to the reference on every case),
* the slow CLIPTokenizer on its no-ftfy fallback path (BasicTokenizer),
* CLIPTokenizerFast.

It needs no torch.  Run it in a separate virtual environment, from the repository root:

    python3 -m venv /tmp/hf4 && /tmp/hf4/bin/pip install "transformers==4.57.6" "ftfy==6.3.1" regex
    /tmp/hf4/bin/python scripts/check_clip_tokenizer_transformers4.py

It writes Tests/CLIPTests/Fixtures/tokenizer_report_transformers4.json and prints a summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import transformers
from transformers import CLIPTokenizer, CLIPTokenizerFast
from transformers.models.clip import tokenization_clip

FIXTURES = Path(__file__).resolve().parent.parent / "Tests" / "CLIPTests" / "Fixtures"
VOCAB_DIR = FIXTURES / "checkpoints" / "tiny-quickgelu"


def main() -> None:
    if not transformers.__version__.startswith("4."):
        sys.exit(f"needs transformers 4.x, found {transformers.__version__}")
    cases = json.loads((FIXTURES / "tokenizer_cases.json").read_text(encoding="utf-8"))
    vocab, merges = str(VOCAB_DIR / "vocab.json"), str(VOCAB_DIR / "merges.txt")

    slow = CLIPTokenizer(vocab, merges)
    if slow.fix_text is None:
        sys.exit("ftfy is not importable: install it")
    no_ftfy = CLIPTokenizer(vocab, merges)
    no_ftfy.fix_text = None  # the path transformers 4 takes when ftfy is not installed
    no_ftfy.nlp = tokenization_clip.BasicTokenizer(strip_accents=False, do_split_on_punc=False)
    fast = CLIPTokenizerFast(vocab, merges)

    report = {"transformers_version": transformers.__version__,
              "ftfy_version": __import__("ftfy").__version__,
              "num_cases": len(cases), "tokenizers": {}}
    for label, tok in [("slow_with_ftfy", slow), ("slow_without_ftfy", no_ftfy), ("fast", fast)]:
        bad = []
        for c in cases:
            ids = tok(c["text"])["input_ids"]
            if ids != c["ids"]:
                bad.append({"text": c["text"], "ids": c["ids"], "transformers_ids": ids})
        report["tokenizers"][label] = {"num_disagreements": len(bad), "disagreements": bad}
        print(f"{label}: {len(bad)} of {len(cases)} cases disagree with the reference")
    out = FIXTURES / "tokenizer_report_transformers4.json"
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
