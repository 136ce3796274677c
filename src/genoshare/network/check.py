"""How each peer is doing, for operators (``genoshare network check``).

Its service-info, Beacon map and entry types, health and latency, asked of every peer at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from genoshare.network.merge import ANSWERED
from genoshare.network.peers import PeerNode
from genoshare.network.service import NetworkService


@dataclass
class PeerHealth:
    peer: PeerNode
    healthy: bool = False
    #: Milliseconds of the service-info round trip.
    latency_ms: float | None = None
    service: dict[str, Any] = field(default_factory=dict)
    entry_types: list[str] = field(default_factory=list)
    #: Entry type -> its root URL, from the Beacon map.
    endpoints: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.peer.name,
            "url": self.peer.url,
            "beaconUrl": self.peer.beacon_url,
            "source": self.peer.source,
            "trusts": sorted(self.peer.trusts),
            "healthy": self.healthy,
            "latencyMs": None if self.latency_ms is None else round(self.latency_ms, 1),
            "serviceInfo": self.service,
            "entryTypes": self.entry_types,
            "endpoints": self.endpoints,
            "problems": self.problems,
        }


class PeerProblem(Exception):
    """One of a peer's answers could not be used: why, as a network answer would say it."""


async def check_peer(network: NetworkService, peer: PeerNode) -> PeerHealth:
    health = PeerHealth(peer)

    async def get(path: str) -> Any:
        # As a network answer asks: within the peer's deadline, and a registry's Beacon at its checked address.
        call = await network.call(peer, f"{peer.beacon_url}/{path}", None, None)
        if call.status != ANSWERED:
            raise PeerProblem(f"{call.status}: {call.reason}")
        return call.document

    started = time.perf_counter()
    try:
        info = await get("service-info")
        health.latency_ms = (time.perf_counter() - started) * 1000
    except PeerProblem as error:
        health.problems.append(f"service-info: {error}")
        return health
    if isinstance(info, dict):
        kind = info["type"] if isinstance(info.get("type"), dict) else {}
        organization = info["organization"] if isinstance(info.get("organization"), dict) else {}
        health.service = {
            "id": info.get("id"),
            "name": info.get("name"),
            "type": f"{kind.get('group')}:{kind.get('artifact')}:{kind.get('version')}",
            "version": info.get("version"),
            "organization": organization.get("name"),
        }
    else:
        health.problems.append("service-info: not a JSON object")
    for path in ("map", "entry_types"):
        try:
            document = await get(path)
        except PeerProblem as error:
            health.problems.append(f"{path}: {error}")
            continue
        response = document.get("response") if isinstance(document, dict) else None
        if path == "map" and isinstance(response, dict) and isinstance(response.get("endpointSets"), dict):
            health.endpoints = {
                str(name): str(entry.get("rootUrl"))
                for name, entry in response["endpointSets"].items()
                if isinstance(entry, dict)
            }
        elif path == "entry_types" and isinstance(response, dict) and isinstance(response.get("entryTypes"), dict):
            health.entry_types = sorted(str(name) for name in response["entryTypes"])
        else:
            health.problems.append(f"{path}: not a Beacon v2 {path} response")
    health.healthy = not health.problems
    return health


async def check_network(network: NetworkService) -> tuple[list[PeerHealth], list[str]]:
    """Every peer's health, and the problems reading the registries."""
    try:
        peers, problems = await network.peers()
        return list(await asyncio.gather(*(check_peer(network, peer) for peer in peers))), problems
    finally:
        await network.close()
