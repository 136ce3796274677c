"""Fixtures for the portal tests: a demo node served by ``genoshare serve``, its demo broker, and Chromium.

One node, one broker process and one browser per test module (Chromium is slow to start on two shared
cores); each test opens its own browser contexts (``tab``), so cookies never leak between tests or people.
Other portal test modules reuse these fixtures as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from genoshare.demo.broker import ACCOUNTS
from genoshare.demo.setup import DemoNode, prepare_demo

from browser import Tab, launch, open_tab
from processes import Server, free_port

ROLES = {"researcher": ACCOUNTS[0].subject, "committee": ACCOUNTS[1].subject, "steward": ACCOUNTS[2].subject}


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


@pytest.fixture(scope="module")
def portal_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    """``genoshare demo``'s node with its broker, each in its own process on a free loopback port."""
    data_dir = tmp_path_factory.mktemp("portal") / "node"
    broker_url = f"http://127.0.0.1:{free_port()}"
    # The URL the server will have is set by Server (GENOSHARE_PUBLIC_URL); this one only seeds the config.
    demo = prepare_demo(data_dir, "http://127.0.0.1:8080", broker_url=broker_url)
    server = Server(data_dir, {})
    broker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genoshare.demo.broker",
            "--port",
            broker_url.rsplit(":", 1)[1],
            "--data-dir",
            str(data_dir),
            "--redirect-uri",
            f"{server.url}/portal/signin/callback",
        ],
        env=os.environ.copy(),
    )
    try:
        _wait_for(f"{broker_url}/.well-known/openid-configuration", broker)
        yield PortalNode(demo, server, broker_url)
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Callable[..., Tab]]:
    """Opens browser contexts (``tab()``, ``tab(phone=True)``, ``tab(locale="fr-FR")``), closed after the test."""
    opened: list[Tab] = []

    def make(**options: object) -> Tab:
        new = open_tab(browser, **options)  # type: ignore[arg-type]
        opened.append(new)
        return new

    yield make
    for each in opened:
        each.close()
