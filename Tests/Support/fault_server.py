#!/usr/bin/env python3
"""Fault-injecting HTTP server for the tests of `sspa-knowledge build`.

It stands between the Swift client and a real LLM server (llama-cpp-python's
OpenAI-compatible server) and, depending on the URL, passes a request through
or answers with a fault. Python 3.11 standard library only.

Usage
-----

    python3 fault_server.py [--host 127.0.0.1] [--port 0]
                            [--upstream http://127.0.0.1:PORT]
                            [--latency-ms 0] [--hang-seconds 30]
                            [--canned] [--verbose]

It binds 127.0.0.1 only (any other host is refused) on the given port; port 0
picks a free one and port 8765 is always refused. Once it listens it prints
exactly one line, ``PORT <n>``, to stdout, flushes, and serves until SIGTERM
or SIGINT, on which it exits with status 0. It logs to stderr only with
``--verbose``.

Scenarios
---------

The client's base URL is ``http://127.0.0.1:PORT/s/<scenario>``, so requests
arrive at ``/s/<scenario>/v1/chat/completions`` (OpenAI),
``/s/<scenario>/api/chat`` (Ollama) or ``/s/<scenario>/v1/models``. Paths
without the ``/s/<scenario>`` prefix are scenario ``ok``.

A scenario name may carry a tag after ``~`` (``/s/429-2~mytest/...``): the tag
does not change the behaviour but gets its own request counter, so tests that
run in parallel do not share counters.

Each scenario counts its chat requests (``/v1/chat/completions`` and
``/api/chat``; model listings are not counted). "First N" means the first N
requests counted for that scenario name since start or the last ``/_reset``.

    ok          success (see below)
    429-N       first N answer 429, ``Retry-After: 1`` and an OpenAI-style
                error body; then success
    429date-N   the same with ``Retry-After`` as an HTTP-date 1-2 s ahead
    500-N       first N answer 500 ``{"error":{"message":"internal error"}}``;
                then success
    503-N       the same with 503
    hang        never answers: sleeps --hang-seconds (30), then closes the
                connection; other requests are served meanwhile
    hang-N      first N hang like ``hang``; then success
    truncated   headers with a Content-Length larger than the body, half of a
                valid JSON completion, then the connection is closed
    html        200, ``Content-Type: text/html``, an HTML page
    garbage     200, ``Content-Type: application/json``, a body that is not JSON
    401         401 invalid_api_key; the message holds a fixed redacted key,
                never the Authorization header that was sent
    quota       429 insufficient_quota, no Retry-After
    noschema    400 ``response_format is not supported`` if the OpenAI request
                has ``response_format`` (an Ollama request: ``format``);
                otherwise success
    refuse      success envelope, content "I'm sorry, but as an AI I can't
                help with that."
    offtopic    success envelope, content ``{"descriptions": [...]}`` with two
                sentences that have nothing to do with the label
    empty       success envelope, content ""

An unknown scenario answers 404. On ``/api/chat`` error bodies take Ollama's
shape, ``{"error": "<message>"}``, with the same message and status; success
envelopes take Ollama's non-streaming /api/chat shape.

Success
-------

* With ``--upstream``: the request is forwarded to the upstream server
  (Authorization forwarded unchanged) and its status and body are returned as
  they are. An Ollama ``/api/chat`` request is translated to an OpenAI
  ``/v1/chat/completions`` request (model, messages, options.temperature,
  options.seed, options.num_predict -> max_tokens, options.top_p/top_k/stop,
  ``format`` schema -> ``response_format: {"type": "json_object", "schema":
  ...}``, ``format: "json"`` -> ``{"type": "json_object"}``), and the answer is
  translated back to Ollama's response (model, created_at, message, done,
  done_reason, total_duration, load_duration, prompt_eval_count,
  prompt_eval_duration, eval_count, eval_duration).
* With ``--canned`` and no upstream (for the throughput benchmark only, never
  for tests of knowledge content): a well-formed completion whose content is
  ``{"descriptions": [5 sentences]}``, each naming the label, with ``usage``,
  ``finish_reason: "stop"`` and ``n`` choices. The label comes from the
  ``X-SSPA-Label`` request header (percent-encoded UTF-8), else from the last
  user message's text.
* Otherwise: 502 ``{"error":{"message":"fault server has no upstream"}}``.

``/v1/models`` (any scenario) forwards to the upstream, or else lists one
model. ``/api/tags`` does the same in Ollama's shape.

``--latency-ms N`` sleeps N ms before every answer except control endpoints.

Control endpoints
-----------------

    GET  /_stats    {"counts": {scenario: n}, "peak_in_flight": {scenario: n},
                    "requests": [last 200 entries:
                    {"scenario", "path", "method", "headers", "body", "status"}]}
                    ``peak_in_flight`` is the most requests of a scenario being
                    answered at once (latency included).
                    ``?scenario=NAME`` keeps only that scenario's entries.
                    ``body`` is the parsed JSON, or else the text.
    POST /_reset    clears the counters and the log.

Example::

    python3 Tests/Support/fault_server.py --canned > /tmp/fs.out &
    FS_PID=$!
    until grep -q '^PORT ' /tmp/fs.out; do sleep 0.1; done
    PORT=$(awk '/^PORT /{print $2}' /tmp/fs.out)
    curl -s http://127.0.0.1:$PORT/s/429-1/v1/chat/completions \\
         -H 'Content-Type: application/json' -d '{"model":"m","messages":[]}'
    curl -s http://127.0.0.1:$PORT/_stats
    kill $FS_PID
"""

