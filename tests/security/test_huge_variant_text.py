"""Variant text far longer than any variant, given to the clinical lookup's command line and its API.

Against the old code, ``genoshare clinical lookup`` took minutes on an HGVS name padded with 100 000
zeros (its patterns backtrack over runs of digits) and printed a ValueError traceback for a position of
5000 digits (``int`` refuses over 4300). Each must be one line of bad input, at once; the API and the
portal page bound the text before it reaches the parser.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlite_node import sqlite_node

from genoshare.node import Node

from processes import run_cli

__all__ = ["sqlite_node"]

HUGE = ("NC_0" + "0" * 100_000 + "1.11:g.1A>G", "1-" + "9" * 5000 + "-A-G", "NC_000001.11:g." + "9" * 5000 + "A>G")


def test_huge_variant_text_is_one_line_of_bad_input_at_once(sqlite_node: Node, serve: Any) -> None:
    env = {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url}
    data_dir = str(sqlite_node.settings.data_dir)
    for variant in HUGE[:2]:
        started = time.monotonic()
        result = run_cli("clinical", "lookup", variant, "--data-dir", data_dir, env=env, timeout=120)
        assert time.monotonic() - started < 30, "the lookup spent its time on the text"
        assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr, result.stderr[-500:]
        assert "at most 1000 characters" in result.stdout + result.stderr
    server = serve(sqlite_node.settings.data_dir, env)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for variant in HUGE[1:]:
            answer = http.get("/clinical/variants", params={"variant": variant})
            assert answer.status_code in (400, 422), (answer.status_code, answer.text[:300])
    assert "Traceback" not in server.stop()
