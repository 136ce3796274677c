"""Who is in the network: the peers in ``genoshare.toml`` and the Beacons listed by GA4GH Service Registries.

A registry is read when first needed and again every ``registry_refresh_seconds``; if it cannot be read,
the Beacons it listed before stay, and the failure is told with every answer (never silently fewer peers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from genoshare.settings import NetworkSettings, Peer, ServiceRegistry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: The service-info ``type`` of a Beacon v2 (``artifact``; ``group`` ``org.ga4gh``).
BEACON_ARTIFACT = "beacon"
#: A registry's list is JSON of a few KiB per service: anything much larger is not a registry's answer.
MAX_REGISTRY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PeerNode:
    """A peer as the network asks it: where its Beacon is, which issuers' passports it may be sent."""

    url: str
    name: str
    beacon_url: str
    trusts: frozenset[str]
    deadline: float
    #: ``genoshare.toml``, or the registry that listed it.
    source: str = "genoshare.toml"
    #: Where its address may be (``checked_address``): None for a peer of ``genoshare.toml`` (the operator's
    #: word); for a registry's, False (public addresses only) or True (loopback and private ones too).
    private_networks: bool | None = None

    @classmethod
    def configured(cls, peer: Peer, deadline: float) -> PeerNode:
        return cls(
            url=peer.url,
            name=peer.name or peer.url.split("://", 1)[1],
            beacon_url=peer.beacon_url or f"{peer.url}/api",
            trusts=frozenset(peer.trusts),
            deadline=peer.deadline_seconds or deadline,
        )


@dataclass
class _Listed:
    read_at: float = -1e9
    peers: list[PeerNode] = field(default_factory=list)
    problem: str | None = None


class InvalidRegistry(ValueError):
    """A registry answered with something that is not a list of GA4GH services."""