from __future__ import annotations

import argparse
import collections
import datetime
import email.utils
import functools
import itertools
import os
import json
import math
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FORBIDDEN_PORT = 8765
ALLOWED_HOSTS = ("127.0.0.1",)
MAX_BODY = 32 * 1024 * 1024
LOG_SIZE = 200
UPSTREAM_TIMEOUT = 600.0

REFUSAL = "I'm sorry, but as an AI I can't help with that."
OFFTOPIC = json.dumps({"descriptions": ["The weather is nice today.", "Bananas are yellow."]})
REDACTED_KEY_MESSAGE = "Incorrect API key provided: sk-...****. You can find your API key in your account settings."
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><h1>Bad Gateway</h1><p>The proxy received an invalid response from an upstream server.</p>"
    "</body></html>\n"
)
GARBAGE = "this is not JSON {\"descriptions\": [\"unterminated"

CANNED_TEMPLATES = [
    "A photo of a {l}, which has a distinctive shape and outline.",
    "A {l} is often seen with characteristic colours and textures.",
    "The {l} usually appears in a typical setting where it is easy to recognise.",
    "Close up, a {l} shows fine details on its surface.",
    "From a distance, a {l} can be told apart by its overall silhouette.",
    "In a crowded scene, the {l} stands out by its size and form.",
    "A {l} photographed in daylight shows its natural appearance.",
]

SCENARIO_RE = re.compile(
    r"^(?:(?P<ok>ok)|(?P<fault>429|429date|500|503|hang)-(?P<n>\d+)|(?P<plain>hang|truncated|html|garbage|401|quota"
    r"|noschema|refuse|offtopic|empty))$"
)


# --------------------------------------------------------------------------- state


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.log: collections.deque = collections.deque(maxlen=LOG_SIZE)
        self.in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def count(self, scenario: str) -> int:
        """Counts one request for `scenario` and returns its 1-based index."""
        with self.lock:
            n = self.counts.get(scenario, 0) + 1
            self.counts[scenario] = n
            return n

    def enter(self, scenario: str) -> None:
        """A request of `scenario` is being answered (until `leave`); its peak is kept."""
        with self.lock:
            n = self.in_flight.get(scenario, 0) + 1
            self.in_flight[scenario] = n
            self.peak[scenario] = max(self.peak.get(scenario, 0), n)

    def leave(self, scenario: str) -> None:
        with self.lock:
            self.in_flight[scenario] = self.in_flight.get(scenario, 1) - 1

    def record(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)

    def snapshot(self, scenario: str | None) -> dict:
        with self.lock:
            entries = [dict(e) for e in self.log if scenario is None or e["scenario"] == scenario]
            return {"counts": dict(self.counts), "peak_in_flight": dict(self.peak), "requests": entries}

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.log.clear()
            self.in_flight.clear()
            self.peak.clear()


