"""One caller turning ``/network/api`` into many requests to every peer, against ``genoshare serve``.

Every network query asks every peer: a caller who keeps many in flight at once makes the hub keep each peer
that busy for them. The hub lets one client address have ``network.max_queries_per_caller`` network answers
in progress; another one at the same time is a 429 (a Beacon error with Retry-After), and once one of them
has answered, the caller is let in again. The peer here accepts connections and never answers, so each
admitted query holds its place until the deadline. Access requests across the network
(``/network/governance/requests``) fan out too, and are held to the same places.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from claimed_issuer import unsigned_passport
from sqlite_node import sqlite_node

from genoshare.node import Node

__all__ = ["sqlite_node"]

DEADLINE = 4.0
ISSUER = "https://issuer.example"


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """A peer that takes connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_one_caller_cannot_hold_more_network_queries_than_its_share(
    sqlite_node: Node, serve: Any, silent_peer: str
) -> None:
    network = {"peers": [{"url": silent_peer, "name": "silent"}], "deadline_seconds": DEADLINE}
    network["max_queries_per_caller"] = 2
    server = serve(
        sqlite_node.settings.data_dir,
        {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url, "GENOSHARE_NETWORK": json.dumps(network)},
    )
    url = f"{server.url}/network/api/individuals"

    def ask(_: int) -> httpx.Response:
        return httpx.get(url, timeout=30)

    # Five at once from one address: two are let in (each waits out the silent peer), the rest refused now.
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(ask, range(5)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(429) >= 3, codes
    assert 429 not in codes[:2], codes
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["errorCode"] == 429 and "in progress" in error["errorMessage"], error
    admitted = [answer.json() for answer in answers if answer.status_code != 429]
    for answer in admitted:
        nodes = {node["name"]: node for node in answer["info"]["network"]["nodes"]}
        assert nodes["silent"]["status"] == "timeout", nodes
    # Their places are given back: the caller is let in again.
    again = httpx.get(url, timeout=30)
    assert again.status_code == 200, again.text[:2000]


def test_network_access_requests_are_held_to_the_same_share(sqlite_node: Node, serve: Any, silent_peer: str) -> None:
    """Listing or submitting access requests asks every peer trusting the passport: five at once, two let in."""
    network = {"peers": [{"url": silent_peer, "name": "silent", "trusts": [ISSUER]}], "deadline_seconds": DEADLINE}
    network["max_queries_per_caller"], network["write_deadline_seconds"] = 2, DEADLINE
    server = serve(
        sqlite_node.settings.data_dir,
        {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url, "GENOSHARE_NETWORK": json.dumps(network)},
    )
    url = f"{server.url}/network/governance/requests"
    headers = {"Authorization": f"Bearer {unsigned_passport(ISSUER)}"}
    body = {
        "datasets": [f"{silent_peer}/datasets/cohort"],
        "purpose": {"primary": "GRU"},
        "project_title": "P",
        "institution": "I",
    }

    def ask(index: int) -> httpx.Response:
        if index % 2:
            return httpx.post(url, json=body, headers=headers, timeout=30)
        return httpx.get(url, headers=headers, timeout=30)

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(ask, range(5)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(429) >= 3 and 429 not in codes[:2], codes
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["status_code"] == 429 and "in progress" in refused.json()["msg"], refused.text
    for answer in answers:
        if answer.status_code != 429:  # the silent peer's part ran out of time; nothing else was waited for
            listed = answer.json().get("nodes")
            parts = listed or answer.json().get("requests")
            # A request it was sent may have been made there: not a timeout (a no), but unknown.
            expected = "timeout" if listed else "unknown"
            assert {part["node"]: part["status"] for part in parts}["silent"] == expected, parts
    assert httpx.get(url, headers=headers, timeout=30).status_code == 200
