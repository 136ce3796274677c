"""Variant lookups at positions no genome has, against ``genoshare serve`` (``GET /clinical/variants``).

The lookup reads VCF coordinates and HGVS itself, not through the Beacon's request parser, so its
positions had no upper bound: one past what a database integer holds reached SQLite (and PostgreSQL) as
a 500 with a traceback. Every such position must be the caller's bad input, in one line.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlite_node import sqlite_node

from genoshare.node import Node

__all__ = ["sqlite_node"]

HUGE = "9" * 30


def test_a_position_past_any_chromosome_is_bad_input(sqlite_node: Node, serve: Any) -> None:
    server = serve(sqlite_node.settings.data_dir, {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for variant in (f"1-{HUGE}-A-G", f"NC_000001.11:g.{HUGE}A>G", f"NC_012920.1:m.{HUGE}A>G", "1-2147483648-A-G"):
            answer = http.get("/clinical/variants", params={"variant": variant})
            assert answer.status_code == 400, (variant, answer.status_code, answer.text[:300])
            assert "position" in answer.text.lower(), answer.text[:300]
            page = http.get("/portal/clinical/variants", params={"variant": variant})
            assert page.status_code == 400, (variant, page.status_code)
        assert http.get("/clinical/variants", params={"variant": "1-12345-A-G"}).status_code == 200
    assert "Traceback" not in server.stop()