class Config:
    upstream: str | None = None
    canned: bool = False
    latency: float = 0.0
    hang_seconds: float = 30.0
    verbose: bool = False


STATE = State()
CONFIG = Config()


def log(msg: str) -> None:
    if CONFIG.verbose:
        sys.stderr.write(f"[fault_server] {msg}\n")
        sys.stderr.flush()


# --------------------------------------------------------------------------- helpers


class Reply:
    """An answer: status, headers, body bytes."""

    def __init__(self, status: int, body: bytes | str | dict | list, content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.status = status
        self.body = body
        self.headers = {"Content-Type": content_type}
        if headers:
            self.headers.update(headers)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_reply(status: int, message: str, ollama: bool, err_type: str | None = None, code: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    if ollama:
        return Reply(status, {"error": message}, headers=headers)
    err: dict = {"message": message}
    if err_type is not None:
        err["type"] = err_type
    if code is not None:
        err["code"] = code
    return Reply(status, {"error": err}, headers=headers)


TOKEN_RE = re.compile(r"\w+|[^\w\s]")


# Cached: the system message and the demonstrations come back in every request of a build.
@functools.lru_cache(maxsize=4096)
def rough_tokens(text: str) -> int:
    return max(1, len(TOKEN_RE.findall(text)))


# Completion ids: a random prefix per process and a counter, as unique as uuid4 ids without a getrandom call each.
ID_PREFIX = os.urandom(8).hex()
ID_COUNTER = itertools.count(1)


def completion_id() -> str:
    return f"chatcmpl-{ID_PREFIX}{next(ID_COUNTER):016x}"


def message_text(message) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def last_user_text(req) -> str:
    if isinstance(req, dict) and isinstance(req.get("messages"), list):
        for m in reversed(req["messages"]):
            if isinstance(m, dict) and m.get("role") == "user":
                return message_text(m)
    return ""


def prompt_tokens(req) -> int:
    if isinstance(req, dict) and isinstance(req.get("messages"), list):
        return sum(rough_tokens(message_text(m)) for m in req["messages"]) or 1
    return 1


def openai_completion(req, contents: list[str], finish_reason: str = "stop") -> dict:
    model = req.get("model") if isinstance(req, dict) and isinstance(req.get("model"), str) else "fault-server"
    completion_tokens = sum(rough_tokens(c) if c else 0 for c in contents)
    p = prompt_tokens(req)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fault_server",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": c}, "logprobs": None,
             "finish_reason": finish_reason}
            for i, c in enumerate(contents)
        ],
        "usage": {"prompt_tokens": p, "completion_tokens": completion_tokens, "total_tokens": p + completion_tokens},
    }


def ollama_response(model: str, content: str, done_reason: str, prompt_count: int, eval_count: int,
                    total_ns: int) -> dict:
    prompt_ns = total_ns // 5
    return {
        "model": model,
        "created_at": now_rfc3339(),
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": done_reason,
        "total_duration": total_ns,
        "load_duration": 0,
        "prompt_eval_count": prompt_count,
        "prompt_eval_duration": prompt_ns,
        "eval_count": eval_count,
        "eval_duration": total_ns - prompt_ns,
    }


def ollama_envelope(req, content: str, started: float) -> dict:
    model = req.get("model") if isinstance(req, dict) and isinstance(req.get("model"), str) else "fault-server"
    total_ns = max(1, int((time.monotonic() - started) * 1e9))
    return ollama_response(model, content, "stop", prompt_tokens(req), rough_tokens(content) if content else 0,
                           total_ns)


def wants_n(req) -> int:
    n = req.get("n", 1) if isinstance(req, dict) else 1
    if isinstance(n, bool) or not isinstance(n, int):
        return 1
    return min(max(n, 1), 128)


def request_label(headers, req) -> str:
    """The X-SSPA-Label header (percent-encoded UTF-8), else the first quoted name in the last user message (the
    templates ask about "{{display_name}}"), else that message's text. `headers` is anything with a case-insensitive
    get() (the handler's headers, or a Headers)."""
    label = headers.get("X-SSPA-Label")
    if label is not None:
        return urllib.parse.unquote(label, encoding="utf-8", errors="replace")
    text = last_user_text(req)
    quoted = re.search(r'"([^"]{1,200})"', text)
    return quoted.group(1) if quoted else text


