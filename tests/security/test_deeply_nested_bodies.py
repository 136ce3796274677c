"""POST bodies of JSON nested deeper than the parser's recursion limit, sent to every POST route of ``genoshare serve``.

Red team (issue 12 follow-up): ``{"query": [[[...]]]}`` nested 1,000 deep was a 500 with a
``RecursionError`` traceback in the log on htsget ``POST /htsget/{reads,variants}/{id}``; every route must
answer it as the bad input it is, with a 4xx and an API-shaped body.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from sqlite_node import sqlite_node

from genoshare.node import Node

__all__ = ["sqlite_node"]

ROUTES = (
    "/htsget/reads/any.reads",
    "/htsget/variants/any.variants",
    "/api/individuals",
    "/api/g_variants",
    "/ga4gh/drs/v1/objects",
    "/ga4gh/drs/v1/objects/any.object/access/https",
    "/governance/requests",
)


def test_deeply_nested_json_is_bad_input_everywhere(sqlite_node: Node, serve: Any) -> None:
    server = serve(sqlite_node.settings.data_dir, {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url})
    body = b'{"query": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for route in ROUTES:
            answer = http.post(route, content=body, headers={"Content-Type": "application/json"})
            assert 400 <= answer.status_code < 500, f"{route}: {answer.status_code} {answer.text[:200]}"
            assert answer.json(), route
    assert "Traceback" not in server.stop()


def test_a_bearer_token_nested_too_deep_is_refused_everywhere(sqlite_node: Node, serve: Any) -> None:
    """The token's payload is read (unverified, to find whose keys verify it) before anything else."""
    server = serve(sqlite_node.settings.data_dir, {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url})
    nested = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).rstrip(b"=").decode()
    header = base64.urlsafe_b64encode(b'{"alg": "RS256", "typ": "JWT"}').rstrip(b"=").decode()
    headers = {"Authorization": f"Bearer {header}.{nested}.c2ln"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for route in (
            "/api/individuals",
            "/ga4gh/drs/v1/objects/any",
            "/governance/requests",
            "/network/api/individuals",
        ):
            answer = http.get(route, headers=headers)
            assert answer.status_code == 401, f"{route}: {answer.status_code} {answer.text[:200]}"
    assert "Traceback" not in server.stop()
