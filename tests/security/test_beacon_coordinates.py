"""Beacon coordinates no genome has (past any database integer), sent to ``genoshare serve``.

The clinical lookup had no bound on its positions and turned one past SQLite's integers into a 500; the
Beacon's own parser is attacked here the same way, by GET and POST, anonymously and with a grant, on
SQLite and PostgreSQL: an answer or a 400, never a 500.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from granted import Grantee, build_study

from genoshare.access.issuer import VisaIssuer
from genoshare.node import Node

HUGE = 10**30
QUERIES: list[dict[str, Any]] = [
    {"start": [HUGE]},
    {"start": [0, HUGE]},
    {"start": [1000], "end": [HUGE]},
    {"end": [HUGE]},
    {"start": [2**31], "referenceBases": "A", "alternateBases": "G"},
    {"start": [1000], "end": [2000], "variantMinLength": HUGE},
]


def as_get(query: dict[str, Any]) -> dict[str, str]:
    return {name: ",".join(map(str, value)) if isinstance(value, list) else str(value) for name, value in query.items()}


def test_coordinates_past_any_integer_are_answered_or_refused(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    build_study(node, tmp_path, individuals=3)
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    base = {"referenceName": "1", "assemblyId": "GRCh38"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        alice = Grantee(http, server.url, issuer, "alice")
        for headers in ({}, alice.headers):
            for query in QUERIES:
                for entry in ("g_variants", "individuals"):
                    got = http.get(f"/api/{entry}", params={**base, **as_get(query)}, headers=headers)
                    body = {"query": {"requestParameters": {**base, **query}}}
                    posted = http.post(f"/api/{entry}", json=body, headers=headers)
                    for answer in (got, posted):
                        assert answer.status_code in (200, 400), (entry, query, answer.status_code, answer.text[:300])
    assert "Traceback" not in server.stop()
