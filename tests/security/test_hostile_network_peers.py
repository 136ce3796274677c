"""A Beacon network's peers and service registry turned hostile, against ``genoshare serve``'s ``/network/api``.

One HTTP server on loopback plays every bad peer: one answers JSON nested far past any parser's recursion
limit, two answer more than a Beacon answer may hold (one says so in its Content-Length, one does not), one
redirects to another host (to collect the passport there), and a service registry lists its Beacons inside
nested JSON too. Each must be named in the
network answer as the failure it is, within the deadline, the healthy parts still answered; the passport
must never reach the redirect's target. A second registry lists Beacons where none can be (a cloud's
metadata service, an address with a query or a user): none of them is asked, and the answer says so.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from claimed_issuer import unsigned_passport
from hostile_server import NESTED, Hostile, hostile
from sqlite_node import sqlite_node

from genoshare.node import Node

__all__ = ["hostile", "sqlite_node"]

ISSUER = "https://issuer.example"


def test_hostile_peers_and_registries_are_named_never_fatal(sqlite_node: Node, serve: Any, hostile: str) -> None:
    names = ("nested", "nested-error", "huge", "large", "redirect")
    peers = [{"url": f"{hostile}/{name}", "name": name, "trusts": [ISSUER]} for name in names]
    # The listing registry's "fine" Beacon is on loopback, as every test server: the operator allows that.
    listing = {"url": f"{hostile}/listing", "trusts": [ISSUER], "private_networks": True}
    registries = [{"url": f"{hostile}/registry", "trusts": [ISSUER]}, listing]
    network = {"peers": peers, "registries": registries}
    network["deadline_seconds"] = 5
    server = serve(
        sqlite_node.settings.data_dir,
        {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url, "GENOSHARE_NETWORK": json.dumps(network)},
    )
    answer = httpx.get(f"{server.url}/network/api/individuals", timeout=30)
    assert answer.status_code == 200, answer.text[:3000]
    document = answer.json()
    nodes = {node["name"]: node for node in document["info"]["network"]["nodes"]}
    for name in names:
        assert nodes[name]["status"] != "answered", (name, nodes[name])
        assert nodes[name].get("reason"), (name, nodes[name])
    assert "larger than" in nodes["huge"]["reason"]
    # 10 MiB: far more than a Beacon answer, though less than what the hub once read (32 MiB) before refusing.
    assert nodes["large"]["status"] == "invalid", nodes["large"]
    assert "larger than 8388608 bytes" in nodes["large"]["reason"], nodes["large"]
    problems = json.dumps(document["info"]["network"])
    assert "registry" in problems and "cannot be read" in problems, problems[:2000]
    # The listing registry's Beacons: only the one at an ordinary address is asked; the others are named.
    assert "fine" in nodes
    for refused in ("metadata", "metadata-v6", "query", "userinfo"):
        assert refused not in nodes and f"{refused} (" in problems, (refused, problems[:2000])
    # With a passport every peer trusts (the hub itself does not): it goes to the peers, and no further.
    passport = unsigned_passport(ISSUER)
    refused = httpx.get(
        f"{server.url}/network/api/individuals", headers={"Authorization": f"Bearer {passport}"}, timeout=30
    )
    assert refused.status_code == 502, refused.text[:3000]
    for name in names:
        assert f"{name}: " in refused.json()["error"]["errorMessage"], name
    assert "service registry" in refused.json()["error"]["errorMessage"], "the unread registry goes unsaid"
    stolen = [path for path, _ in Hostile.seen if path.startswith("/steal")]
    assert not stolen, "a peer's redirect was followed"
    sent = {path.split("/")[1] for path, authorization in Hostile.seen if authorization == f"Bearer {passport}"}
    assert sent == {*names, "fine"}, sent
    assert not [path for path, _ in Hostile.seen if path.startswith(("/queried", "/userinfo"))]
    # And a caller's own body nested too deep, on the network's POST routes: bad input, asked of no one.
    asked = len(Hostile.seen)
    deep = b'{"query": ' + NESTED + b"}"
    for route in ("/network/api/individuals", "/network/requests"):
        bad = httpx.post(f"{server.url}{route}", content=deep, headers={"Content-Type": "application/json"}, timeout=30)
        assert 400 <= bad.status_code < 500, (route, bad.status_code, bad.text[:300])
    assert len(Hostile.seen) == asked, "a body nested too deep was sent on to the peers"
    assert "Traceback" not in server.stop()
