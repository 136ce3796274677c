"""A service registry sending the hub to this machine or the institution's own network, by name or address.

A registry is not the operator: the Beacons it lists are where the hub sends its callers' queries (and
passports). One listing Beacons on loopback, by a name that resolves there (``localhost``) or by an IPv4 or
IPv6 address, must have none of them asked unless the operator said the registry's Beacons are on private
networks (``private_networks = true``); with that said, the Beacon named is asked under its name. A name
that resolves somewhere else by the time the hub connects (DNS rebinding) is checked again at connection,
and the connection goes to the address checked.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hostile_server import Hostile, hostile
from sqlite_node import sqlite_node

from genoshare.network.merge import UNREACHABLE
from genoshare.network.peers import PeerNode
from genoshare.network.service import NetworkService
from genoshare.node import Node
from genoshare.settings import NetworkSettings

__all__ = ["hostile", "sqlite_node"]


def test_a_registry_cannot_send_the_hub_to_loopback_by_name_or_address(
    sqlite_node: Node, serve: Any, hostile: str
) -> None:
    port = hostile.rsplit(":", 1)[1]
    registries = [
        {"url": f"{hostile}/private-listing"},  # the operator said nothing about where its Beacons are
        {"url": f"http://localhost:{port}/listing", "private_networks": True},  # its "fine" one is on loopback
    ]
    network = {"registries": registries, "deadline_seconds": 5}
    server = serve(
        sqlite_node.settings.data_dir,
        {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url, "GENOSHARE_NETWORK": json.dumps(network)},
    )
    answer = httpx.get(f"{server.url}/network/api/individuals", timeout=30)
    assert answer.status_code == 200, answer.text[:2000]
    names = {node["name"] for node in answer.json()["info"]["network"]["nodes"]}
    problems = " ".join(answer.json()["info"]["network"]["problems"])
    for refused in ("named", "literal", "literal-v6"):
        assert refused not in names and f"{refused} (" in problems, (refused, problems)
    assert "localhost resolves to 127.0.0.1" in problems or "localhost resolves to ::1" in problems, problems
    assert not [path for path, _ in Hostile.seen if path.startswith(("/named", "/literal"))], Hostile.seen
    # With the operator's word, a registry's Beacon on loopback is asked.
    assert "fine" in names
    assert [path for path, _ in Hostile.seen if path.startswith("/fine/api/individuals")]
    assert "Traceback" not in server.stop()


def test_a_name_is_checked_again_when_the_hub_connects(hostile: str) -> None:
    """The hub connects to the address it checked, the name in ``Host``; a name listed when it resolved
    elsewhere, and resolving to loopback now, is not connected to."""
    port = int(hostile.rsplit(":", 1)[1])
    service = NetworkService(NetworkSettings(deadline_seconds=5), "https://hub.example")

    def peer(path: str, private_networks: bool) -> PeerNode:
        url = f"http://localhost:{port}/{path}"
        return PeerNode(url, path, f"{url}/api", frozenset(), 5, "registry", private_networks)

    async def ask() -> tuple[Any, Any]:
        try:
            refused = await service.call(peer("rebound", False), f"http://localhost:{port}/rebound/api", None, None)
            allowed = await service.call(peer("fine", True), f"http://localhost:{port}/fine/api/info", None, None)
            return refused, allowed
        finally:
            await service.close()

    refused, allowed = asyncio.run(ask())
    assert refused.status == UNREACHABLE and "localhost resolves to" in str(refused.reason), refused
    assert "loopback or private" in str(refused.reason)
    assert not [path for path, _ in Hostile.seen if path.startswith("/rebound")]
    assert allowed.http_status == 404  # the stand-in has no Beacon there: it was asked, under its name
    assert Hostile.hosts == [("/fine/api/info", f"localhost:{port}")]
