"""The demo passport broker's forms, sent far larger than any OIDC form: refused, never held in memory.

Through ``python -m genoshare.demo.broker`` in its own process: 64 MiB streamed to ``/token`` and to
``/authorize`` (with and without a Content-Length) gets a 413 before the broker has read it all, and the
broker still answers a normal request afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portal_support import _wait_for
from processes import free_port

pytestmark = pytest.mark.slow
CHUNK = b"a=" + b"x" * (1024 * 1024 - 2)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "genoshare.demo.broker", "--port", str(port), "--data-dir", str(tmp_path)]
    process = subprocess.Popen([*command, "--redirect-uri", "http://127.0.0.1:1/cb"])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/.well-known/openid-configuration", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def endless() -> Iterator[bytes]:
    for _ in range(64):
        yield CHUNK


@pytest.mark.parametrize("path", ["/token", "/authorize"])
def test_a_huge_form_is_refused_unread(broker: str, path: str) -> None:
    with httpx.Client(timeout=30) as client:
        declared = client.post(f"{broker}{path}", content=b"x" * (8 * 1024 * 1024))
        assert declared.status_code == 413, declared.text[:200]
        try:
            streamed = client.post(f"{broker}{path}", content=endless())
            assert streamed.status_code == 413, streamed.text[:200]
        except httpx.WriteError:
            pass  # the broker answered and closed before the rest was sent: refused unread
        normal = client.post(f"{broker}/token", data={"grant_type": "authorization_code", "client_id": "nobody"})
        assert normal.status_code == 401 and normal.json()["error"] == "invalid_client"
