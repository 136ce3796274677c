"""Fixtures for governance tests; the builders live in governance_support."""

from __future__ import annotations

from pathlib import Path

import pytest

from genoshare.node import Node

from governance_support import Cohort, make_cohort


@pytest.fixture
def cohort(node: Node, tmp_path: Path) -> Cohort:
    return make_cohort(node, tmp_path, ["DS:MONDO:0005015", "NPU"])