def forbidden(address: IPAddress, private_networks: bool) -> str | None:
    """Why a registry may not send this node to ``address`` (None if it may).

    Never where no Beacon can be: link-local (a cloud's metadata service), unspecified, multicast. Never to
    loopback or private addresses (this machine, the institution's own network) unless the operator said
    the registry's Beacons are there (``private_networks``).
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local or address.is_unspecified or address.is_multicast:
        return "a link-local, unspecified or multicast address"
    if not private_networks and not address.is_global:
        return "a loopback or private address (the registry's private_networks is off)"
    return None


def unlistable(url: str, private_networks: bool) -> str | None:
    """Why a registry may not send this node to ``url`` as written (None if it may; names: ``checked_address``).

    A registry names where this node sends its callers' queries, bodies and passports: never with a user,
    query or fragment, by which a listing would choose the whole request a service on another path receives
    (``http://internal/admin/delete?x=`` + ``/individuals``), and never to a ``forbidden`` address.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) address"
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in url or "#" in url:
        return "an address with a user, a query or a fragment"
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    return forbidden(address, private_networks)


class NotAllowed(ValueError):
    """A registry's Beacon whose name resolves where the registry may not send this node: not asked."""


async def checked_address(host: str, port: int, private_networks: bool) -> str:
    """The address to connect to for ``host``: every address its name resolves to must be allowed.

    The connection then goes to that very address (``NetworkService`` pins it), so a name that resolves
    elsewhere the next time (DNS rebinding) gains nothing. ``NotAllowed``, or ``httpx.ConnectError`` when
    the name does not resolve.
    """
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        why = forbidden(literal, private_networks)
        if why is not None:
            raise NotAllowed(f"{host} is {why}")
        return host
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise httpx.ConnectError(f"cannot resolve {host} ({error})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        why = forbidden(ipaddress.ip_address(address), private_networks)
        if why is not None:
            raise NotAllowed(f"{host} resolves to {address}, {why}")
    if not addresses:
        raise httpx.ConnectError(f"cannot resolve {host}")
    return addresses[0]


def beacons_in(services: Any, registry: ServiceRegistry, deadline: float) -> tuple[list[PeerNode], list[str]]:
    """The Beacons of a registry's ``GET /services`` answer (``ExternalService`` items with a ``url``).

    Also the listed Beacons refused (``unlistable``), each with why, to be told with every answer.
    """
    if not isinstance(services, list):
        raise InvalidRegistry("its /services answer is not a list of services")
    found, refused = [], []
    for service in services:
        kind = service.get("type") if isinstance(service, dict) else None
        if not isinstance(kind, dict) or kind.get("artifact") != BEACON_ARTIFACT:
            continue
        url, name = service.get("url"), service.get("name")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            continue
        why = unlistable(url, registry.private_networks)
        if why is not None:
            refused.append(f"{str(name)[:100] if name else 'a Beacon'} ({why})")
            continue
        beacon_url = url.rstrip("/")
        found.append(
            PeerNode(
                url=beacon_url.removesuffix("/api"),
                name=name if isinstance(name, str) and name else beacon_url.split("://", 1)[1],
                beacon_url=beacon_url,
                trusts=frozenset(registry.trusts),
                deadline=deadline,
                source=registry.url,
                private_networks=registry.private_networks,
            )
        )
    return found, refused


class PeerDirectory:
    """The peers of one node; registries are shared state of the node, never of one caller."""

    def __init__(self, settings: NetworkSettings, own_url: str) -> None:
        self.settings = settings
        self.own_url = own_url.rstrip("/")
        self._listed = {registry.url: _Listed() for registry in settings.registries}
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> list[PeerNode]:
        return [PeerNode.configured(peer, self.settings.deadline_seconds) for peer in self.settings.peers]

    async def peers(self, http: httpx.AsyncClient) -> tuple[list[PeerNode], list[str]]:
        """Every peer (configured ones first; a Beacon listed twice is asked once) and the registries' problems."""
        if self.settings.registries:
            await self._refresh(http)
        peers: dict[str, PeerNode] = {}
        for peer in [*self.configured, *(p for listed in self._listed.values() for p in listed.peers)]:
            if peer.url != self.own_url and peer.beacon_url != f"{self.own_url}/api":
                peers.setdefault(peer.beacon_url, peer)
        problems = [
            f"service registry {url}: {listed.problem}" for url, listed in self._listed.items() if listed.problem
        ]
        return list(peers.values()), problems

    async def _refresh(self, http: httpx.AsyncClient) -> None:
        due = time.monotonic() - self.settings.registry_refresh_seconds
        stale = [r for r in self.settings.registries if self._listed[r.url].read_at < due]
        if not stale:
            return
        async with self._lock:
            stale = [r for r in stale if self._listed[r.url].read_at < due]
            await asyncio.gather(*(self._read(http, registry) for registry in stale))

    async def _read(self, http: httpx.AsyncClient, registry: ServiceRegistry) -> None:
        listed = self._listed[registry.url]
        try:
            services = await asyncio.wait_for(
                read_json(http, f"{registry.url}/services", MAX_REGISTRY_BYTES), self.settings.deadline_seconds
            )
            found, refused = beacons_in(services, registry, self.settings.deadline_seconds)
            listed.peers, resolved_elsewhere = await _resolved(found, self.settings.deadline_seconds)
            refused += resolved_elsewhere
            listed.problem = f"listed Beacons that are not asked: {'; '.join(refused)}" if refused else None
        except (TimeoutError, httpx.HTTPError, ValueError) as error:
            kept = f"; the {len(listed.peers)} Beacons it listed before are still asked" if listed.peers else ""
            listed.problem = f"cannot be read ({describe(error)}){kept}"
        listed.read_at = time.monotonic()


async def _resolved(peers: list[PeerNode], deadline: float) -> tuple[list[PeerNode], list[str]]:
    """The registry's Beacons whose names resolve where it may send this node, and the others, each with why.

    A name that does not resolve now is kept (it is asked, and checked again, at every connection).
    """

    async def why(peer: PeerNode) -> str | None:
        parts = urlsplit(peer.beacon_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            await asyncio.wait_for(checked_address(parts.hostname or "", port, bool(peer.private_networks)), deadline)
        except NotAllowed as error:
            return f"{peer.name} ({error})"
        except (TimeoutError, httpx.ConnectError):
            pass
        return None

    reasons = await asyncio.gather(*(why(peer) for peer in peers))
    kept = [peer for peer, reason in zip(peers, reasons, strict=True) if reason is None]
    return kept, [reason for reason in reasons if reason is not None]


async def read_json(http: httpx.AsyncClient, url: str, limit: int, **options: Any) -> Any:
    """GET ``url`` and parse its JSON body, refusing bodies over ``limit`` bytes; HTTP errors raise."""
    async with http.stream("GET", url, **options) as response:
        response.raise_for_status()
        body = await read_limited(response, limit)
    return parse_json(body)


def parse_json(raw: bytes) -> Any:
    """Another node's JSON; ``ValueError`` for anything else, nesting too deep for the parser included."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


class TooLarge(ValueError):
    """An answer longer than any answer of its kind: not read on (and, from a peer, not a Beacon answer)."""


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"answer larger than {limit} bytes (Content-Length {declared})")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def describe(error: BaseException) -> str:
    """One line saying what went wrong with a call to another node."""
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return "no answer in time"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect ({error or 'connection refused'})"
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return str(error) or type(error).__name__
