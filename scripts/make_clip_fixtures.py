#!/usr/bin/env python3
"""Generate the CLIP parity fixtures used by the Swift tests in Tests/CLIPTests/Fixtures/.

No pretrained CLIP weights can be downloaded here, so the Swift CLIP code is proven by parity with
Hugging Face `transformers` on tiny *random* checkpoints that have the real CLIP architecture and the
real 49,408-token BPE vocabulary.  The outputs of this script are committed; CI never needs torch.

How to run (from the repository root)::

    pip install -r scripts/requirements-fixtures.txt   # see that file: torch comes from a local CPU wheel
    python3 scripts/make_clip_fixtures.py

Options: ``--bpe PATH`` points at ``bpe_simple_vocab_16e6.txt.gz``; without it the script looks in
``$CLIP_BPE_PATH`` and in ``/tmp/oc/open_clip/``, and otherwise runs
``pip download --no-deps open-clip-torch==3.3.0`` into a temporary folder and takes the file (MIT licence)
out of the wheel.  ``--out DIR`` changes the output folder.  The run takes well under a minute on 2 cores.

The script is deterministic: every random draw comes from a fixed seed.  Re-running it with the same
package versions rewrites byte-identical files.

What it writes (all under Tests/CLIPTests/Fixtures/):

* ``checkpoints/<name>/``: a Hugging Face CLIP checkpoint folder per configuration
  (``config.json``, ``model.safetensors``, ``vocab.json``, ``merges.txt``)

  - ``tiny-quickgelu``  : fp32 weights, quick_gelu, text 16 wide x 2 layers x 2 heads, vision 16 x 2 x 2,
    image 32, patch 8.
  - ``tiny-gelu-fp16``  : fp16 weights, exact (erf) gelu, text 24 x 2 x 3 heads, vision 24 x 3 x 3,
    image 32, patch 16.

  Weights are drawn by transformers' own init (seeded) and then re-drawn at a larger scale (see
  ``rescale_weights``) so that activations are far from zero and parity is meaningful.
* ``outputs/<name>/text_outputs.safetensors`` + ``text_outputs.json``: a batch of 8 strings (one truncated at
  77 tokens), padded by the transformers tokenizer, and the text tower's outputs.
* ``outputs/<name>/vision_outputs.safetensors`` + ``vision_outputs.json``: a fixed random pixel batch and the
  vision tower's outputs.
* ``tokenizer_cases.json``: a JSON list of ``{"text", "ids", "ids_truncated77", ...}``; the reference is
  OpenAI CLIP's ``SimpleTokenizer`` (ftfy.fix_text, html.unescape twice, whitespace clean, lower-case, the
  CLIP regex, byte-level BPE), reimplemented below.
* ``tokenizer_report.json``: where transformers' ``CLIPTokenizer`` and the open_clip variant of the
  tokenizer disagree with the reference, and why.
* ``manifest.json``: package versions, seeds, sha256 and size of every file written.
* ``README.md``: a short human-readable index of the above.

Reference outputs of the fp16 checkpoint are computed by loading the fp16 file and running it in float32
(``.float()``), because the Swift side computes in float32.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
import regex
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "Tests" / "CLIPTests" / "Fixtures"
LABEL_DIR = REPO_ROOT / "labels"
SHARED_LABEL_SETS = Path("/work/shared/data/label-sets.json")

OPEN_CLIP_VERSION = "3.3.0"
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"

VOCAB_SIZE = 49408
SOT_ID = 49406
EOT_ID = 49407
CONTEXT_LENGTH = 77

# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------


@lru_cache()
def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte -> printable unicode character table, in CLIP's id order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    byte_values = printable[:]
    code_points = printable[:]
    extra = 0
    for b in range(256):
        if b not in byte_values:
            byte_values.append(b)
            code_points.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(byte_values, code_points)}


def load_bpe(bpe_path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Return (merges, vocab) exactly as OpenAI's SimpleTokenizer builds them."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    assert all(len(m) == 2 for m in merges)
    base = list(bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    assert len(set(vocab)) == VOCAB_SIZE, "duplicate vocabulary entries"
    return merges, vocab


def write_vocab_files(folder: Path, merges, vocab) -> None:
    """vocab.json (token -> id, in id order, compact UTF-8) and merges.txt ('#version: 0.2' header + merges)."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder = {tok: i for i, tok in enumerate(vocab)}
    (folder / "vocab.json").write_text(
        json.dumps(encoder, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    with open(folder / "merges.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


def find_bpe(explicit: str | None) -> Path:
    candidates = [explicit, os.environ.get("CLIP_BPE_PATH"), "/tmp/oc/" + BPE_MEMBER]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    if explicit:
        raise SystemExit(f"--bpe {explicit}: no such file")
    tmp = Path(tempfile.mkdtemp(prefix="open_clip_wheel_"))
    print(f"downloading open-clip-torch=={OPEN_CLIP_VERSION} (no deps) into {tmp} ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", f"open-clip-torch=={OPEN_CLIP_VERSION}", "-d", str(tmp)],
        check=True,
    )
    wheel = next(tmp.glob("open_clip_torch-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract(BPE_MEMBER, tmp)
    return tmp / BPE_MEMBER


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Reference tokenizer: OpenAI CLIP's SimpleTokenizer (clip.tokenize), reimplemented.
# flavor="open_clip" gives open_clip's copy of it, which differs in two details: its special tokens are
# spelled <start_of_text>/<end_of_text> (so the literal text "<|endoftext|>" is not special), and its
# whitespace clean is " ".join(text.split()) instead of regex \s+ -> " ".
# --------------------------------------------------------------------------------------------------


class ReferenceClipTokenizer:
    def __init__(self, merges, vocab, flavor: str = "openai"):
        assert flavor in ("openai", "open_clip")
        self.flavor = flavor
        self.byte_encoder = bytes_to_unicode()
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        if flavor == "openai":
            specials = ["<|startoftext|>", "<|endoftext|>"]
            special_pattern = r"<\|startoftext\|>|<\|endoftext\|>"
        else:
            # open_clip maps its own spellings to the same two ids (49406, 49407)
            specials = ["<start_of_text>", "<end_of_text>"]
            special_pattern = "<start_of_text>|<end_of_text>"
            self.encoder = dict(self.encoder)
            self.encoder["<start_of_text>"] = SOT_ID
            self.encoder["<end_of_text>"] = EOT_ID
        self.cache = {s: s for s in specials}
        self.pattern = regex.compile(
            special_pattern + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def clean(self, text: str) -> str:
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text))
        text = text.strip()
        if self.flavor == "openai":
            text = regex.sub(r"\s+", " ", text).strip()
        else:
            text = " ".join(text.split()).strip()
        return text.lower()

    def bpe(self, token: str) -> list[str]:
        if token in self.cache:
            return self.cache[token].split(" ")
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, math.inf))
            if best not in self.ranks:
                break
            merged = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = " ".join(word)
        return word

    def tokens(self, text: str) -> list[str]:
        out = []
        for piece in self.pattern.findall(self.clean(text)):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            out.extend(self.bpe(mapped))
        return out

    def encode(self, text: str) -> list[int]:
        """[SOT] + BPE ids + [EOT], untruncated."""
        return [SOT_ID] + [self.encoder[t] for t in self.tokens(text)] + [EOT_ID]


def truncate77(ids: list[int]) -> list[int]:
    """clip.tokenize(truncate=True): keep the first 76 ids and put EOT last."""
    if len(ids) <= CONTEXT_LENGTH:
        return list(ids)
    return ids[: CONTEXT_LENGTH - 1] + [EOT_ID]


# --------------------------------------------------------------------------------------------------
# Test strings
# --------------------------------------------------------------------------------------------------


def label_strings() -> tuple[list[str], str]:
    """Every raw name, display name and synonym in labels/*.txt (`raw`, `raw => display`, optional `| syn, syn`,
    `#` comments), then the raw class names of the shared label-sets.json that are not already there."""
    names: list[str] = []
    sources = []
    files = sorted(LABEL_DIR.glob("*.txt")) if LABEL_DIR.is_dir() else []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            main, _, synonyms = line.partition("|")
            names.extend(p.strip() for p in main.split("=>") if p.strip())
            names.extend(s.strip() for s in synonyms.split(",") if s.strip())
    if files:
        sources.append("labels/*.txt")
    if SHARED_LABEL_SETS.is_file():
        data = json.loads(SHARED_LABEL_SETS.read_text(encoding="utf-8"))
        for key, value in data.items():
            if isinstance(value, dict) and "classes" in value:
                names.extend(value["classes"])
        sources.append(str(SHARED_LABEL_SETS))
    if not sources:
        raise SystemExit("no label names found: neither labels/*.txt nor " + str(SHARED_LABEL_SETS))
    seen = set()
    unique = []
    for n in names:
        if n not in seen:
            seen.add(n)
            unique.append(n)
    return unique, " + ".join(sources)


def display_like(name: str) -> str:
    """A display-name-like variant of a raw label (camelCase split, _ and - to spaces). Not an official name."""
    s = regex.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", " ", name)
    s = s.replace("_", " ").replace("-", " ")
    return " ".join(s.split()).lower()


DESCRIPTIONS = [
    "A dog is a four-legged animal with fur, a tail, and pointed or floppy ears.",
    "A cat has a small, furry body, whiskers, slit-shaped pupils and a long tail.",
    "An aeroplane has two long wings, a tail fin, jet engines and a row of small windows.",
    "A bicycle has two thin wheels, pedals, a chain, handlebars and a narrow seat.",
    "A bird has feathers, a beak, two wings and thin legs ending in claws.",
    "A boat floats on water; it has a pointed bow, a hull and sometimes a mast or sail.",
    "A bottle is a narrow-necked container made of glass or plastic, often with a cap.",
    "A bus is a long, boxy vehicle with many windows, large wheels and doors on one side.",
    "A car has four wheels, headlights, a windshield, side mirrors and a license plate.",
    "A chair has a seat, a backrest and usually four legs.",
    "A cow is a large black-and-white or brown animal with horns, hooves and an udder.",
    "A dining table is a flat wooden surface on legs, often surrounded by chairs.",
    "A horse has a long face, a flowing mane, a tail and slender legs with hooves.",
    "A motorbike has two wheels, an engine between them, a fuel tank and handlebars.",
    "A person stands upright on two legs and has a head, arms, hands and clothing.",
    "A potted plant is green foliage growing out of soil in a clay or plastic pot.",
    "A sheep has a thick, fluffy, off-white wool coat and a narrow face.",
    "A sofa is a long upholstered seat with cushions, armrests and a back.",
    "A train is a line of connected carriages running on metal rails.",
    "A TV monitor is a flat rectangular screen, usually black, on a stand or wall mount.",
    "A traffic light is a tall pole holding red, yellow and green lamps.",
    "A fire hydrant is a short red or yellow metal post with valves on its sides.",
    "A stop sign is a red octagon with the word STOP in white capital letters.",
    "A parking meter is a grey metal box on a pole with a coin slot and a small display.",
    "A bench is a long seat for several people, made of wood slats or metal.",
    "An elephant is huge and grey, with a long trunk, big flapping ears and tusks.",
    "A zebra looks like a horse covered in bold black and white stripes.",
    "A giraffe has a very long neck, long legs and a coat of brown patches.",
    "A backpack is a fabric bag with two shoulder straps and zippered pockets.",
    "An umbrella is a round canopy of fabric stretched over thin ribs on a handle.",
    "A handbag is a small bag with a handle or strap, often made of leather.",
    "A tie is a long, narrow strip of cloth knotted at the collar of a shirt.",
    "A suitcase is a rectangular case with a handle, wheels and a telescoping grip.",
    "A frisbee is a flat plastic disc, usually brightly coloured, thrown through the air.",
    "Skis are long, narrow boards strapped to boots for sliding over snow.",
    "A kite is a light frame covered in fabric, flying high on a long string.",
    "A baseball bat is a smooth wooden or aluminium club, thicker at one end.",
    "A skateboard is a short board on four small wheels with grip tape on top.",
    "A surfboard is a long, glossy, pointed board used to ride ocean waves.",
    "A tennis racket has an oval head strung with a tight net and a long handle.",
    "A wine glass has a thin stem, a round base and a bowl-shaped top.",
    "A cup is a small open container with a handle, often holding coffee or tea.",
    "A fork is a metal utensil with three or four thin prongs.",
    "A knife has a sharp metal blade and a handle.",
    "A spoon has a shallow oval bowl at the end of a handle.",
    "A banana is a long, curved fruit with a yellow peel that turns brown with spots.",
    "An apple is a round fruit with shiny red, green or yellow skin and a short stem.",
    "A sandwich is two slices of bread with fillings such as cheese, ham or lettuce.",
    "Broccoli has a thick green stalk topped with clusters of tiny dark-green buds.",
    "A pizza is a flat round bread covered with tomato sauce, melted cheese and toppings.",
    "A donut is a ring of fried dough, often glazed or covered in sprinkles.",
    "A laptop is a thin, hinged computer with a screen and a keyboard.",
    "A pedestrian carrying a backpack walks along the sidewalk, seen from the side.",
    "A woman over sixty wears a long coat, glasses and flat shoes.",
    "A man in a short-sleeved T-shirt and jeans holds a plastic bag.",
    "From above, an airport shows long grey runways, taxiways and parked aircraft.",
    "Bare soil appears as patches of brown or tan ground without vegetation.",
    "A baseball diamond is a fan-shaped field with a brown infield and white bases.",
    "A basketball court is a rectangle with painted lines and a hoop at each end.",
    "Seen from a satellite, a beach is a thin strip of pale sand between sea and land.",
    "Chaparral is dense, shrubby vegetation on dry hillsides, dotted with dark green bushes.",
    "A harbor contains piers, docks and many boats moored in calm water.",
    "A parking lot is a grid of painted stalls filled with rows of cars.",
    "Storage tanks look like white circles clustered together in an industrial area.",
    "A freeway is a wide road with several lanes, medians and curving ramps.",
    "Snow-covered mountains have white peaks, dark rocky ridges and shadows.",
    "A cemetery has rows of small headstones on mown grass, sometimes with trees.",
]

LONG_STRINGS = [
    # > 77 tokens
    "A photo of a golden retriever puppy sitting on a wooden porch in the late afternoon sun, "
    "its fur glowing, a red ball between its paws, a garden hose coiled nearby, potted geraniums "
    "lining the steps, a bicycle leaning against the railing, and in the background a white picket "
    "fence, a maple tree with orange leaves, and a neighbour walking a small terrier on a leash.",
    " ".join(["dog"] * 100),
    "a " * 75,  # exactly 75 content tokens -> 77 ids, no truncation
    "a " * 76,  # 76 content tokens -> 78 ids, truncated to 77
    "The quick brown fox jumps over the lazy dog. " * 8,
    "1234567890" * 10,
    "supercalifragilisticexpialidocious " * 12,
    "¿Dónde está la biblioteca? Está al lado de la estación de tren, cerca del café. " * 3,
    "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。" * 3,
]

EDGE_CASES = [
    # empty / whitespace
    "",
    " ",
    "   \t\n  ",
    "  leading and trailing spaces  ",
    "tabs\tbetween\twords",
    "new\nline\r\nand\rreturns",
    "multiple     spaces    inside",
    "non\u00a0breaking\u00a0space",
    "ideographic\u3000space",
    "zero\u200bwidth\u200bspace",
    "word\u200djoiner",
    "soft\u00adhyphen",
    "line\u2028separator",
    "em\u2003space and thin\u2009space",
    "vertical\u000btab and form\u000cfeed",
    "file\u001cseparator\u001drecord\u001eunit\u001f",
    "next\u0085line",
    "null\u0000char",
    "bell\u0007and escape\u001b[31mred\u001b[0m",
    # punctuation
    "!!!???...",
    "--",
    "a,b;c",
    "hello, world!",
    "well... maybe?!",
    "(parenthesised) [bracketed] {braced}",
    "quotes \"double\" and 'single'",
    "curly \u201cdouble\u201d and \u2018single\u2019",
    "e-mail: someone@example.com",
    "https://example.com/path?query=1&x=2#frag",
    "C:\\Windows\\System32",
    "snake_case_name and kebab-case-name",
    "CamelCaseName and mixedCASE",
    "#hashtag @mention $100 50% ^caret ~tilde `backtick`",
    "a+b=c; x*y/z; a<b>c; a<=b>=c; ->",
    "<<<>>>",
    "***",
    "...",
    "\u2026 ellipsis char",
    "en\u2013dash and em\u2014dash",
    "\u00abguillemets\u00bb \u201elow quotes\u201c",
    # numbers
    "1234567",
    "3.14",
    "2nd",
    "1st 2nd 3rd 4th",
    "-42",
    "1,000,000",
    "1e-5",
    "0x1F",
    "COVID-19",
    "Age18-60",
    "AgeOver60",
    "\u0661\u0662\u0663 arabic-indic digits",
    "\u0967\u0968\u0969 devanagari digits",
    "\u2460\u2461\u2462 circled digits",
    "\u00bd \u00be fractions",
    "x\u00b2 superscript",
    "\uff11\uff12\uff13 fullwidth digits",
    # contractions
    "don't",
    "it's",
    "we'll",
    "I'M",
    "you're they've she'd",
    "DON'T IT'S WE'LL YOU'RE",
    "rock 'n' roll",
    "o'clock",
    "dogs' bones",
    "the '90s",
    "can't won't shan't",
    "don\u2019t it\u2019s",
    "'s 't 're 've 'm 'll 'd",
    # HTML entities
    "&amp;",
    "&lt;b&gt;",
    "fish &amp; chips",
    "&amp;amp;",
    "&amp;amp;amp;",
    "&quot;quoted&quot;",
    "&#39;apostrophe&#39;",
    "&#x27;hex&#x27;",
    "&nbsp;",
    "caf&eacute;",
    "<b>bold</b> tag",
    "&lt;|endoftext|&gt;",
    # special tokens in text
    "<|startoftext|>",
    "<|endoftext|>",
    "a photo <|endoftext|> of a dog",
    "<|ENDOFTEXT|>",
    "startoftext endoftext",
    "<start_of_text> <end_of_text>",
    # case
    "UPPERCASE WORDS",
    "MiXeD cAsE",
    "\u0130stanbul",
    "STRASSE stra\u00dfe",
    "\u1e9e capital sharp s",
    # ligatures, width, mojibake (ftfy territory)
    "\ufb01sh \ufb02ower",
    "\uff21\uff22\uff23 fullwidth letters",
    "caf\u00c3\u00a9",
    "\u00e2\u20ac\u0153mojibake\u00e2\u20ac\ufffd",
    "replacement \ufffd char",
    # French / German / others with accents
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
    "na\u00efve fa\u00e7ade co\u00f6perate",
    "\u00c9cole \u00e9l\u00e9mentaire \u00e0 P\u00e2ques",
    "\u00dcberstra\u00dfe M\u00e4dchen \u00d6l Gr\u00fc\u00dfe",
    "Ni\u00f1o peque\u00f1o, \u00bfqu\u00e9 tal?",
    "S\u00e3o Paulo, cora\u00e7\u00e3o",
    "\u0141\u00f3d\u017a \u017c\u00f3\u0142w",
    "\u010cesk\u00fd \u0159\u00edzek",
    "T\u00fcrk\u00e7e \u015fi\u015fe \u0131\u015f\u0131k",
    "\u00c5ngstr\u00f6m \u00d8resund",
    # NFC vs NFD
    "caf\u00e9",
    "cafe\u0301",
    "\u00c5",
    "A\u030a",
    "\u212b angstrom sign",
    "\uac00",
    "\u1100\u1161",
    "e\u0301\u0301 double combining",
    "Z\u0351\u0364\u0357a\u035b\u0311l\u036cg\u0346o\u0301 text",
    "a\u0308 vs \u00e4",
    # Vietnamese
    "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u",
    "Ph\u1edf b\u00f2 H\u00e0 N\u1ed9i",
    # Greek
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u039f\u0394\u039f\u03a3 final sigma",
    "\u03ba\u03cc\u03c3\u03bc\u03b5",
    # Cyrillic
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u044f\u0437\u044b\u043a",
    "\u041c\u041e\u0421\u041a\u0412\u0410",
    "\u0423\u043a\u0440\u0430\u0457\u043d\u0441\u044c\u043a\u0430 \u0491",
    # Arabic, Hebrew (RTL)
    "\u0627\u0644\u0644\u063a\u0629 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u0645\u064e\u0631\u0652\u062d\u064e\u0628\u064b\u0627 with harakat",
    "\u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd with niqqud",
    "\u200fright-to-left mark\u200e",
    # Indic, Thai
    "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u09ac\u09be\u0982\u09b2\u09be",
    "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    # CJK
    "\u4e2d\u6587",
    "\u4e00\u53ea\u72d7\u5728\u8349\u5730\u4e0a",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u30ab\u30bf\u30ab\u30ca \u3072\u3089\u304c\u306a",
    "\uff76\uff80\uff76\uff85 halfwidth katakana",
    "\ud55c\uad6d\uc5b4",
    "\uc548\ub155\ud558\uc138\uc694",
    # other scripts
    "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8",
    "\u0540\u0561\u0575\u0565\u0580\u0565\u0576",
    "\u12a0\u121b\u122d\u129b",
    "\u1780\u1798\u17d2\u1796\u17bb\u1787\u17b6",
    # emoji
    "\U0001f600",
    "dog \U0001f415 cat \U0001f408",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f469\U0001f3fd\u200d\U0001f4bb",
    "\U0001f1eb\U0001f1f7 \U0001f1ef\U0001f1f5 \U0001f1fa\U0001f1f8",
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "\u2764\ufe0f",
    "\u263a text style \u263a\ufe0f emoji style",
    "1\ufe0f\u20e3 keycap",
    "\U0001f44d\U0001f3fb\U0001f44d\U0001f3ff",
    "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\u2122 \u00a9 \u00ae",
    # mixed
    "a photo of a \U0001f415 in Z\u00fcrich \u2014 \u4e00\u53ea\u72d7",
    "The caf\u00e9's menu: cr\u00e8me br\u00fbl\u00e9e (\u20ac7.50) & \u7ea2\u8336!",
    "I'M GOING TO THE CAF\u00c9, DON'T WAIT!!!",
    "photo of a {}",
    "a photo of a {label}.",
    "itap of a traffic light.",
    "a bad photo of the pottedplant.",
    "a sculpture of a tvmonitor.",
    "a photo of the hard to see motorbike.",
]

TEXT_BATCH = [
    "a photo of a dog.",
    "",
    "A traffic light is a tall pole holding red, yellow and green lamps.",
    "Café crème, naïve façade — Zürich!",
    "don't it's we'll I'M 1234567 3.14",
    LONG_STRINGS[0],  # truncated to 77
    "a photo of a pottedplant, seen from above.",
    "一只狗在草地上 🐕",
]

# --------------------------------------------------------------------------------------------------
# Tokenizer fixtures
# --------------------------------------------------------------------------------------------------


def build_tokenizer_cases(merges, vocab, hf_tok: CLIPTokenizer):
    ref = ReferenceClipTokenizer(merges, vocab, "openai")
    ocl = ReferenceClipTokenizer(merges, vocab, "open_clip")
    labels, label_source = label_strings()
    groups = [("label", labels)]
    displays = []
    for n in labels:
        d = display_like(n)
        if d != n and d not in labels and d not in displays:
            displays.append(d)
    groups.append(("label-display-like", displays))
    groups.append(("description", DESCRIPTIONS))
    groups.append(("long", LONG_STRINGS))
    groups.append(("edge", EDGE_CASES))

    cases = []
    seen = set()
    hf_disagree = []
    ocl_disagree = []
    for category, strings in groups:
        for s in strings:
            if s in seen:
                continue
            seen.add(s)
            ids = ref.encode(s)
            toks = ref.tokens(s)
            hf_ids = hf_tok(s)["input_ids"]
            hf_trunc = hf_tok(s, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]
            ocl_ids = ocl.encode(s)
            case = {
                "text": s,
                "category": category,
                "ids": ids,
                "ids_truncated77": truncate77(ids),
                "tokens": toks,
                "hf_agrees": hf_ids == ids,
                "open_clip_agrees": ocl_ids == ids,
            }
            if hf_ids != ids:
                case["hf_ids"] = hf_ids
                hf_disagree.append({"text": s, "ids": ids, "hf_ids": hf_ids,
                                    "reference_cleaned": ref.clean(s),
                                    "hf_tokens": hf_tok.convert_ids_to_tokens(hf_ids),
                                    "reference_tokens": ["<|startoftext|>"] + toks + ["<|endoftext|>"]})
            # truncation must agree whenever the untruncated ids agree
            if hf_ids == ids:
                assert hf_trunc == truncate77(ids), s
            if ocl_ids != ids:
                case["open_clip_ids"] = ocl_ids
                ocl_disagree.append({"text": s, "ids": ids, "open_clip_ids": ocl_ids})
            cases.append(case)
    return cases, hf_disagree, ocl_disagree, label_source


def explain_disagreement(text: str) -> str:
    reasons = []
    if "&" in text and html.unescape(text) != text:
        reasons.append("HTML entities: OpenAI unescapes them (ftfy + html.unescape twice); transformers does not")
    fixed = ftfy.fix_text(text)
    if fixed != text and unicodedata.normalize("NFC", text) != fixed:
        reasons.append(f"ftfy.fix_text changes the text ({text!r} -> {fixed!r}); transformers only applies NFC")
    if regex.search(r"<\|(startoftext|endoftext)\|>", text, regex.IGNORECASE) and not regex.search(
        r"<\|(startoftext|endoftext)\|>", text
    ):
        reasons.append("upper-case special token: OpenAI lower-cases before matching it, transformers matches case-sensitively")
    if any(unicodedata.category(c) == "Lu" for c in text) and text.lower() != "".join(c.lower() for c in text):
        reasons.append("context-sensitive lower-casing: Python's str.lower() maps a word-final capital sigma to "
                       "final sigma (U+03C2); the tokenizers Lowercase normalizer maps every capital sigma to U+03C3")
    return "; ".join(reasons) or "unexplained"


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------

CONFIGS = {
    "tiny-quickgelu": dict(
        dtype="float32",
        seed=20240601,
        projection_dim=16,
        text=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  hidden_act="quick_gelu"),
        vision=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                    image_size=32, patch_size=8, hidden_act="quick_gelu"),
    ),
    "tiny-gelu-fp16": dict(
        dtype="float16",
        seed=20240602,
        projection_dim=16,
        text=dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48,
                  hidden_act="gelu"),
        vision=dict(hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=48,
                    image_size=32, patch_size=16, hidden_act="gelu"),
    ),
}

