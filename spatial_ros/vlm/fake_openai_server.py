"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks of
the served backend (``spatial_ros.vlm.served``) over real HTTP.

    with FakeOpenAIServer(lambda request: "[315, 280, 274, ...]") as server:
        backend = ServedBackend(ServedConfig(server_url=server.url))

The answer callable gets each request's JSON body and returns the answer text or a
:class:`Reply` (status, raw body, delay, headers, token log-probabilities). The server records
every request (headers, body, arrival and end times) and the most requests it had in flight at
once. ``stop()`` then ``start()`` brings it down and up again on the same port. Written on
``http.server`` (stdlib, one thread per request): enough for a handful of requests on loopback.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class Reply:
    """A scripted reply.

    Attributes:
        text: the answer (a completion with this content).
        status: HTTP status (non-2xx: an OpenAI-style error body unless ``body`` is given).
        body: raw bytes sent instead of a completion (malformed replies).
        delay_s: wait before answering (s).
        headers: extra response headers (e.g. Retry-After).
        logprobs: the answer's tokens as [(token, logprob, [(alternative, logprob), ...])];
            None: no log-probabilities in the reply.
        cached_tokens: reported as usage.prompt_tokens_details.cached_tokens when set.
    """

    text: str = ""
    status: int = 200
    body: bytes | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    logprobs: list[tuple[str, float, list[tuple[str, float]]]] | None = None
    cached_tokens: int | None = None


@dataclass
class Seen:
    """A request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    t_start: float
    t_end: float = float("nan")


def request_text(body: dict) -> str:
    """The text of the last user message of a chat request."""
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") == "user":
            c = msg.get("content")
            if isinstance(c, str):
                return c
            return "".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


def request_images(body: dict) -> list[np.ndarray]:
    """The images of a chat request (data URLs) decoded to (H, W, 3) uint8 RGB."""
    import cv2

    out = []
    for msg in body.get("messages", []):
        c = msg.get("content")
        for part in c if isinstance(c, list) else []:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                raw = base64.b64decode(url.split(",", 1)[1])
                bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
                out.append(bgr[:, :, ::-1].copy())
    return out


def completion_body(reply: Reply, model: str, request: dict | None) -> bytes:
    """The JSON of a chat completion answering ``reply.text``."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": reply.text}}
    if reply.logprobs is not None and (request or {}).get("logprobs"):
        k = int((request or {}).get("top_logprobs") or 0)
        choice["logprobs"] = {"content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode()),
             "top_logprobs": [{"token": a, "logprob": alp, "bytes": list(a.encode())}
                              for a, alp in alts[:k]]}
            for t, lp, alts in reply.logprobs]}
    usage: dict[str, Any] = {"prompt_tokens": 100, "completion_tokens": len(reply.text.split()),
                             "total_tokens": 100 + len(reply.text.split())}
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
                       "created": int(time.time()), "choices": [choice],
                       "usage": usage}).encode()


class FakeOpenAIServer:
    """See the module docstring.

    Args:
        answer: ``request body -> text | Reply`` for each POST /v1/chat/completions.
        model: the model name listed at GET /v1/models.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get HTTP 401.
        port: 0 = any free port (kept across stop()/start()).
    """

    def __init__(self, answer: Callable[[dict], str | Reply], model: str = "fake-vlm",
                 api_key: str | None = None, port: int = 0) -> None:
        self.answer = answer
        self.model = model
        self.api_key = api_key
        self.port = port
        self.requests: list[Seen] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set = set()  # open (keep-alive) client connections

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm
                # and the client's delayed ACK add ~40 ms to every reply on loopback
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                seen = Seen(self.path, dict(self.headers), None, time.monotonic())
                with server._lock:
                    server.requests.append(seen)
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": server.model, "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')
                seen.t_end = time.monotonic()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                seen = Seen(self.path, dict(self.headers), body, time.monotonic())
                with server._lock:
                    server.requests.append(seen)
                    server._in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server._in_flight)
                try:
                    self._answer(body)
                finally:
                    with server._lock:
                        server._in_flight -= 1
                    seen.t_end = time.monotonic()

            def _answer(self, body) -> None:
                if not self.path.rstrip("/").endswith("/v1/chat/completions"):
                    return self._send(404, b'{"error": {"message": "no such route"}}')
                if server.api_key and self.headers.get("Authorization") != \
                        f"Bearer {server.api_key}":
                    return self._send(401, b'{"error": {"message": "invalid API key"}}')
                if body is None:
                    return self._send(400, b'{"error": {"message": "body is not JSON"}}')
                reply = server.answer(body)
                if isinstance(reply, str):
                    reply = Reply(reply)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.body is not None:
                    out = reply.body
                elif reply.status >= 400:
                    out = json.dumps({"error": {"message": reply.text or "scripted error"}})
                    out = out.encode()
                else:
                    out = completion_body(reply, server.model, body)
                try:
                    self._send(reply.status, out, reply.headers)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, address: None  # client hang-ups
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the port refuses connections until start())."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            with self._lock:  # a stopped server also drops its kept-alive connections
                conns, self._connections = list(self._connections), set()
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