def canned_descriptions(label: str, index: int) -> str:
    label = " ".join(label.split())[:200] or "object"
    sentences = [CANNED_TEMPLATES[(index + k) % len(CANNED_TEMPLATES)].format(l=label) for k in range(5)]
    return json.dumps({"descriptions": sentences}, ensure_ascii=False)


def streaming_openai(completion: dict) -> Reply:
    """The same completion as an SSE stream (for a client that asked stream: true)."""
    lines = []
    for ch in completion["choices"]:
        base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                "model": completion["model"], "system_fingerprint": completion.get("system_fingerprint")}
        lines.append({**base, "choices": [{"index": ch["index"], "delta": {"role": "assistant",
                                                                             "content": ch["message"]["content"]},
                                           "finish_reason": None}]})
        lines.append({**base, "choices": [{"index": ch["index"], "delta": {},
                                           "finish_reason": ch["finish_reason"]}]})
    body = "".join(f"data: {json.dumps(x, ensure_ascii=False)}\n\n" for x in lines) + "data: [DONE]\n\n"
    return Reply(200, body, content_type="text/event-stream")


def streaming_ollama(resp: dict) -> Reply:
    first = {"model": resp["model"], "created_at": resp["created_at"], "message": resp["message"], "done": False}
    last = dict(resp)
    last["message"] = {"role": "assistant", "content": ""}
    body = json.dumps(first, ensure_ascii=False) + "\n" + json.dumps(last, ensure_ascii=False) + "\n"
    return Reply(200, body, content_type="application/x-ndjson")


def envelope(req, ollama: bool, contents_for_choice, started: float) -> Reply:
    """A success answer in the endpoint's shape; contents_for_choice(i) gives choice i's content."""
    if ollama:
        resp = ollama_envelope(req, contents_for_choice(0), started)
        if isinstance(req, dict) and req.get("stream", True) is not False:
            return streaming_ollama(resp)
        return Reply(200, resp)
    completion = openai_completion(req, [contents_for_choice(i) for i in range(wants_n(req))])
    if isinstance(req, dict) and req.get("stream") is True:
        return streaming_openai(completion)
    return Reply(200, completion)


# --------------------------------------------------------------------------- upstream


def upstream_base() -> str:
    base = CONFIG.upstream.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base


def upstream_call(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes, str]:
    """Calls the upstream; returns (status, body, content type). Network failure -> 502."""
    req = urllib.request.Request(upstream_base() + path, data=body, method=method)
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=UPSTREAM_TIMEOUT) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "application/json")
    except urllib.error.HTTPError as e:
        try:
            data = e.read()
        except Exception:  # noqa: BLE001
            data = b""
        return e.code, data, (e.headers.get("Content-Type") if e.headers else None) or "application/json"
    except Exception as e:  # noqa: BLE001  (connection refused, timeout, bad status line, ...)
        msg = json.dumps({"error": {"message": f"fault server: upstream unreachable: {type(e).__name__}"}})
        return 502, msg.encode(), "application/json"


def forward_headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    out = {"Content-Type": "application/json", "Accept": "application/json"}
    auth = handler.headers.get("Authorization")
    if auth is not None:
        out["Authorization"] = auth
    return out


def ollama_to_openai(req: dict) -> dict:
    out: dict = {"model": req.get("model", ""), "stream": False}
    messages = []
    for m in req.get("messages") or []:
        if isinstance(m, dict):
            messages.append({"role": m.get("role", "user"), "content": message_text(m)})
    out["messages"] = messages
    options = req.get("options") if isinstance(req.get("options"), dict) else {}
    if "temperature" in options:
        out["temperature"] = options["temperature"]
    if "seed" in options:
        out["seed"] = options["seed"]
    if "num_predict" in options and isinstance(options["num_predict"], int) and options["num_predict"] > 0:
        out["max_tokens"] = options["num_predict"]
    for key in ("top_p", "top_k", "stop", "presence_penalty", "frequency_penalty"):
        if key in options:
            out[key] = options[key]
    fmt = req.get("format")
    if isinstance(fmt, dict):
        out["response_format"] = {"type": "json_object", "schema": fmt}
    elif fmt == "json":
        out["response_format"] = {"type": "json_object"}
    return out