RESCALE_DOC = (
    "after transformers' seeded init, every weight is re-drawn from a torch.Generator seeded with the config seed: "
    "Linear/Conv2d weights ~ N(0, max(0.1, 1/sqrt(fan_in))), Linear biases ~ N(0, 0.05), "
    "token/position embeddings and class_embedding ~ N(0, 0.5), LayerNorm weight ~ 1 + N(0, 0.1), "
    "LayerNorm bias ~ N(0, 0.05); logit_scale keeps its init (2.6592)"
)


def rescale_weights(model: CLIPModel, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor, std: float, mean: float = 0.0):
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std + mean)

    with torch.no_grad():
        for name, module in model.named_modules():  # named_modules order is deterministic
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                fan_in = module.weight[0].numel()
                normal_(module.weight, max(0.1, 1.0 / math.sqrt(fan_in)))
                if module.bias is not None:
                    normal_(module.bias, 0.05)
            elif isinstance(module, torch.nn.Embedding):
                normal_(module.weight, 0.5)
            elif isinstance(module, torch.nn.LayerNorm):
                normal_(module.weight, 0.1, 1.0)
                normal_(module.bias, 0.05)
            if hasattr(module, "class_embedding") and isinstance(module.class_embedding, torch.nn.Parameter):
                normal_(module.class_embedding, 0.5)


