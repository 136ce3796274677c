"""Asks every peer of the network at once, each within its own deadline, and says what each one did.

Each peer has its own ``httpx.AsyncClient`` (per event loop), made on first use and kept until shutdown, so
its connections stay alive between answers; all of them share one TLS context. One pool per peer, not one
for all: httpcore looks over every connection of a pool for each request it sends, so one shared pool made
each fan-out cost the number of peers squared (profiled: a third of the hub's CPU with 10 peers). Nothing is
cached between requests: every answer is asked for its caller, with the caller's passport only where it may
go.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from genoshare import __version__
from genoshare.access.passports import token_issuer
from genoshare.access.privacy import RateLimited
from genoshare.network.merge import (
    ANSWERED,
    ERROR,
    INVALID,
    REFUSED,
    TIMEOUT,
    UNREACHABLE,
    InvalidAnswer,
    NodeAnswer,
    read_answer,
)
from genoshare.network.peers import (
    NotAllowed,
    PeerDirectory,
    PeerNode,
    TooLarge,
    checked_address,
    describe,
    parse_json,
    read_limited,
)
from genoshare.settings import NetworkSettings

#: A Beacon answer is small: a full page (1,000 records of a few KiB) fits; a longer one is not read on and
#: is reported as ``invalid`` (a peer cannot make the hub hold much for it, times the callers asking).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: How long a registry's Beacon's checked address is used before its name is resolved (and checked) again.
ADDRESS_SECONDS = 60.0
#: Statuses with which a peer refuses the request (the caller's passport, or the caller's rate).
REFUSING = {401, 403, 429}
#: What came of a write that went out and got no usable answer (none in time, the connection lost, a 5xx):
#: the peer may have done it. Never told as a timeout or a failure, which a researcher would read as a no.
UNKNOWN = "unknown"
MAY_HAVE_BEEN_MADE = (
    "it may have been made there; sending it again with the same Idempotency-Key is safe (the node answers "
    "with the request it made, never makes a second one)"
)


def passport_for(peer: PeerNode, token: str | None) -> tuple[str | None, str]:
    """The token to send to ``peer`` and what the answer tells about it.

    Only to a peer that trusts the token's issuer (or issued it): any other peer could not use it, and
    would hold a credential good at the nodes that do trust it.
    """
    if token is None:
        return None, "none given"
    issuer = token_issuer(token)
    if issuer is not None and (issuer in peer.trusts or issuer == peer.url):
        return token, "sent"
    return None, f"not sent: the node does not trust its issuer ({issuer or 'unknown'})"


@dataclass(frozen=True)
class PeerCall:
    """What came of one request to a peer: ``ANSWERED`` with its JSON ``document``, or why not."""

    status: str
    reason: str | None
    document: Any
    passport: str
    seconds: float
    http_status: int | None = None


class NetworkService:
    def __init__(self, settings: NetworkSettings, own_url: str) -> None:
        self.settings = settings
        self.directory = PeerDirectory(settings, own_url)
        self._clients: dict[tuple[int, str], httpx.AsyncClient] = {}
        #: One TLS context (the CA bundle, read once) for every peer's client: each client making its own
        #: cost the first answer after a start 0.1-0.2 s per peer on a busy machine, past a short deadline.
        self._tls: ssl.SSLContext | None = None
        self._in_progress: dict[str, int] = {}
        #: (host, port, private_networks) -> (until when, the checked address to connect to).
        self._addresses: dict[tuple[str, int, bool], tuple[float, str]] = {}

    @property
    def deadline(self) -> float:
        """The longest any peer is waited for."""
        return max([self.settings.deadline_seconds, *(p.deadline for p in self.directory.configured)])

    def http(self, peer: PeerNode | None = None) -> httpx.AsyncClient:
        """The client for ``peer`` (or for registries) of the running event loop (a server has one loop)."""
        key = (id(asyncio.get_running_loop()), peer.url if peer else "")
        client = self._clients.get(key)
        if client is None:
            if self._tls is None:
                self._tls = httpx.create_ssl_context(trust_env=False)
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
            headers = {"User-Agent": f"genoshare/{__version__} (Beacon network)", "Accept": "application/json"}
            client = httpx.AsyncClient(
                limits=limits, headers=headers, follow_redirects=False, trust_env=False, verify=self._tls
            )
            self._clients[key] = client
        return client

    @asynccontextmanager
    async def admitted(self, caller: str) -> AsyncIterator[None]:
        """Hold one of ``caller``'s places for a network answer, or refuse (429) when all are taken.

        One request to the hub becomes a request to every peer: without a bound, one caller could keep each
        peer as busy as the hub lets in. The count is of this server process (one event loop), per address.
        """
        limit = self.settings.max_queries_per_caller
        if self._in_progress.get(caller, 0) >= limit:
            raise RateLimited(
                f"{limit} network queries of yours are already in progress; ask again when one has answered",
                retry_after=self.deadline,
            )
        self._in_progress[caller] = self._in_progress.get(caller, 0) + 1
        try:
            yield
        finally:
            left = self._in_progress.pop(caller) - 1
            if left:
                self._in_progress[caller] = left

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def peers(self) -> tuple[list[PeerNode], list[str]]:
        return await self.directory.peers(self.http())

    async def ask(
        self, path: str, *, query: str = "", body: bytes | None = None, token: str | None = None
    ) -> tuple[list[NodeAnswer], list[str]]:
        """Every peer's answer to ``<beacon>/<path>?<query>`` (POST with ``body`` if given), in peer order."""
        peers, problems = await self.peers()
        answers = await asyncio.gather(*(self._ask_one(peer, path, query, body, token) for peer in peers))
        return list(answers), problems

    async def ask_about(self, path: str) -> tuple[list[tuple[PeerNode, PeerCall]], list[str]]:
        """Every peer's answer to the informational ``<beacon>/<path>`` (``map``, ...), asked without a passport.

        What a Beacon says about itself is the same for every caller: no token needs to travel for it.
        """
        peers, problems = await self.peers()
        calls = await asyncio.gather(*(self.call(peer, f"{peer.beacon_url}/{path}", None, None) for peer in peers))
        return list(zip(peers, calls, strict=True)), problems

    async def _ask_one(
        self, peer: PeerNode, path: str, query: str, body: bytes | None, token: str | None
    ) -> NodeAnswer:
        url = f"{peer.beacon_url}/{path}" if path else peer.beacon_url
        query_url = f"{url}?{query}" if query and body is None else url
        call = await self.call(peer, f"{url}?{query}" if query else url, body, token)
        status, reason, result = call.status, call.reason, None
        if status == ANSWERED:
            try:
                result = read_answer(call.document)
            except InvalidAnswer as error:
                status, reason = INVALID, f"not a Beacon v2 answer: {error}"
        return NodeAnswer(
            peer.name, peer.url, query_url, status, call.seconds, reason, result, call.passport, call.http_status
        )

    async def call(self, peer: PeerNode, url: str, body: bytes | None, token: str | None) -> PeerCall:
        """One JSON request to a peer within its deadline (POST if ``body``), told as what came of it."""
        return await self._exchange(peer, url, body, token, peer.deadline, None)

    async def submit(self, peer: PeerNode, url: str, body: bytes, token: str | None, key: str) -> PeerCall:
        """POST a write to a peer under idempotency ``key``, within ``write_deadline_seconds`` (not a query's).

        Once the request has gone out, a write with no usable answer is ``UNKNOWN``, never a timeout or a
        failure: the peer may have done it, and sending it again under the same key is safe (the peer
        answers with what it made the first time). One that never went out says so (nothing was made).
        """
        return await self._exchange(peer, url, body, token, self.settings.write_deadline_seconds, key)

    async def _exchange(
        self, peer: PeerNode, url: str, body: bytes | None, token: str | None, deadline: float, key: str | None
    ) -> PeerCall:
        sent, passport = passport_for(peer, token)
        headers = {"Authorization": f"Bearer {sent}"} if sent else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        started = time.perf_counter()
        went_out = False

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal went_out
            went_out = went_out or event.endswith(".send_request_headers.started")

        def outcome(status: str, reason: str | None = None, document: Any = None, code: int | None = None) -> PeerCall:
            if key is not None and went_out and status not in (ANSWERED, REFUSED) and not (code and code < 500):
                # A write that may have been done: what happened is told, and that it may have been done.
                status, reason = UNKNOWN, f"sent, {reason}: {MAY_HAVE_BEEN_MADE}"
            elif key is not None and not went_out and status in (TIMEOUT, UNREACHABLE):
                reason = f"not sent ({reason}): nothing was made"
            return PeerCall(status, reason, document, passport, time.perf_counter() - started, code)

        try:
            async with asyncio.timeout(deadline):  # unlike wait_for, no task of its own per request
                code, document = await self._request(peer, url, body, headers, deadline, trace if key else None)
        except (TimeoutError, httpx.TimeoutException):
            return outcome(TIMEOUT, f"{'no answer' if went_out else 'no connection'} within {deadline:g} s")
        except httpx.ConnectError as error:
            return outcome(UNREACHABLE, describe(error))
        except TooLarge as error:
            return outcome(INVALID, f"not a Beacon answer: {error}")
        except NotAllowed as error:
            return outcome(UNREACHABLE, f"not asked: {error}")
        except (httpx.HTTPError, ValueError) as error:
            if went_out and key is not None:
                return outcome(ERROR, f"then no answer ({describe(error).rstrip('.')})")
            return outcome(ERROR, describe(error))
        if code in (200, 201):
            if document is None:
                return outcome(INVALID, "the answer is not JSON")
            return outcome(ANSWERED, None, document)
        message = _error_message(document)
        reason = f"HTTP {code}" + (f": {message}" if message else "")
        return outcome(REFUSED if code in REFUSING else ERROR, reason, None, code)

    async def _request(
        self,
        peer: PeerNode,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: float,
        trace: Callable[[str, dict[str, Any]], Awaitable[None]] | None,
    ) -> tuple[int, Any]:
        """The status and the parsed JSON body (None if it is not JSON); ``trace`` is told httpcore's steps."""
        method = "GET" if body is None else "POST"
        timeout = httpx.Timeout(deadline)
        extensions: dict[str, Any] = {"trace": trace} if trace else {}
        if peer.private_networks is not None:
            url, headers, pinned = await self._pinned(url, headers, peer.private_networks)
            extensions.update(pinned)
        client = self.http(peer)
        async with client.stream(
            method, url, content=body, headers=headers, timeout=timeout, extensions=extensions
        ) as response:
            raw = await read_limited(response, MAX_ANSWER_BYTES)
            status = response.status_code
        try:
            return status, parse_json(raw)
        except ValueError:  # UnicodeDecodeError and too deep included
            return status, None

    async def _pinned(
        self, url: str, headers: dict[str, str], private_networks: bool
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """``url`` at the address its host was checked at (a registry's Beacon: ``peers.checked_address``).

        The request names the host (``Host``, and TLS's server name, which the certificate is checked
        against) but connects to the checked address, not to whatever the name resolves to by then. A
        checked address is kept for a minute: a name's answers are asked again, and checked, after that.
        """
        parsed = httpx.URL(url)
        host, port = parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)
        key = (host, port, private_networks)
        kept = self._addresses.get(key)
        if kept is None or kept[0] < time.monotonic():
            kept = (time.monotonic() + ADDRESS_SECONDS, await checked_address(host, port, private_networks))
            self._addresses[key] = kept
        address = kept[1]
        if address == host:
            return url, headers, {}
        pinned = str(parsed.copy_with(host=address))
        return pinned, {**headers, "Host": parsed.netloc.decode("ascii")}, {"sni_hostname": host}


def _error_message(document: Any) -> str | None:
    """The message of a ``beaconErrorResponse`` (or a few other error shapes), if the body has one."""
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if isinstance(error, dict) and isinstance(error.get("errorMessage"), str):
        return str(error["errorMessage"])[:500]
    for key in ("message", "msg", "detail", "title"):
        if isinstance(document.get(key), str):
            return str(document[key])[:500]
    return None
