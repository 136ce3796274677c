"""A node on SQLite alone, for attacks that never depend on which database the node uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genoshare.node import Node, init_node
from genoshare.settings import load_settings


@pytest.fixture
def sqlite_node(tmp_path: Path) -> Iterator[Node]:
    """No passports are trusted: these attacks come from anonymous callers (or never reach the application)."""
    node = init_node(load_settings(tmp_path / "node", database_url=f"sqlite:///{tmp_path / 'node.db'}"))
    yield node
    node.close()
