"""One HTTP server on loopback that plays every hostile peer, by the first segment of the path it is asked.

``nested``: JSON nested far past any parser's recursion limit (``nested-error``: the same with a 500);
``huge``: a 40 MiB JSON answer (``large``: 10 MiB, without a Content-Length); ``redirect``: a 302 to another
host name of the same server, whose ``/steal/...`` would collect a forwarded credential; ``drip``: a long
answer, a byte at a time; ``listing/services``: a service registry listing Beacons where no Beacon is
(``private-listing/services``: on this machine, by name and by address). Every request's path and
credential is kept in ``Hostile.seen``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

NESTED = b"[" * 200_000 + b"]" * 200_000
HUGE = 40 * 1024 * 1024
LARGE = 10 * 1024 * 1024


class Hostile(BaseHTTPRequestHandler):
    """Answers by the first path segment; keeps the credential (Authorization, X-Auth-Token) of each request."""

    seen: list[tuple[str, str | None]] = []
    #: Each request's path and the host it named (``Host``).
    hosts: list[tuple[str, str | None]] = []
    hung_up: list[tuple[str, float]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _send_unsized(self, body: bytes) -> None:
        """An answer whose length only reading it tells (no Content-Length; the connection closes after it)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _listing(self) -> list[dict[str, Any]]:
        """A service registry's Beacons: a cloud's metadata service, addresses with a query or a user, one fine."""
        here = f"127.0.0.1:{self.server.server_address[1]}"
        beacon = {"group": "org.ga4gh", "artifact": "beacon", "version": "2.0.0"}
        urls = {
            "metadata": "http://169.254.169.254/latest/meta-data",
            "metadata-v6": "http://[::ffff:169.254.169.254]/latest",
            "query": f"http://{here}/queried/admin?next=",
            "userinfo": f"http://user:secret@{here}/userinfo/api",
            "fine": f"http://{here}/fine/api",
        }
        return [{"id": name, "name": name, "type": beacon, "url": url} for name, url in urls.items()]

    def _private_listing(self) -> list[dict[str, Any]]:
        """Beacons on this machine: by a name (``localhost``), by IPv4 and IPv6 loopback addresses."""
        port = self.server.server_address[1]
        beacon = {"group": "org.ga4gh", "artifact": "beacon", "version": "2.0.0"}
        urls = {
            "named": f"http://localhost:{port}/named/api",
            "literal": f"http://127.0.0.1:{port}/literal/api",
            "literal-v6": f"http://[::1]:{port}/literal-v6/api",
        }
        return [{"id": name, "name": name, "type": beacon, "url": url} for name, url in urls.items()]

    def _drip(self) -> None:
        """A byte every 0.1 s of a long answer, for 30 s; when the client hangs up is kept in ``hung_up``."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        started = time.monotonic()
        try:
            while time.monotonic() - started < 30:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            Hostile.hung_up.append((self.path, time.monotonic() - started))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.do_GET()

    def do_GET(self) -> None:
        Hostile.seen.append((self.path, self.headers.get("Authorization") or self.headers.get("X-Auth-Token")))
        Hostile.hosts.append((self.path, self.headers.get("Host")))
        kind = self.path.split("/")[1]
        if kind in ("nested", "registry"):
            self._send(200, NESTED)
        elif kind == "nested-error":
            self._send(500, NESTED)
        elif kind == "huge":
            self._send(200, b'{"results": [], "meta": {}, "padding": "' + b"x" * HUGE + b'"}')
        elif kind == "large":
            self._send_unsized(b'{"meta": {}, "responseSummary": {"exists": true}, "padding": "' + b"x" * LARGE + b'"}')
        elif kind == "listing":
            self._send(200, json.dumps(self._listing()).encode())
        elif kind == "private-listing":
            self._send(200, json.dumps(self._private_listing()).encode())
        elif kind == "drip":
            self._drip()
        elif kind == "redirect":
            port = self.server.server_address[1]
            self._send(302, b"{}", {"Location": f"http://localhost:{port}/steal{self.path}"})
        else:
            self._send(404, b'{"message": "no such thing"}')


@pytest.fixture
def hostile() -> Iterator[str]:
    Hostile.seen, Hostile.hosts, Hostile.hung_up = [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