def make_config(spec) -> CLIPConfig:
    text = dict(spec["text"], vocab_size=VOCAB_SIZE, max_position_embeddings=CONTEXT_LENGTH,
                projection_dim=spec["projection_dim"], bos_token_id=SOT_ID, eos_token_id=EOT_ID,
                pad_token_id=1, layer_norm_eps=1e-5)
    vision = dict(spec["vision"], num_channels=3, projection_dim=spec["projection_dim"], layer_norm_eps=1e-5)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=spec["projection_dim"])


def load_checkpoint(folder: Path) -> CLIPModel:
    model, info = CLIPModel.from_pretrained(folder, output_loading_info=True, attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"loading {folder} was not exact: {bad}"
    return model.float().eval()


def pooling_branch(model: CLIPModel) -> str:
    eos = model.text_model.eos_token_id
    if eos == 2:
        return "legacy: argmax(input_ids) (config eos_token_id == 2)"
    return f"first position where input_ids == eos_token_id ({eos})"


# A plain numpy forward pass that documents exactly what the fixtures contain; the script checks that it
# matches transformers, so the Swift side can use it as a specification.


def np_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_act(x, kind):
    if kind == "quick_gelu":
        return x / (1.0 + np.exp(-1.702 * x))
    if kind == "gelu":
        from math import erf
        return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))
    raise ValueError(kind)


