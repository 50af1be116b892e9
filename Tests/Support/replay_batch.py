#!/usr/bin/env python3
"""Plays the role of vLLM's ``run-batch`` (and of OpenAI's Batch API's workers) for tests: reads an OpenAI Batch
API input file, POSTs each line's body to ``BASE_URL + url`` one after another, and writes the output format both
engines write: one line per request with ``id``, ``custom_id``, ``response`` (``status_code``, ``request_id``,
``body``) and ``error`` (null, or ``code`` and ``message`` when the request could not be made).

    python3 Tests/Support/replay_batch.py -i requests.jsonl -o results.jsonl --base-url http://127.0.0.1:PORT
"""
import argparse
import json
import sys
import urllib.error
import urllib.request


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-i", "--input", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    out_lines = []
    with open(args.input, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            request = json.loads(line)
            url = args.base_url.rstrip("/") + request["url"]
            data = json.dumps(request["body"]).encode()
            http = urllib.request.Request(url, data=data, method=request.get("method", "POST"),
                                          headers={"Content-Type": "application/json"})
            record = {"id": f"batch_req_{number:06d}", "custom_id": request["custom_id"], "response": None, "error": None}
            try:
                with urllib.request.urlopen(http, timeout=args.timeout) as reply:
                    record["response"] = {"status_code": reply.status, "request_id": f"replay-{number}",
                                          "body": json.loads(reply.read())}
            except urllib.error.HTTPError as error:
                body = error.read()
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = {"error": {"message": body.decode(errors="replace")}}
                record["response"] = {"status_code": error.code, "request_id": f"replay-{number}", "body": parsed}
            except (urllib.error.URLError, OSError) as error:
                record["error"] = {"code": "connection_error", "message": str(error)}
            out_lines.append(json.dumps(record))
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(out_lines) + ("\n" if out_lines else ""))
    print(f"{len(out_lines)} requests replayed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
