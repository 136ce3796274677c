"""The state the Beacon tests share (built by the ``world`` fixture in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from genoshare.node import Node


@dataclass
class World:
    node: Node
    client: TestClient
    vcf: Path
    individuals: Path
    #: VCF sample name -> pseudonym in dataset ``cohort``.
    pseudonyms: dict[str, str]
