#!/usr/bin/env python3
"""The peer of `sspa-knowledge build` in scripts/bench_build.sh: openai-python's AsyncOpenAI sending one chat
completion per label, `--jobs` at a time, as a user who scripts the LLM stage in Python would write it.

It sends the same kind of request as `build` (a system prompt, the question for the label, JSON output asked for)
to the same server, parses each answer's JSON and counts the descriptions, so both sides do the same work. The
script's own wall time and CPU time are measured from outside (interpreter start and imports included), as for the
Swift binary.

    python3 scripts/bench_openai_client.py --base-url http://127.0.0.1:PORT/s/ok/v1 --labels labels.txt --jobs 16
"""
import argparse
import asyncio
import json
import sys

from openai import AsyncOpenAI

SYSTEM = ("You are an expert in describing the visual appearance of things as they appear in natural images. "
          "Each description is one short sentence that names the label.")


def label_names(path):
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            raw, arrow, display = line.partition("|")[0].partition("=>")
            names.append((display if arrow else raw).strip())
    return names


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--model", default="bench")
    args = ap.parse_args()

    names = label_names(args.labels)
    # The SDK's own HTTP client and connection pool, as users get it; the semaphore keeps --jobs in flight.
    client = AsyncOpenAI(base_url=args.base_url, api_key="bench-not-a-key", max_retries=0, timeout=120)
    gate = asyncio.Semaphore(args.jobs)
    failures = 0
    descriptions = 0

    async def ask(name):
        nonlocal failures, descriptions
        async with gate:
            try:
                reply = await client.chat.completions.create(
                    model=args.model, temperature=0.7, seed=0, max_tokens=400,
                    messages=[{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f'Give 5 short descriptions of how "{name}" appears in natural images.\n'
                                                          'Answer only with a JSON object of the form {"descriptions": ["...", "..."]}.'}],
                    extra_headers={"X-SSPA-Label": name})
                content = reply.choices[0].message.content or ""
                try:
                    descriptions += len(json.loads(content).get("descriptions", []))
                except (ValueError, AttributeError):
                    pass
            except Exception as error:  # noqa: BLE001 - a benchmark counts failures, it does not retry
                failures += 1
                if failures <= 3:
                    print(f"{name}: {error}", file=sys.stderr)

    await asyncio.gather(*(ask(n) for n in names))
    await client.close()
    print(json.dumps({"requests": len(names), "failures": failures, "descriptions": descriptions}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