def openai_error_message(data: bytes) -> str:
    try:
        obj = json.loads(data)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
        if isinstance(obj, dict) and isinstance(obj.get("detail"), str):
            return obj["detail"]
    except Exception:  # noqa: BLE001
        pass
    text = data.decode("utf-8", "replace").strip()
    return text[:500] or "upstream error"


def success(handler: "Handler", req, raw: bytes, ollama: bool, started: float) -> Reply:
    if CONFIG.upstream:
        if not ollama:
            status, data, ctype = upstream_call("POST", "/v1/chat/completions", raw, forward_headers(handler))
            return Reply(status, data, content_type=ctype)
        if not isinstance(req, dict):
            return error_reply(400, "invalid JSON request body", ollama=True)
        body = json.dumps(ollama_to_openai(req)).encode()
        status, data, _ = upstream_call("POST", "/v1/chat/completions", body, forward_headers(handler))
        if status != 200:
            return error_reply(status, openai_error_message(data), ollama=True)
        try:
            comp = json.loads(data)
            choice = comp["choices"][0]
            content = choice["message"].get("content") or ""
            finish = choice.get("finish_reason")
            usage = comp.get("usage") or {}
        except Exception:  # noqa: BLE001
            return error_reply(502, "fault server: upstream answer is not a chat completion", ollama=True)
        total_ns = max(1, int((time.monotonic() - started) * 1e9))
        resp = ollama_response(
            req.get("model") if isinstance(req.get("model"), str) else comp.get("model", ""),
            content,
            "length" if finish == "length" else "stop",
            int(usage.get("prompt_tokens") or prompt_tokens(req)),
            int(usage.get("completion_tokens") or (rough_tokens(content) if content else 0)),
            total_ns,
        )
        if req.get("stream", True) is not False:
            return streaming_ollama(resp)
        return Reply(200, resp)
    if CONFIG.canned:
        if not isinstance(req, dict):
            return error_reply(400, "invalid JSON request body", ollama)
        label = request_label(handler.headers, req)
        return envelope(req, ollama, lambda i: canned_descriptions(label, i), started)
    return error_reply(502, "fault server has no upstream", ollama)


# --------------------------------------------------------------------------- scenarios


def parse_path(path: str) -> tuple[str, str]:
    """'/s/<scenario>/rest' -> (scenario, '/rest'); other paths -> ('ok', path)."""
    if path.startswith("/s/"):
        rest = path[3:]
        name, sep, tail = rest.partition("/")
        return urllib.parse.unquote(name), "/" + tail if sep else "/"
    return "ok", path


def run_scenario(handler: "Handler", scenario: str, req, raw: bytes, ollama: bool, started: float) -> Reply | None:
    """Returns the reply, or None when the handler already dealt with the connection (hang, truncated)."""
    kind = scenario.split("~", 1)[0]
    m = SCENARIO_RE.match(kind)
    if m is None:
        return error_reply(404, f"fault server: unknown scenario {kind!r}", ollama)
    index = STATE.count(scenario)
    if m.group("ok"):
        return success(handler, req, raw, ollama, started)
    if m.group("fault"):
        fault, n = m.group("fault"), int(m.group("n"))
        if index > n:
            return success(handler, req, raw, ollama, started)
        if fault == "429":
            return error_reply(429, "Rate limit reached for requests. Please try again in 1s.", ollama,
                               "requests", "rate_limit_exceeded", headers={"Retry-After": "1"})
        if fault == "429date":
            when = math.ceil(time.time()) + 1
            return error_reply(429, "Rate limit reached for requests. Please try again later.", ollama,
                               "requests", "rate_limit_exceeded",
                               headers={"Retry-After": email.utils.formatdate(when, usegmt=True)})
        if fault in ("500", "503"):
            return error_reply(int(fault), "internal error", ollama)
        if fault == "hang":
            handler.hang()
            return None
    p = m.group("plain")
    if p == "hang":
        handler.hang()
        return None
    if p == "truncated":
        content = canned_descriptions(request_label(handler.headers, req), 0)
        if ollama:
            full = json.dumps(ollama_envelope(req, content, started), ensure_ascii=False)
        else:
            full = json.dumps(openai_completion(req, [content]), ensure_ascii=False)
        handler.truncated(full.encode())
        return None
    if p == "html":
        return Reply(200, HTML_PAGE, content_type="text/html; charset=utf-8")
    if p == "garbage":
        return Reply(200, GARBAGE, content_type="application/json")
    if p == "401":
        return error_reply(401, REDACTED_KEY_MESSAGE, ollama, "invalid_request_error", "invalid_api_key")
    if p == "quota":
        return error_reply(429, "You exceeded your current quota", ollama, "insufficient_quota", "insufficient_quota")
    if p == "noschema":
        key = "format" if ollama else "response_format"
        if isinstance(req, dict) and key in req and req[key] is not None:
            return error_reply(400, f"{key} is not supported", ollama)
        return success(handler, req, raw, ollama, started)
    if p == "refuse":
        return envelope(req, ollama, lambda i: REFUSAL, started)
    if p == "offtopic":
        return envelope(req, ollama, lambda i: OFFTOPIC, started)
    if p == "empty":
        return envelope(req, ollama, lambda i: "", started)
    return error_reply(500, "fault server: unhandled scenario", ollama)


