"""A real HTTP server on 127.0.0.1 in a background thread, with scripted faults.

A source is an ``app(path, query, headers)`` returning ``(status, headers,
body_bytes)`` (``crimejob.devservers.soda``, ``crimejob.devservers.ncei``).
Faults are queued per path prefix and consumed one request at a time, so a
test can say "429, then success" or "500 five times" or "a truncated body" and
see what the client does.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    status: int = 500
    body: bytes = b'{"error": true, "message": "internal error"}'
    headers: dict = field(default_factory=dict)
    truncate: bool = False  # send the real body cut in half (a dropped connection)


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format, *args):  # keep the job's output quiet
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.server.lock:
            self.server.requests.append((parts.path, query, dict(self.headers)))
            fault = self.server.next_fault(parts.path)
        if fault is not None and not fault.truncate:
            self._send(fault.status, fault.headers, fault.body)
            return
        status, headers, body = self.server.app(parts.path, query, dict(self.headers))
        if fault is not None and fault.truncate:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(status, headers, body)

    def _send(self, status, headers, body):
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeServer(ThreadingHTTPServer):
    """Serve ``app(path, query, headers) -> (status, headers, body)`` on a free port."""

    daemon_threads = True

    def __init__(self, app):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.app = app
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict, dict]] = []
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        # serve_forever checks for shutdown() every poll_interval (0.5 s by default): each
        # test's server took up to half a second to stop
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def add_faults(self, path_prefix: str, *faults: Fault) -> None:
        with self.lock:
            self.faults[path_prefix].extend(faults)

    def next_fault(self, path: str) -> Fault | None:
        for prefix, queue in self.faults.items():
            if path.startswith(prefix) and queue:
                return queue.popleft()
        return None

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