def np_encoder(sd, prefix, cfg, x, mask):
    heads = cfg.num_attention_heads
    d = cfg.hidden_size // heads
    for i in range(cfg.num_hidden_layers):
        p = f"{prefix}.encoder.layers.{i}."
        lin = lambda t, n: t @ sd[p + n + ".weight"].T + sd[p + n + ".bias"]
        h = np_layer_norm(x, sd[p + "layer_norm1.weight"], sd[p + "layer_norm1.bias"], cfg.layer_norm_eps)
        B, T, _ = h.shape
        q = lin(h, "self_attn.q_proj").reshape(B, T, heads, d).transpose(0, 2, 1, 3) * d ** -0.5
        k = lin(h, "self_attn.k_proj").reshape(B, T, heads, d).transpose(0, 2, 1, 3)
        v = lin(h, "self_attn.v_proj").reshape(B, T, heads, d).transpose(0, 2, 1, 3)
        s = q @ k.transpose(0, 1, 3, 2)
        if mask is not None:
            s = np.where(mask[:, None, :, :], s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, heads * d)
        x = x + lin(a, "self_attn.out_proj")
        h = np_layer_norm(x, sd[p + "layer_norm2.weight"], sd[p + "layer_norm2.bias"], cfg.layer_norm_eps)
        x = x + lin(np_act(lin(h, "mlp.fc1"), cfg.hidden_act), "mlp.fc2")
    return x


