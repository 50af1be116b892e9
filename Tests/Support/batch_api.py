#!/usr/bin/env python3
"""A double of OpenAI's Batch API, for the tests of ``sspa-knowledge build --provider openai-batch``.

It implements the calls a batch round trip makes, with OpenAI's request and response shapes:

    POST /v1/files                  multipart/form-data: purpose=batch, file=<JSONL>   -> a file object
    POST /v1/batches                {input_file_id, endpoint, completion_window}       -> a batch object
    GET  /v1/batches/{id}                                                              -> the batch object
    GET  /v1/files/{id}/content                                                        -> the file's bytes
    GET  /_stats                    what the double saw (uploads, 429s, polls, batches), for assertions

The input file is validated as OpenAI validates it (JSON per line, unique custom_id, method POST, url equal to
the batch's endpoint, a body with a model); a bad file makes the batch ``failed`` with ``errors.data`` naming the
lines. A valid batch goes ``validating`` -> ``in_progress`` -> ``finalizing`` -> ``completed``, each status lasting
``--polls-per-status`` polls (in_progress also lasts until every request has run). Requests run in a background
thread against ``--upstream`` (the fault server's canned answers, or the real llama.cpp server), one at a time;
2xx answers go to the output file, anything else to the error file, in OpenAI's line format (``id``,
``custom_id``, ``response`` {status_code, request_id, body}, ``error``).

Faults:
    --upload-429 N       the first N uploads answer 429 with ``Retry-After: 1``
    --expire N:K         the first N batches expire after K requests ran: the rest go to the error file with
                         code ``batch_expired`` and the batch ends ``expired``
    --fail-batches N     the first N batches fail validation whatever their input
    --key KEY            every call needs ``Authorization: Bearer KEY`` (401 otherwise)

It binds 127.0.0.1 only (port 0 picks a free one; 8765 is refused), prints ``PORT <n>`` once it listens, and
serves until SIGTERM or SIGINT. Python 3.11 standard library only.
"""
import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.RLock()
FILES: dict[str, dict] = {}
BATCHES: dict[str, dict] = {}
STATS = {"uploads": 0, "upload_429": 0, "polls": 0, "downloads": 0, "unauthorized": 0, "batches": []}
ARGS = argparse.Namespace()
COUNTER = {"file": 0, "batch": 0, "req": 0}


def next_id(kind: str) -> str:
    with LOCK:
        COUNTER[kind] += 1
        return f"{kind}-{COUNTER[kind]:04d}" if kind == "file" else f"{kind}_{COUNTER[kind]:04d}"


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[dict, bytes]]:
    """The parts of a multipart/form-data body by field name: (their headers, their content)."""
    boundary = None
    for piece in content_type.split(";"):
        piece = piece.strip()
        if piece.startswith("boundary="):
            boundary = piece[len("boundary="):].strip('"')
    if not boundary:
        raise ValueError("no multipart boundary")
    parts = {}
    delimiter = b"--" + boundary.encode()
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, content = chunk.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = None
        for piece in disposition.split(";"):
            piece = piece.strip()
            if piece.startswith("name="):
                name = piece[5:].strip('"')
            if piece.startswith("filename="):
                headers["filename"] = piece[9:].strip('"')
        if name:
            parts[name] = (headers, content)
    return parts


