#!/usr/bin/env python3
"""The throughput benchmark's server: the fault server's canned chat completions on one asyncio event loop.

scripts/bench_build.sh measures clients against a loopback server that waits a fixed latency and then answers.
The fault server (Tests/Support/fault_server.py) serves each connection on its own thread; at 128 concurrent
requests on two cores its threads contend for the GIL, every answer waits for it after its sleep, and the server
took about a third of the wall time. This server answers the same completions (the same builder, imported from the
fault server: `{"descriptions": [5 sentences naming the label]}`, usage, finish_reason "stop", n choices) from a
single event loop: a request is parsed when it arrives, its answer is scheduled `--latency-ms` after its arrival
with a timer, and no thread waits anywhere. It is for measuring throughput only; tests use the fault server.

The latency is counted from the moment the request's last bytes were read, not from when the server has finished
preparing the answer: a real engine's latency does not grow because the benchmark server is written in Python. The
answer's choices are rendered once per label and number of choices and reused (checked against the fault server's
own rendering at start). The server reports how late its answers went out (`late_ms` in /_stats: sent minus due,
in milliseconds); bench_build.sh prints it, so that a reader can see how much of a row's distance from the ideal is
the server's.

It speaks HTTP/1.1 with keep-alive and Content-Length bodies (what libcurl and httpx send), to 127.0.0.1 only:

    POST /s/<scenario>/v1/chat/completions   a canned completion (the scenario only names the counter)
    POST /v1/chat/completions, /chat/completions, /s/<scenario>/chat/completions   the same
    GET  /_stats    {"counts": {scenario: n}, "late_ms": {"median": m, "p90": p, "max": x, "answers": n}}
    POST /_reset    clears the counters and the lateness record

Usage: bench_server.py [--port 0] [--latency-ms 200]; prints "PORT <n>" on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import signal
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Support"))
import fault_server  # noqa: E402  (the answer's shape is the fault server's)

FORBIDDEN_PORT = fault_server.FORBIDDEN_PORT
MAX_HEAD = 64 * 1024
MAX_BODY = fault_server.MAX_BODY
COUNTS: dict[str, int] = {}
LATE: list[float] = []  # seconds each answer went out after it was due, since the last /_reset
CHOICES: dict[tuple[str, int], tuple[str, int]] = {}  # (label, n) -> (choices as JSON, completion tokens)


class Headers(dict):
    """Request headers by lower-case name (the first of a repeated name); get() takes a name in any case, as the
    fault server's Headers does, without scanning the list on every look-up."""

    def get(self, name: str, default=None):  # type: ignore[override]
        return dict.get(self, name.lower(), default)


MESSAGE_TOKENS: dict[str, int] = {}


def prompt_tokens(req: dict) -> int:
    """fault_server.prompt_tokens(req), with each message's count kept: the system prompt and the demonstrations are
    the same in every request, and only the last question differs."""
    messages = req.get("messages")
    if not isinstance(messages, list):
        return 1
    total = 0
    for message in messages:
        text = fault_server.message_text(message)
        count = MESSAGE_TOKENS.get(text)
        if count is None:
            count = fault_server.rough_tokens(text)
            if len(MESSAGE_TOKENS) < 100_000:
                MESSAGE_TOKENS[text] = count
        total += count
    return total or 1


def completion_body(req: dict, label: str) -> bytes:
    """The fault server's `openai_completion(req, canned contents)` as JSON bytes, with the choices rendered once per
    label and number of choices: the id and the prompt's usage are the request's own, as before."""
    n = fault_server.wants_n(req)
    cached = CHOICES.get((label, n))
    if cached is None:
        contents = [fault_server.canned_descriptions(label, i) for i in range(n)]
        whole = fault_server.openai_completion(req, contents)
        cached = (json.dumps(whole["choices"], ensure_ascii=False), whole["usage"]["completion_tokens"])
        CHOICES[(label, n)] = cached
    choices, completion_tokens = cached
    model = req.get("model") if isinstance(req.get("model"), str) else "fault-server"
    p = prompt_tokens(req)
    return (f'{{"id": "{fault_server.completion_id()}", "object": "chat.completion", "created": {int(time.time())}, '
            f'"model": {json.dumps(model, ensure_ascii=False)}, "system_fingerprint": "fp_fault_server", '
            f'"choices": {choices}, "usage": {{"prompt_tokens": {p}, "completion_tokens": {completion_tokens}, '
            f'"total_tokens": {p + completion_tokens}}}}}').encode()


def check_completion_body() -> None:
    """The reused rendering must say what the fault server's builder says (all but the id and the time)."""
    for label, n in (("dog", 1), ("traffic light", 3), ('a "quoted" café', 2)):
        req = {"model": "bench \"m\"", "n": n, "messages": [
            {"role": "system", "content": "You describe things."}, {"role": "user", "content": [{"type": "text", "text": "Parts"}]},
            {"role": "assistant", "content": ""}, {"role": "user", "content": f'Describe "{label}".'}]}
        for _ in range(2):  # the first renders, the second reuses
            fast = json.loads(completion_body(req, label))
            slow = fault_server.openai_completion(req, [fault_server.canned_descriptions(label, i) for i in range(n)])
            for key in ("id", "created"):
                fast.pop(key), slow.pop(key)
            if fast != slow:
                sys.exit(f"bench_server: the reused completion differs from the fault server's for {label!r}, n={n}")
    CHOICES.clear()
    MESSAGE_TOKENS.clear()