def np_text_forward(sd, cfg, ids, attn):
    T = ids.shape[1]
    x = sd["text_model.embeddings.token_embedding.weight"][ids] + sd["text_model.embeddings.position_embedding.weight"][:T]
    causal = np.tril(np.ones((T, T), dtype=bool))[None]
    mask = causal & attn.astype(bool)[:, None, :]
    x = np_encoder(sd, "text_model", cfg, x, mask)
    x = np_layer_norm(x, sd["text_model.final_layer_norm.weight"], sd["text_model.final_layer_norm.bias"], cfg.layer_norm_eps)
    eot = (ids == EOT_ID).argmax(-1)
    pooled = x[np.arange(ids.shape[0]), eot]
    return x, pooled, pooled @ sd["text_projection.weight"].T


def np_vision_forward(sd, cfg, pixels):
    P = cfg.patch_size
    B, C, H, W = pixels.shape
    g = H // P
    patches = pixels.reshape(B, C, g, P, g, P).transpose(0, 2, 4, 1, 3, 5).reshape(B, g * g, C * P * P)
    w = sd["vision_model.embeddings.patch_embedding.weight"].reshape(cfg.hidden_size, -1)
    x = patches @ w.T
    cls = np.broadcast_to(sd["vision_model.embeddings.class_embedding"], (B, 1, cfg.hidden_size))
    x = np.concatenate([cls, x], 1) + sd["vision_model.embeddings.position_embedding.weight"][None]
    x = np_layer_norm(x, sd["vision_model.pre_layrnorm.weight"], sd["vision_model.pre_layrnorm.bias"], cfg.layer_norm_eps)
    x = np_encoder(sd, "vision_model", cfg, x, None)
    post = lambda t: np_layer_norm(t, sd["vision_model.post_layernorm.weight"], sd["vision_model.post_layernorm.bias"], cfg.layer_norm_eps)
    pooled = post(x[:, 0])
    proj = sd["visual_projection.weight"].T
    return x, pooled, pooled @ proj, post(x[:, 1:]) @ proj


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def tensor_stats(t: torch.Tensor) -> dict:
    t = t.double()
    return {"mean": round(float(t.mean()), 6), "std": round(float(t.std()), 6),
            "max_abs": round(float(t.abs().max()), 6)}


