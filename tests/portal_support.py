"""A served demo node with its demo passport broker, for the portal's browser tests and its security tests.

``genoshare serve`` and ``python -m genoshare.demo.broker`` each run in their own process on a free loopback
port; the node's portal signs people in at the broker by OpenID Connect, for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from genoshare.demo.broker import ACCOUNTS
from genoshare.demo.setup import DemoNode, prepare_demo

from processes import Server, free_port, run_cli

if TYPE_CHECKING:
    from browser import Tab

ROLES = {"researcher": ACCOUNTS[0].subject, "committee": ACCOUNTS[1].subject, "steward": ACCOUNTS[2].subject}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: The line ``genoshare consent link`` prints: the link, and the secret in it.
LINK = re.compile(r"consent link for \S+: (\S+/consent/([A-Za-z0-9_-]+))")


@dataclass
class PortalNode:
    """The demo node as served: its URL, the demo broker's, and what ``prepare_demo`` made."""

    demo: DemoNode
    server: Server
    broker_url: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def data_dir(self) -> Path:
        return self.demo.settings.data_dir

    def sign_in(self, tab: Tab, role: str, next: str = "/portal/") -> None:
        """Sign ``tab`` in as the demo account of ``role`` through the broker (OIDC with PKCE, for real)."""
        tab.page.goto(f"{self.url}/portal/signin/oidc?login_hint={ROLES[role]}&next={next}")
        tab.page.wait_for_url(f"{self.url}{next}*")

    def sign_in_http(self, client: httpx.Client, role: str) -> list[str]:
        """The same sign-in with an HTTP client following each redirect itself; returns the addresses seen."""
        seen = []
        response = client.get(f"{self.url}/portal/signin/oidc", params={"login_hint": ROLES[role]})
        while response.is_redirect:
            location = response.headers["location"]
            seen.append(location)
            response = client.get(location if "://" in location else f"{self.url}{location}")
        assert response.status_code == 200, response.text
        return seen


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo broker exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within 20 s")


@contextmanager
def portal_node(directory: Path, env: dict[str, str] | None = None, prefix: str = "") -> Iterator[PortalNode]:
    """``genoshare demo``'s node in ``directory`` with its broker, until the block ends; ``env``: the server's.

    ``prefix``: served with ``--root-path`` behind a proxy that strips it (the public URL and the broker's
    redirect address carry it)."""
    data_dir = directory / "node"
    broker_url = f"http://127.0.0.1:{free_port()}"
    # The URL the server will have is set by Server (GENOSHARE_PUBLIC_URL); this one only seeds the config.
    demo = prepare_demo(data_dir, "http://127.0.0.1:8080", broker_url=broker_url)
    server = Server(data_dir, env or {}, args=["--root-path", prefix] if prefix else [], prefix=prefix)
    command = [sys.executable, "-m", "genoshare.demo.broker", "--port", broker_url.rsplit(":", 1)[1]]
    command += ["--data-dir", str(data_dir), "--redirect-uri", f"{server.url}{prefix}/portal/signin/callback"]
    broker = subprocess.Popen(command, env=os.environ.copy())
    try:
        _wait_for(f"{broker_url}/.well-known/openid-configuration", broker)
        yield PortalNode(demo, server, broker_url)
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        server.stop()


def issue_link(node: PortalNode, dataset: str, pseudonym: str) -> tuple[str, str]:
    """``genoshare consent link`` as the steward runs it; returns the link and its secret."""
    result = run_cli(
        "consent",
        "link",
        dataset,
        pseudonym,
        "--data-dir",
        str(node.data_dir),
        env={"GENOSHARE_PUBLIC_URL": node.url, "COLUMNS": "300"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = LINK.search(result.stdout)
    assert found, result.stdout
    return found.group(1), found.group(2)