# --------------------------------------------------------------------------- HTTP

MAX_HEADER_LINE = 65536  # http.client's limits, which the stock parser applies
MAX_HEADERS = 100


class Headers:
    """Request headers as http.server's email.message.Message gives them (names as sent, values after the colon with
    leading blanks and the line end dropped, folded lines joined, get() case-insensitive and first match), read
    without the email package, whose parser cost more than the rest of a request put together."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, name: str, default=None):
        name = name.lower()
        for k, v in self._items:
            if k.lower() == name:
                return v
        return default

    def __getitem__(self, name: str):
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]

    def get_all(self, name: str, failobj=None):
        name = name.lower()
        values = [v for k, v in self._items if k.lower() == name]
        return values or failobj

    def __str__(self) -> str:
        return "".join(f"{k}: {v}\n" for k, v in self._items) + "\n"


class HeaderError(Exception):
    pass


# email.feedparser's test for a header line: a name of printable ASCII but ':', then ':'; or a continuation line.
HEADER_LINE_RE = re.compile(r"^(From |[\041-\071\073-\176]*:|[\t ])")


def read_headers(rfile) -> Headers:
    """Header lines up to the blank line, as http.client.parse_headers reads and email.feedparser (compat32) parses
    them: at most MAX_HEADERS lines of at most MAX_HEADER_LINE bytes, decoded as ISO-8859-1; headers end at the first
    line that is not one; a name-less line or a continuation without a header before it is skipped."""
    lines: list[str] = []
    while True:
        line = rfile.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise HeaderError("Line too long", f"got more than {MAX_HEADER_LINE} bytes when reading header line")
        lines.append(line.decode("iso-8859-1"))
        if len(lines) > MAX_HEADERS:
            raise HeaderError("Too many headers", f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    groups: list[list[str]] = []  # each header's source lines, line ends kept
    for line in lines:
        if line in ("\r\n", "\n", "") or not HEADER_LINE_RE.match(line):
            break
        if line[0] in " \t":
            if groups:
                groups[-1].append(line)
            continue
        if line.startswith("From "):
            continue
        if line.find(":") <= 0:
            continue
        groups.append([line])
    items = []
    for source in groups:
        name, value = source[0].split(":", 1)
        items.append((name, (value.lstrip(" \t") + "".join(source[1:])).rstrip("\r\n")))
    return Headers(items)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-server/1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle holds the body until the client's
    # delayed ACK (about 40 ms), which would swamp the client overhead the benchmark measures.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if CONFIG.verbose:
            log(f"{self.address_string()} {format % args}")

    _date: tuple[int, str] = (0, "")

    def date_time_string(self, timestamp=None) -> str:
        """The Date header, formatted once a second rather than once a request."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        cached = Handler._date
        if cached[0] != now:
            cached = (now, email.utils.formatdate(now, usegmt=True))
            Handler._date = cached
        return cached[1]

    def parse_request(self) -> bool:
        """BaseHTTPRequestHandler.parse_request (Python 3.11) with `read_headers` in place of the email parser: the
        same request-line checks, keep-alive rules, header limits and 100-continue."""
        self.command = None
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if len(words) == 0:
            return False
        if len(words) >= 3:
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                base_version_number = version.split("/", 1)[1]
                version_number = base_version_number.split(".")
                if len(version_number) != 2:
                    raise ValueError
                if any(not component.isdigit() for component in version_number):
                    raise ValueError("non digit in http version")
                if any(len(component) > 10 for component in version_number):
                    raise ValueError("unreasonable length http version")
                version_number = int(version_number[0]), int(version_number[1])
            except (ValueError, IndexError):
                self.send_error(400, "Bad request version (%r)" % version)
                return False
            if version_number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if version_number >= (2, 0):
                self.send_error(505, "Invalid HTTP version (%s)" % base_version_number)
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, "Bad request syntax (%r)" % requestline)
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(400, "Bad HTTP/0.9 request type (%r)" % command)
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = read_headers(self.rfile)
        except HeaderError as err:
            self.send_error(431, err.args[0], err.args[1])
            return False
        conntype = self.headers.get("Connection", "")
        if conntype.lower() == "close":
            self.close_connection = True
        elif conntype.lower() == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = self.headers.get("Expect", "")
        if (expect.lower() == "100-continue" and self.protocol_version >= "HTTP/1.1"
                and self.request_version >= "HTTP/1.1"):
            if not self.handle_expect_100():
                return False
        return True

    # -- plumbing

    def read_body(self) -> bytes | None:
        """Reads the request body (Content-Length or chunked). None = unusable (connection gets closed)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return None
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            return None
        if n < 0 or n > MAX_BODY:
            return None
        data = self.rfile.read(n)
        return data if len(data) == n else None

    def send(self, reply: Reply) -> None:
        """Status line, headers and body in one write (one system call, one packet for a small answer)."""
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply.body)))
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(reply.body)
        self.flush_headers()
        self.wfile.flush()

    def hang(self) -> None:
        log(f"hang {CONFIG.hang_seconds}s: {self.path}")
        time.sleep(CONFIG.hang_seconds)
        self.close_connection = True

    def truncated(self, full: bytes) -> None:
        half = full[: len(full) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(full)))
        self.end_headers()
        self.wfile.write(half)
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- dispatch

    def do_GET(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def do_PUT(self) -> None:
        self.dispatch()

    def do_DELETE(self) -> None:
        self.dispatch()

    def do_HEAD(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        entry = None
        try:
            raw = self.read_body()
            if raw is None:
                self.close_connection = True
                self.send(Reply(400, {"error": {"message": "fault server: unreadable request body"}}))
                return
            url = urllib.parse.urlsplit(self.path)
            path = url.path

            # control endpoints
            if path == "/_stats":
                q = urllib.parse.parse_qs(url.query)
                self.send(Reply(200, STATE.snapshot(q.get("scenario", [None])[0])))
                return
            if path == "/_reset":
                if self.command != "POST":
                    self.send(Reply(405, {"error": {"message": "use POST /_reset"}}, headers={"Allow": "POST"}))
                    return
                STATE.reset()
                self.send(Reply(200, {"ok": True}))
                return

            scenario, rest = parse_path(path)
            try:
                req = json.loads(raw) if raw else None
            except (ValueError, UnicodeDecodeError):
                req = None
            body_logged = req if req is not None else raw.decode("utf-8", "replace")
            entry = {"scenario": scenario, "path": self.path, "method": self.command,
                     "headers": {k: v for k, v in self.headers.items()}, "body": body_logged, "status": None}
            STATE.record(entry)
            STATE.enter(scenario)
            try:
                self.answer(scenario, rest, req, raw, entry)
            finally:
                STATE.leave(scenario)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001  never crash on client input
            log(f"internal error: {type(e).__name__}: {e}")
            self.close_connection = True
            if entry is not None:
                entry["status"] = 500
            try:
                self.send(Reply(500, {"error": {"message": f"fault server internal error: {type(e).__name__}"}}))
            except Exception:  # noqa: BLE001
                pass

    def answer(self, scenario: str, rest: str, req, raw: bytes, entry: dict) -> None:
        """Answers a request that is not a control endpoint (after --latency-ms), and logs its status."""
        started = time.monotonic()
        if CONFIG.latency > 0:
            time.sleep(CONFIG.latency)
        ollama = rest == "/api/chat"
        if rest in ("/v1/chat/completions", "/chat/completions", "/api/chat"):
            if self.command != "POST":
                reply = error_reply(405, "method not allowed", ollama)
                reply.headers["Allow"] = "POST"
            else:
                reply = run_scenario(self, scenario, req, raw, ollama, started)
        elif rest in ("/v1/models", "/models") and self.command in ("GET", "HEAD"):
            reply = self.models()
        elif rest == "/api/tags" and self.command in ("GET", "HEAD"):
            reply = self.tags()
        else:
            reply = error_reply(404, f"fault server: no route for {self.command} {rest}", ollama)
        if reply is None:
            entry["status"] = "closed"
            return
        entry["status"] = reply.status
        self.send(reply)

    def models(self) -> Reply:
        if CONFIG.upstream:
            headers = {"Accept": "application/json"}
            if self.headers.get("Authorization") is not None:
                headers["Authorization"] = self.headers["Authorization"]
            status, data, ctype = upstream_call("GET", "/v1/models", None, headers)
            return Reply(status, data, content_type=ctype)
        return Reply(200, {"object": "list", "data": [
            {"id": "fault-server", "object": "model", "created": 0, "owned_by": "fault-server"}]})

    def tags(self) -> Reply:
        names = ["fault-server"]
        if CONFIG.upstream:
            status, data, _ = upstream_call("GET", "/v1/models", None, {"Accept": "application/json"})
            if status == 200:
                try:
                    names = [m["id"] for m in json.loads(data)["data"]]
                except Exception:  # noqa: BLE001
                    pass
        return Reply(200, {"models": [
            {"name": n, "model": n, "modified_at": now_rfc3339(), "size": 0, "digest": "", "details": {}}
            for n in names]})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a hanging request must not delay shutdown
    allow_reuse_address = False
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        if CONFIG.verbose:
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fault-injecting HTTP server for sspa-knowledge tests.")
    ap.add_argument("--host", default="127.0.0.1", help="only 127.0.0.1 is accepted")
    ap.add_argument("--port", type=int, default=0, help="0 = a free port; 8765 is refused")
    ap.add_argument("--upstream", default=None, help="base URL of the real LLM server, e.g. http://127.0.0.1:PORT")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay before every answer")
    ap.add_argument("--hang-seconds", type=float, default=30.0, help="how long hang scenarios wait (default 30)")
    ap.add_argument("--canned", action="store_true", help="answer canned descriptions (benchmark only)")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), default=None,
                    help="serve HTTPS with this PEM certificate and key (Python's ssl module; HTTP/1.1 only)")
    ap.add_argument("--verbose", action="store_true", help="log to stderr")
    args = ap.parse_args(argv)

    if args.host not in ALLOWED_HOSTS:
        ap.error(f"refusing to bind {args.host!r}: only 127.0.0.1 is allowed")
    if args.port == FORBIDDEN_PORT:
        ap.error(f"refusing port {FORBIDDEN_PORT}")
    if not 0 <= args.port <= 65535:
        ap.error("port out of range")
    if args.latency_ms < 0 or args.hang_seconds < 0:
        ap.error("negative durations are not allowed")
    if args.upstream is not None:
        u = urllib.parse.urlsplit(args.upstream)
        if u.scheme not in ("http", "https") or not u.netloc:
            ap.error(f"--upstream must be an http(s) URL, got {args.upstream!r}")
        CONFIG.upstream = args.upstream
    CONFIG.canned = args.canned
    CONFIG.latency = args.latency_ms / 1000.0
    CONFIG.hang_seconds = args.hang_seconds
    CONFIG.verbose = args.verbose

    server = None
    for _ in range(5):
        server = Server((args.host, args.port), Handler)
        if server.server_address[1] != FORBIDDEN_PORT:
            break
        server.server_close()  # port 0 happened to give 8765: try again
        server = None
    if server is None:
        print("could not get a port other than 8765", file=sys.stderr)
        return 1

    if args.tls:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def stop(signum, frame) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    log(f"listening on {args.host}:{server.server_address[1]} upstream={CONFIG.upstream} canned={CONFIG.canned}")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
