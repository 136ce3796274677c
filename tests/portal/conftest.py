"""Fixtures for the portal tests: a demo node served by ``genoshare serve``, its demo broker, and Chromium.

One node, one broker process and one browser per test module (Chromium is slow to start on two shared
cores); each test opens its own browser contexts (``tab``), so cookies never leak between tests or people.
Other portal test modules reuse these fixtures as they are; they import ``PortalNode`` from ``portal_support``
(never from ``conftest``: every test directory has one, and which ``conftest`` module an import finds depends
on what pytest collected last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser

from browser import Tab, launch, open_tab
from portal_support import PortalNode
from portal_support import portal_node as start_portal_node


@pytest.fixture(scope="module")
def portal_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    """``genoshare demo``'s node with its broker, each in its own process on a free loopback port."""
    with start_portal_node(tmp_path_factory.mktemp("portal")) as node:
        yield node


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