def validate_input(data: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
    """The requests of an input file, and OpenAI-style errors (code, message, line) for the lines that are wrong."""
    requests, errors, seen = [], [], set()
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            errors.append({"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.", "line": number})
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append({"code": "missing_custom_id", "message": "custom_id is required.", "line": number})
        elif custom_id in seen:
            errors.append({"code": "duplicate_custom_id", "message": f"The custom_id {custom_id} is not unique.", "line": number})
        seen.add(custom_id)
        if line.get("method") != "POST":
            errors.append({"code": "invalid_method", "message": "method must be POST.", "line": number})
        if line.get("url") != endpoint:
            errors.append({"code": "mismatched_endpoint", "message": f"url must be {endpoint}.", "line": number})
        body = line.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            errors.append({"code": "missing_model", "message": "body.model is required.", "line": number})
        requests.append(line)
    if not requests and not errors:
        errors.append({"code": "empty_file", "message": "The input file has no requests.", "line": None})
    return requests, errors


def run_requests(batch: dict) -> None:
    """The batch's workers: each request against the upstream, until done or the batch expires."""
    expire_after = batch.get("expire_after")
    output, failures = [], []
    for index, request in enumerate(batch["requests"]):
        record = {"id": next_id("req").replace("req_", "batch_req_"), "custom_id": request["custom_id"], "response": None, "error": None}
        if expire_after is not None and index >= expire_after:
            record["error"] = {"code": "batch_expired",
                               "message": "This request could not be executed before the completion window expired."}
            failures.append(record)
            continue
        url = ARGS.upstream.rstrip("/") + request["url"]
        http = urllib.request.Request(url, data=json.dumps(request["body"]).encode(), method="POST",
                                      headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(http, timeout=300) as reply:
                record["response"] = {"status_code": reply.status, "request_id": f"req_{index:05d}", "body": json.loads(reply.read())}
            output.append(record)
            with LOCK:
                batch["object"]["request_counts"]["completed"] += 1
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {"error": {"message": body.decode(errors="replace")}}
            record["response"] = {"status_code": error.code, "request_id": f"req_{index:05d}", "body": parsed}
            failures.append(record)
            with LOCK:
                batch["object"]["request_counts"]["failed"] += 1
        except (urllib.error.URLError, OSError, ValueError) as error:
            record["error"] = {"code": "server_error", "message": str(error)}
            failures.append(record)
            with LOCK:
                batch["object"]["request_counts"]["failed"] += 1
    with LOCK:
        obj = batch["object"]
        if output:
            obj["output_file_id"] = store_file("\n".join(json.dumps(r) for r in output).encode() + b"\n", "batch_output", f"{obj['id']}_output.jsonl")
        if failures:
            obj["error_file_id"] = store_file("\n".join(json.dumps(r) for r in failures).encode() + b"\n", "batch_output", f"{obj['id']}_error.jsonl")
        batch["done"] = True


def store_file(data: bytes, purpose: str, filename: str) -> str:
    with LOCK:
        file_id = f"file-{len(FILES) + 1:04d}"
        FILES[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                          "filename": filename, "purpose": purpose, "data": data}
    return file_id


def advance(batch: dict) -> None:
    """One poll's worth of progress through the statuses."""
    obj = batch["object"]
    batch["polls"] += 1
    status = obj["status"]
    if status in ("completed", "failed", "expired", "cancelled"):
        return
    if batch["polls"] < ARGS.polls_per_status * batch["stage"]:
        return
    now = int(time.time())
    if status == "validating":
        if batch["fail"]:
            obj["status"], obj["failed_at"] = "failed", now
            obj["errors"] = {"object": "list", "data": batch["fail"]}
            return
        obj["status"], obj["in_progress_at"] = "in_progress", now
        threading.Thread(target=run_requests, args=(batch,), daemon=True).start()
    elif status == "in_progress":
        if not batch.get("done"):
            return
        if batch.get("expire_after") is not None:
            obj["status"], obj["expired_at"] = "expired", now
            return
        obj["status"], obj["finalizing_at"] = "finalizing", now
    elif status == "finalizing":
        obj["status"], obj["completed_at"] = "completed", now
    batch["stage"] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def reply(self, status: int, body, headers: dict | None = None, raw: bool = False) -> None:
        data = body if raw else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        self.reply(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}}, headers)

    def authorized(self) -> bool:
        if not ARGS.key or self.headers.get("Authorization") == f"Bearer {ARGS.key}":
            return True
        with LOCK:
            STATS["unauthorized"] += 1
        self.error(401, "Incorrect API key provided: sk-****redacted.", "invalid_api_key")
        return False

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/_stats":
            with LOCK:
                STATS["batches"] = [dict(b["object"], polls=b["polls"]) for b in BATCHES.values()]
                return self.reply(200, STATS)
        if not self.authorized():
            return
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["v1", "batches"]:
            with LOCK:
                batch = BATCHES.get(parts[2])
                STATS["polls"] += 1
                if batch:
                    advance(batch)
                    obj = json.loads(json.dumps(batch["object"]))
            return self.reply(200, obj) if batch else self.error(404, f"No batch found with id '{parts[2]}'.")
        if len(parts) == 4 and parts[:2] == ["v1", "files"] and parts[3] == "content":
            with LOCK:
                entry = FILES.get(parts[2])
                STATS["downloads"] += 1
            return self.reply(200, entry["data"], raw=True) if entry else self.error(404, f"No such File object: {parts[2]}")
        if self.path == "/v1/models":
            return self.reply(200, {"object": "list", "data": [{"id": "batch-model", "object": "model"}]})
        self.error(404, f"Unknown path {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        body = self.body()
        if not self.authorized():
            return
        if self.path == "/v1/files":
            with LOCK:
                STATS["uploads"] += 1
                throttled = STATS["uploads"] <= ARGS.upload_429
                if throttled:
                    STATS["upload_429"] += 1
            if throttled:
                return self.error(429, "Rate limit reached for requests.", "rate_limit_exceeded", {"Retry-After": "1"})
            try:
                parts = parse_multipart(self.headers.get("Content-Type", ""), body)
            except ValueError as error:
                return self.error(400, str(error))
            if "file" not in parts or parts.get("purpose", ({}, b""))[1] != b"batch":
                return self.error(400, "A multipart body with purpose=batch and a file is required.")
            headers, data = parts["file"]
            file_id = store_file(data, "batch", headers.get("filename", "input.jsonl"))
            entry = {k: v for k, v in FILES[file_id].items() if k != "data"}
            return self.reply(200, entry)
        if self.path == "/v1/batches":
            try:
                request = json.loads(body)
            except ValueError:
                return self.error(400, "The body is not JSON.")
            entry = FILES.get(request.get("input_file_id", ""))
            if entry is None:
                return self.error(400, f"No such File object: {request.get('input_file_id')}")
            if request.get("endpoint") != "/v1/chat/completions" or request.get("completion_window") != "24h":
                return self.error(400, "endpoint must be /v1/chat/completions and completion_window 24h.")
            requests, errors = validate_input(entry["data"], request["endpoint"])
            batch_id = next_id("batch")
            with LOCK:
                number = len(BATCHES) + 1
                if number <= ARGS.fail_batches:
                    errors = errors or [{"code": "invalid_request", "message": "The batch was refused (--fail-batches).", "line": 1}]
                expire_after = ARGS.expire[1] if ARGS.expire and number <= ARGS.expire[0] else None
                obj = {"id": batch_id, "object": "batch", "endpoint": request["endpoint"], "errors": None,
                       "input_file_id": entry["id"], "completion_window": "24h", "status": "validating",
                       "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
                       "request_counts": {"total": len(requests), "completed": 0, "failed": 0},
                       "metadata": request.get("metadata")}
                BATCHES[batch_id] = {"object": obj, "requests": requests, "polls": 0, "stage": 1, "fail": errors,
                                     "expire_after": expire_after}
            return self.reply(200, obj)
        self.error(404, f"Unknown path {self.path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--upstream", required=True, help="where request bodies are POSTed (base URL)")
    ap.add_argument("--polls-per-status", type=int, default=1)
    ap.add_argument("--upload-429", type=int, default=0)
    ap.add_argument("--expire", type=lambda v: tuple(int(x) for x in v.split(":")), default=None, help="N:K")
    ap.add_argument("--fail-batches", type=int, default=0)
    ap.add_argument("--key", default=None)
    global ARGS
    ARGS = ap.parse_args()
    if ARGS.port == 8765:
        print("port 8765 is reserved", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)

    def stop(signum, frame):  # noqa: ARG001
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
