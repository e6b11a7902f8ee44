"""A real HTTP proxy in front of a test's payback server that can be told to fail: answer
the next requests itself (a 429 storm, a 503 with Retry-After) or close the connection
without an answer, and otherwise forward each request as it came. It keeps what it saw,
so a test can say how a client behaved on the wire."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    encoding: str  # Content-Encoding, "" for none
    items: int  # events or outcomes in the body (1 for a single object)
    answered: int  # the status the client got; 0: the connection was closed


@dataclass
class FlakyProxy:
    upstream: str  # the server's URL
    # What the next requests get instead of the server's answer, in order: a status (with
    # optional headers), None to close the connection without forwarding, or "lost" to
    # forward it and close the connection instead of relaying the answer.
    failures: deque[tuple[int, dict[str, str]] | str | None] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    down: bool = False  # every request gets its connection closed until set back
    stopped: threading.Event = field(default_factory=threading.Event)

    def fail_next(self, count: int, status: int | None, **headers: str) -> None:
        for _ in range(count):
            self.failures.append(None if status is None else (status, headers))

    def lose_next_answer(self) -> None:
        self.failures.append("lost")

    def hold_next_answer(self) -> None:
        """Forward the next request, then never answer it (until the proxy stops)."""
        self.failures.append("held")

    def delivered(self) -> int:
        """Items in the requests the server answered with 200."""
        return sum(s.items for s in self.seen if s.answered == 200)


def _items(body: bytes, encoding: str) -> int:
    try:
        data: Any = json.loads(gzip.decompress(body) if encoding == "gzip" else body)
    except (ValueError, OSError):
        return 0
    if isinstance(data, dict):
        for key in ("events", "outcomes"):
            if isinstance(data.get(key), list):
                return len(data[key])
    return 1


def start_flaky_proxy(upstream: str) -> tuple[FlakyProxy, ThreadingHTTPServer]:
    proxy = FlakyProxy(upstream=upstream)
    target = urlsplit(upstream)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding", "")
            with lock:
                failure = proxy.failures.popleft() if proxy.failures else ...
                down = proxy.down
            seen = (self.command, self.path, encoding, _items(body, encoding))
            if down or failure is None:
                proxy.seen.append(Seen(*seen, answered=0))
                self.close_connection = True
                self.connection.close()
                return
            if failure is not ... and failure not in ("lost", "held"):
                status, headers = failure  # type: ignore[misc]
                answer = json.dumps({"errors": [{"code": "injected", "message": "x"}]})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())
                proxy.seen.append(Seen(*seen, answered=status))
                return
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            forwarded = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            connection.request(self.command, self.path, body=body, headers=forwarded)
            response = connection.getresponse()
            payload = response.read()
            connection.close()
            if failure == "held":  # stored upstream; the client waits for ever
                proxy.seen.append(Seen(*seen, answered=0))
                proxy.stopped.wait()
                return
            if failure == "lost":  # stored upstream; the client never hears of it
                proxy.seen.append(Seen(*seen, answered=0))
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            proxy.seen.append(Seen(*seen, answered=response.status))

        do_POST = do_GET = do_PUT = _relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return proxy, server