def late_stats() -> dict:
    if not LATE:
        return {"median": None, "p90": None, "max": None, "answers": 0}
    ordered = sorted(LATE)
    return {"median": round(statistics.median(ordered) * 1000, 3), "p90": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 3),
            "max": round(ordered[-1] * 1000, 3), "answers": len(ordered)}


def reply(status: int, body: dict, keep_alive: bool) -> bytes:
    data = json.dumps(body, ensure_ascii=False).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large"}
    head = (f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n" + ("" if keep_alive else "Connection: close\r\n") + "\r\n")
    return head.encode() + data


class Connection(asyncio.Protocol):
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.continued = False  # "100 Continue" sent for the request being read

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        arrived = asyncio.get_running_loop().time()  # a request completed by these bytes arrived now
        self.buffer += data
        while not self.closing:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.send(reply(400, {"error": {"message": "request head too large"}}, False), close=True)
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self.send(reply(400, {"error": {"message": "bad request line"}}, False), close=True)
                return
            headers = Headers()
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), value.strip())  # the first of a repeated name, as before
            if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
                self.send(reply(400, {"error": {"message": "chunked bodies are not supported here"}}, False), close=True)
                return
            length = int(headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send(reply(413, {"error": {"message": "body too large"}}, False), close=True)
                return
            if len(self.buffer) < end + 4 + length:
                if (headers.get("Expect") or "").lower() == "100-continue" and not self.continued:
                    self.continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            self.continued = False
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            keep_alive = (headers.get("Connection") or "").lower() != "close" and version == "HTTP/1.1"
            self.handle(method, target, headers, body, keep_alive, arrived)

    def handle(self, method: str, target: str, headers: Headers, body: bytes, keep_alive: bool,
               arrived: float) -> None:
        path = target.split("?", 1)[0]
        if path == "/_stats":
            self.send(reply(200, {"counts": dict(COUNTS), "late_ms": late_stats()}, keep_alive), close=not keep_alive)
            return
        if path == "/_reset":
            if method != "POST":
                self.send(reply(405, {"error": {"message": "use POST /_reset"}}, keep_alive), close=not keep_alive)
                return
            COUNTS.clear()
            LATE.clear()
            self.send(reply(200, {"ok": True}, keep_alive), close=not keep_alive)
            return
        scenario, rest = fault_server.parse_path(path)
        if rest not in ("/v1/chat/completions", "/chat/completions"):
            self.send(reply(404, {"error": {"message": f"bench server: no route for {method} {rest}"}}, keep_alive),
                      close=not keep_alive)
            return
        try:
            req = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            req = None
        if method != "POST" or not isinstance(req, dict):
            self.send(reply(400, {"error": {"message": "POST a JSON chat completion request"}}, keep_alive),
                      close=not keep_alive)
            return
        COUNTS[scenario] = COUNTS.get(scenario, 0) + 1
        label = fault_server.request_label(headers, req)
        data = completion_body(req, label)
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                + ("" if keep_alive else "Connection: close\r\n") + "\r\n")
        due = arrived + self.latency
        asyncio.get_running_loop().call_at(due, self.answer, head.encode() + data, not keep_alive, due)

    def answer(self, data: bytes, close: bool, due: float) -> None:
        self.send(data, close)
        LATE.append(asyncio.get_running_loop().time() - due)

    def send(self, data: bytes, close: bool = False) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.closing = True
            self.transport.close()


class PunctualSelector(selectors.SelectSelector):
    """select(2) that wakes up a millisecond before a long time-out ends, so that asyncio's next, short wait ends
    on time. The kernel lets a sleep of t end up to t/1000 late (its timer slack: 0.2 ms for a 200 ms wait), and
    every round of answers went out that much late; the short wait's slack is this process's own, set to 1 µs."""

    def select(self, timeout=None):
        if timeout is not None and timeout > 0.002:
            timeout -= 0.001
        return super().select(timeout)


def fine_timer_slack() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK: 1 µs instead of the default 50 µs
    except (OSError, AttributeError):
        pass  # not Linux: the answers may go out a little later; late_ms in /_stats shows how much


async def serve(host: str, port: int, latency: float) -> None:
    loop = asyncio.get_running_loop()
    server = None
    for _ in range(5):
        server = await loop.create_server(lambda: Connection(latency), host, port, backlog=1024)
        if server.sockets[0].getsockname()[1] != FORBIDDEN_PORT:
            break
        server.close()  # port 0 happened to give 8765: try again
        server = None
    if server is None:
        sys.exit("could not get a port other than 8765")
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(f"PORT {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await stop.wait()
    server.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"], help="loopback only")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (never 8765)")
    ap.add_argument("--latency-ms", type=float, default=200.0, help="fixed delay before every answer")
    args = ap.parse_args()
    check_completion_body()
    if args.port == FORBIDDEN_PORT:
        sys.exit("port 8765 is taken on this machine; use another")
    if args.latency_ms < 0:
        sys.exit("--latency-ms must be 0 or more")
    # select(2) rather than epoll: epoll's time-out has whole milliseconds, so asyncio's timers fired up to 1 ms late
    # (0.5 ms on average), and every round of answers went out late by that; select's is in microseconds. The
    # benchmark keeps far fewer sockets open than select's limit (1,024).
    fine_timer_slack()
    loop = asyncio.SelectorEventLoop(PunctualSelector())
    try:
        loop.run_until_complete(serve(args.host, args.port, args.latency_ms / 1000.0))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
