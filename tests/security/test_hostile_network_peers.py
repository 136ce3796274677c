"""A Beacon network's peers and service registry turned hostile, against ``genoshare serve``'s ``/network/api``.

One HTTP server on loopback plays every bad peer: one answers JSON nested far past any parser's recursion
limit, one answers more than an answer may hold, one redirects to another host (to collect the passport
there), and a service registry lists its Beacons inside nested JSON too. Each must be named in the
network answer as the failure it is, within the deadline, the healthy parts still answered; the passport
must never reach the redirect's target.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlite_node import sqlite_node

from genoshare.node import Node

__all__ = ["sqlite_node"]

ISSUER = "https://issuer.example"
NESTED = b"[" * 200_000 + b"]" * 200_000
HUGE = 40 * 1024 * 1024


class Hostile(BaseHTTPRequestHandler):
    """Answers by the first path segment; remembers the Authorization header of every request it got."""

    seen: list[tuple[str, str | None]] = []

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

    def do_GET(self) -> None:
        Hostile.seen.append((self.path, self.headers.get("Authorization")))
        kind = self.path.split("/")[1]
        if kind in ("nested", "registry"):
            self._send(200, NESTED)
        elif kind == "nested-error":
            self._send(500, NESTED)
        elif kind == "huge":
            self._send(200, b'{"meta": {}, "padding": "' + b"x" * HUGE + b'"}')
        elif kind == "redirect":
            port = self.server.server_address[1]
            self._send(302, b"{}", {"Location": f"http://localhost:{port}/steal{self.path}"})
        else:
            self._send(404, b'{"message": "no such thing"}')


@pytest.fixture
def hostile() -> Iterator[str]:
    Hostile.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def unsigned_passport(issuer: str) -> str:
    """A token claiming ``issuer``: the hub chooses whom to send it by its claimed issuer alone."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'iss': issuer, 'sub': 'someone'})}.c2ln"


def test_hostile_peers_and_registries_are_named_never_fatal(sqlite_node: Node, serve: Any, hostile: str) -> None:
    names = ("nested", "nested-error", "huge", "redirect")
    peers = [{"url": f"{hostile}/{name}", "name": name, "trusts": [ISSUER]} for name in names]
    network = {"peers": peers, "registries": [{"url": f"{hostile}/registry", "trusts": [ISSUER]}]}
    network["deadline_seconds"] = 5
    server = serve(
        sqlite_node.settings.data_dir,
        {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url, "GENOSHARE_NETWORK": json.dumps(network)},
    )
    answer = httpx.get(f"{server.url}/network/api/individuals", timeout=30)
    assert answer.status_code == 200, answer.text[:3000]
    document = answer.json()
    nodes = {node["name"]: node for node in document["info"]["network"]["nodes"]}
    for name in names:
        assert nodes[name]["status"] != "answered", (name, nodes[name])
        assert nodes[name].get("reason"), (name, nodes[name])
    assert "larger than" in nodes["huge"]["reason"]
    problems = json.dumps(document["info"]["network"])
    assert "registry" in problems and "cannot be read" in problems, problems[:2000]
    # With a passport every peer trusts (the hub itself does not): it goes to the peers, and no further.
    passport = unsigned_passport(ISSUER)
    refused = httpx.get(
        f"{server.url}/network/api/individuals", headers={"Authorization": f"Bearer {passport}"}, timeout=30
    )
    assert refused.status_code == 502, refused.text[:3000]
    for name in names:
        assert f"{name}: " in refused.json()["error"]["errorMessage"], name
    stolen = [path for path, _ in Hostile.seen if path.startswith("/steal")]
    assert not stolen, "a peer's redirect was followed"
    sent = {path.split("/")[1] for path, authorization in Hostile.seen if authorization == f"Bearer {passport}"}
    assert sent == set(names), sent
    assert "Traceback" not in server.stop()