def make_checkpoint(name: str, spec, out: Path, merges, vocab) -> dict:
    folder = out / "checkpoints" / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    torch.manual_seed(spec["seed"])
    config = make_config(spec)
    model = CLIPModel(config).eval()
    rescale_weights(model, spec["seed"])
    if spec["dtype"] == "float16":
        model = model.half()
    model.save_pretrained(folder)
    write_vocab_files(folder, merges, vocab)
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["config.json", "merges.txt", "model.safetensors", "vocab.json"], files
    with safetensors.safe_open(folder / "model.safetensors", "pt") as f:
        dtypes = sorted({str(f.get_slice(k).get_dtype()) for k in f.keys()})
        keys = list(f.keys())
    return {"folder": str(folder.relative_to(out)), "dtype_on_disk": dtypes, "num_tensors": len(keys)}


def text_fixtures(name: str, out: Path, hf_tok_factory, ref: ReferenceClipTokenizer) -> dict:
    folder = out / "checkpoints" / name
    dest = out / "outputs" / name
    dest.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(folder)
    tok = hf_tok_factory(folder)
    batch = tok(TEXT_BATCH, padding=True, truncation=True, max_length=CONTEXT_LENGTH, return_tensors="pt")
    ids, attn = batch["input_ids"], batch["attention_mask"]
    for i, s in enumerate(TEXT_BATCH):
        n = int(attn[i].sum())
        assert ids[i, :n].tolist() == truncate77(ref.encode(s)), f"batch string {i} differs from the reference tokenizer"
    with torch.no_grad():
        out_t = model.text_model(input_ids=ids, attention_mask=attn)
        lhs, pooled = out_t.last_hidden_state, out_t.pooler_output
        embeds = model.text_projection(pooled)
        via_api = model.get_text_features(input_ids=ids, attention_mask=attn)
        via_api = via_api.pooler_output if hasattr(via_api, "pooler_output") else via_api
        assert torch.equal(via_api, embeds)
        # the same in float64, to show the size of pure rounding differences
        m64 = load_checkpoint(folder).double()
        o64 = m64.text_model(input_ids=ids, attention_mask=attn)
        e64 = m64.text_projection(o64.pooler_output)
        # without attention_mask (OpenAI CLIP style: causal mask only)
        nomask = model.text_model(input_ids=ids).last_hidden_state
    valid = attn.bool()
    assert torch.equal(nomask[valid], lhs[valid]) or max_abs(nomask[valid], lhs[valid]) < 1e-6
    sd = {k: v.double().numpy() for k, v in model.state_dict().items()}
    np_lhs, np_pooled, np_embeds = np_text_forward(sd, model.config.text_config, ids.numpy(), attn.numpy())
    checks = {
        "numpy_reference_vs_transformers_max_abs": {
            "last_hidden_state": max_abs(np_lhs, lhs), "pooler_output": max_abs(np_pooled, pooled),
            "text_embeds": max_abs(np_embeds, embeds)},
        "float64_vs_float32_max_abs": {
            "last_hidden_state": max_abs(o64.last_hidden_state, lhs),
            "pooler_output": max_abs(o64.pooler_output, pooled), "text_embeds": max_abs(e64, embeds)},
        "no_attention_mask_vs_mask_max_abs_on_valid_positions": max_abs(nomask[valid], lhs[valid]),
    }
    for k, v in checks["numpy_reference_vs_transformers_max_abs"].items():
        assert v < 1e-4, (name, k, v)
    eot_pos = (ids == EOT_ID).int().argmax(-1)
    legacy_pos = ids.to(torch.int).argmax(-1)  # the eos_token_id == 2 branch
    tensors = {
        "input_ids": ids.to(torch.int64).contiguous(),
        "attention_mask": attn.to(torch.int64).contiguous(),
        "eot_positions": eot_pos.to(torch.int64).contiguous(),
        "last_hidden_state": lhs.float().contiguous(),
        "pooler_output": pooled.float().contiguous(),
        "text_embeds": embeds.float().contiguous(),
        "text_embeds_normalized": torch.nn.functional.normalize(embeds.float(), dim=-1).contiguous(),
    }
    safetensors.torch.save_file(tensors, dest / "text_outputs.safetensors", metadata={"checkpoint": name})
    meta = {
        "checkpoint": f"checkpoints/{name}",
        "strings": TEXT_BATCH,
        "ids_unpadded": [ids[i, : int(attn[i].sum())].tolist() for i in range(len(TEXT_BATCH))],
        "untruncated_lengths": [len(ref.encode(s)) for s in TEXT_BATCH],
        "padding": "transformers CLIPTokenizer(padding=True, truncation=True, max_length=77): pad to the longest "
                   f"with pad id {tok.pad_token_id} ({tok.pad_token}) on the right; attention_mask 0 on padding",
        "pooling_branch": pooling_branch(model),
        "legacy_argmax_gives_same_positions": bool(torch.equal(eot_pos, legacy_pos)),
        "config_eos_token_id": model.config.text_config.eos_token_id,
        "attn_implementation": "eager",
        "computed_in": "float32 (the checkpoint's weights, loaded and cast with .float())",
        "checkpoint_dtype_on_disk": CONFIGS[name]["dtype"],
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in tensors.items()},
        "tensor_meaning": {
            "input_ids": "token ids fed to the model, [batch, seq]",
            "attention_mask": "1 = real token, 0 = padding",
            "eot_positions": "index of the first EOT (49407) in each row = pooled position",
            "last_hidden_state": "text_model output AFTER final_layer_norm, all positions (padding positions "
                                 "computed with padding keys masked; real positions do not depend on padding "
                                 "because the mask is causal)",
            "pooler_output": "last_hidden_state at eot_positions (pre-projection)",
            "text_embeds": "text_projection(pooler_output), NOT normalised (= CLIPModel.get_text_features)",
            "text_embeds_normalized": "text_embeds / L2 norm",
        },
        "checks": checks,
        "stats": {k: tensor_stats(v) for k, v in tensors.items() if v.dtype == torch.float32},
    }
    (dest / "text_outputs.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {"pooling_branch": meta["pooling_branch"], "checks": checks}


def vision_fixtures(name: str, out: Path) -> dict:
    folder = out / "checkpoints" / name
    dest = out / "outputs" / name
    dest.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(folder)
    vc = model.config.vision_config
    g = torch.Generator().manual_seed(CONFIGS[name]["seed"] + 1)
    pixels = torch.randn((2, 3, vc.image_size, vc.image_size), generator=g, dtype=torch.float32)
    with torch.no_grad():
        o = model.vision_model(pixel_values=pixels)
        lhs, pooled = o.last_hidden_state, o.pooler_output
        image_embeds = model.visual_projection(pooled)
        via_api = model.get_image_features(pixel_values=pixels)
        via_api = via_api.pooler_output if hasattr(via_api, "pooler_output") else via_api
        assert torch.equal(via_api, image_embeds)
        patches = model.visual_projection(model.vision_model.post_layernorm(lhs[:, 1:, :]))
        m64 = load_checkpoint(folder).double()
        o64 = m64.vision_model(pixel_values=pixels.double())
        e64 = m64.visual_projection(o64.pooler_output)
    sd = {k: v.double().numpy() for k, v in model.state_dict().items()}
    np_lhs, np_pooled, np_embeds, np_patches = np_vision_forward(sd, vc, pixels.double().numpy())
    checks = {
        "numpy_reference_vs_transformers_max_abs": {
            "vision_last_hidden_state": max_abs(np_lhs, lhs), "vision_pooler_output": max_abs(np_pooled, pooled),
            "image_embeds": max_abs(np_embeds, image_embeds), "patch_tokens_projected": max_abs(np_patches, patches)},
        "float64_vs_float32_max_abs": {
            "vision_last_hidden_state": max_abs(o64.last_hidden_state, lhs),
            "vision_pooler_output": max_abs(o64.pooler_output, pooled), "image_embeds": max_abs(e64, image_embeds)},
    }
    for k, v in checks["numpy_reference_vs_transformers_max_abs"].items():
        assert v < 1e-4, (name, k, v)
    tensors = {
        "pixel_values": pixels.contiguous(),
        "image_embeds": image_embeds.float().contiguous(),
        "vision_pooler_output": pooled.float().contiguous(),
        "vision_last_hidden_state": lhs.float().contiguous(),
        "patch_tokens_projected": patches.float().contiguous(),
    }
    safetensors.torch.save_file(tensors, dest / "vision_outputs.safetensors", metadata={"checkpoint": name})
    meta = {
        "checkpoint": f"checkpoints/{name}",
        "pixel_values": f"torch.randn(2, 3, {vc.image_size}, {vc.image_size}) from torch.Generator seed "
                        f"{CONFIGS[name]['seed'] + 1}; already 'normalised' pixels, no image processor involved",
        "computed_in": "float32 (the checkpoint's weights, loaded and cast with .float())",
        "checkpoint_dtype_on_disk": CONFIGS[name]["dtype"],
        "attn_implementation": "eager",
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in tensors.items()},
        "tensor_meaning": {
            "pixel_values": "input, [batch, 3, H, W]",
            "vision_last_hidden_state": "encoder output of vision_model, [batch, 1 + patches, hidden]; "
                                        "post_layernorm NOT applied (transformers' last_hidden_state); "
                                        "pre_layrnorm was applied to the embeddings before the encoder",
            "vision_pooler_output": "post_layernorm(vision_last_hidden_state[:, 0]) (CLS token)",
            "image_embeds": "visual_projection(vision_pooler_output), NOT normalised (= get_image_features)",
            "patch_tokens_projected": "visual_projection(post_layernorm(vision_last_hidden_state[:, 1:, :])), "
                                      "patches in row-major order of the patch grid",
        },
        "checks": checks,
        "stats": {k: tensor_stats(v) for k, v in tensors.items()},
    }
    (dest / "vision_outputs.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {"checks": checks}


# --------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bpe", help="path to bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # determinism and a light footprint
    torch.use_deterministic_algorithms(True)

    bpe = find_bpe(args.bpe)
    bpe_sha = sha256_file(bpe)
    assert bpe_sha == BPE_SHA256, f"unexpected {bpe}: sha256 {bpe_sha}"
    merges, vocab = load_bpe(bpe)

    # Tokenizer: build vocab files once, check transformers loads them both ways.
    vocab_dir = Path(tempfile.mkdtemp(prefix="clip_vocab_"))
    write_vocab_files(vocab_dir, merges, vocab)
    hf_tok = CLIPTokenizer(str(vocab_dir / "vocab.json"), str(vocab_dir / "merges.txt"))
    assert len(hf_tok) == VOCAB_SIZE, len(hf_tok)
    assert hf_tok.bos_token_id == SOT_ID and hf_tok.eos_token_id == EOT_ID and hf_tok.pad_token_id == EOT_ID
    cases, hf_disagree, ocl_disagree, label_source = build_tokenizer_cases(merges, vocab, hf_tok)
    assert len(cases) >= 300, len(cases)
    # a JSON list, one case per line (small, and diffs stay readable)
    (out / "tokenizer_cases.json").write_text(
        "[\n" + ",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases) + "\n]\n",
        encoding="utf-8",
    )
    for d in hf_disagree:
        d["why"] = explain_disagreement(d["text"])
    report = {
        "reference": "OpenAI CLIP SimpleTokenizer (clip.tokenize): ftfy.fix_text, html.unescape twice, strip, "
                     "regex \\s+ -> ' ', lower(), CLIP regex (regex module, IGNORECASE), byte-level BPE; "
                     "ids = [49406] + bpe + [49407]; ids_truncated77 = ids[:76] + [49407] when longer than 77",
        "ftfy_version": ftfy.__version__,
        "transformers_version": transformers.__version__,
        "transformers_tokenizer": f"{type(hf_tok).__module__}.{type(hf_tok).__name__} (tokenizers-backed); in "
                                  "transformers 5 there is no slow/ftfy path: the normalizer is NFC + \\s+ -> ' ' + "
                                  "lowercase, no ftfy and no HTML unescape",
        "label_source": label_source,
        "num_cases": len(cases),
        "num_hf_disagreements": len(hf_disagree),
        "num_open_clip_disagreements": len(ocl_disagree),
        "hf_disagreements": hf_disagree,
        "open_clip_disagreements": ocl_disagree,
    }
    (out / "tokenizer_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"tokenizer: {len(cases)} cases, transformers disagrees on {len(hf_disagree)}, "
          f"open_clip flavour on {len(ocl_disagree)}", flush=True)

    ref = ReferenceClipTokenizer(merges, vocab, "openai")

    def hf_tok_factory(folder: Path):
        t = CLIPTokenizer.from_pretrained(folder)
        assert len(t) == VOCAB_SIZE
        return t

    results = {}
    for name, spec in CONFIGS.items():
        print(f"checkpoint {name} ...", flush=True)
        info = make_checkpoint(name, spec, out, merges, vocab)
        info["text"] = text_fixtures(name, out, hf_tok_factory, ref)
        info["vision"] = vision_fixtures(name, out)
        results[name] = info

    # README and manifest
    readme = [
        "# CLIP parity fixtures",
        "",
        "Generated by `python3 scripts/make_clip_fixtures.py`; do not edit by hand. See the script's docstring and",
        "`manifest.json` (versions, seeds, sha256 and sizes).",
        "",
        "- `checkpoints/<name>/`: tiny random Hugging Face CLIP checkpoints with the real 49,408-token vocabulary",
        "- `outputs/<name>/text_outputs.{safetensors,json}`, `outputs/<name>/vision_outputs.{safetensors,json}`:",
        "  transformers outputs (float32) of those checkpoints; the JSON says what each tensor is",
        "- `tokenizer_cases.json`: OpenAI `clip.tokenize` reference ids; `tokenizer_report.json`: where transformers",
        "  and open_clip disagree with it; `tokenizer_report_transformers4.json` (written by",
        "  `scripts/check_clip_tokenizer_transformers4.py`): the same check against transformers 4's slow tokenizer",
        "  with and without ftfy, and its fast tokenizer. The cases include every name in `labels/*.txt`: re-run both",
        "  scripts when those change.",
        "",
        "Weights: " + RESCALE_DOC + ".",
        "",
    ]
    (out / "README.md").write_text("\n".join(readme), encoding="utf-8")
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            files[str(p.relative_to(out))] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    manifest = {
        "generator": "scripts/make_clip_fixtures.py",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                     "tokenizers": __import__("tokenizers").__version__, "ftfy": ftfy.__version__,
                     "regex": regex.__version__, "numpy": np.__version__},
        "bpe_source": f"open-clip-torch=={OPEN_CLIP_VERSION} wheel, {BPE_MEMBER} (MIT licence)",
        "bpe_sha256": bpe_sha,
        "configs": CONFIGS,
        "weights": RESCALE_DOC,
        "results": results,
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files.values()),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(vocab_dir, ignore_errors=True)
    print(f"wrote {len(files) + 1} files, {manifest['total_bytes'] / 1e6:.2f} MB, under {out}")


if __name__ == "__main__":
    main()
