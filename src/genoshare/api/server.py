"""``genoshare serve``: uvicorn with limits that no request, slow or large, can get around.

uvicorn alone bounds none of what a client sends before its request reaches the application: httptools
keeps every header byte it is given (24 MB ``Authorization`` headers were parsed; ten unfinished 50 MiB
headers took 400 MB), no timer runs while headers trickle in (a byte a second held 2,000 sockets for as
long as the client liked: uvicorn's keep-alive timer restarts on every byte), and ``limit_concurrency``
answers 503 only once headers are complete, so the sockets of a slowloris never count.

:class:`GuardedHttpToolsProtocol` adds the three at the protocol level, where bytes arrive:

- the request line and headers may take ``max_header_bytes``; more is answered ``431`` and the connection
  closed (counted as they arrive, so what a client makes the server hold is the limit plus one read); a
  body may take ``max_body_bytes`` (declared or, chunked, as it arrives), more is answered ``413``;
- the whole request (line, headers and body: genoshare takes small bodies only) must have arrived
  ``request_timeout_seconds`` after the connection opens or its previous response ends, else the connection
  is closed (``408``), which also stops bodies sent a byte at a time;
- at most ``max_connections`` are open: one more drops the connection that has waited longest for its
  request (a slowloris socket before any real client), or, when every connection is busy being answered,
  is answered ``503`` and closed.

httptools rather than h11: h11's ``h11_max_incomplete_event_size`` bounds the size alone (a 400, not a
431) and nothing else, so a guard was needed either way; httptools is the C parser whose throughput the
benchmarks measure, and the guard costs one comparison per read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from genoshare.node import PRIVATE_UMASK, Node
from genoshare.operations.logs import configure as log_config
from genoshare.settings import Settings, load_settings

#: Descriptors a connection may hold: its socket and, while streaming, two files.
_PER_CONNECTION = 3
#: Descriptors kept for everything else: the database pool, logs, the listening socket, the event loop.
_RESERVED = 64


def _plain_response(status: bytes, message: str) -> bytes:
    body = message.encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body size limits, a request timeout and a connection cap."""

    #: Set per server by :func:`guarded_protocol`.
    settings: ClassVar[Settings]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._awaiting_request = True
        self._header_bytes = 0
        self._body_bytes = 0
        self._refusing = False
        self._waiting_since = time.monotonic()
        self._request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request()
        if len(self.connections) > self.settings.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return
        awaiting = self._awaiting_headers
        super().data_received(data)
        # Bytes that arrived while headers were incomplete and left them incomplete are all header bytes.
        if awaiting and self._awaiting_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.settings.max_header_bytes:
                self._refuse(
                    b"431 Request Header Fields Too Large",
                    f"request line and headers over {self.settings.max_header_bytes} bytes",
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._body_bytes = 0
        declared = next((value for name, value in self.headers if name == b"content-length"), b"0")
        if not declared.isdigit() or int(declared) > self.settings.max_body_bytes:
            # Refused before the application sees it; the parser's later callbacks find nothing to feed.
            self._refusing = True
            self._refuse(b"413 Content Too Large", f"request body over {self.settings.max_body_bytes} bytes")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusing:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self.settings.max_body_bytes:  # a chunked body, whose size no header declared
            self._refusing = True
            self._refuse(b"413 Content Too Large", f"request body over {self.settings.max_body_bytes} bytes")
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refusing:
            return
        super().on_message_complete()
        self._awaiting_request = False
        self._stop_request_timer()

    def on_response_complete(self) -> None:
        # A pipelined request was already received (its headers at least): no timer is due for it.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._wait_for_request()

    def _wait_for_request(self) -> None:
        self._awaiting_headers = self._awaiting_request = True
        self._header_bytes = 0
        self._waiting_since = time.monotonic()
        self._stop_request_timer()
        self._request_timer = self.loop.call_later(self.settings.request_timeout_seconds, self._request_too_slow)

    def _stop_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _answering(self) -> bool:
        """Whether the application holds a request of this connection (its body may still be arriving)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _request_too_slow(self) -> None:
        self._request_timer = None
        if self._awaiting_request:
            self._refuse(
                b"408 Request Timeout", f"request not complete within {self.settings.request_timeout_seconds} s"
            )

    def _make_room(self) -> None:
        """Over the cap: drop the connection waiting longest for its request, else refuse this one."""
        waiting = [
            other
            for other in self.connections
            if isinstance(other, GuardedHttpToolsProtocol)
            and other is not self
            and other._awaiting_request
            and not other.transport.is_closing()
        ]
        if waiting:
            oldest = min(waiting, key=lambda other: other._waiting_since)
            oldest._refuse(b"503 Service Unavailable", "too many connections; this one was waiting for its request")
        else:
            self._refuse(b"503 Service Unavailable", "too many connections; try again shortly")

    def _refuse(self, status: bytes, message: str) -> None:
        """Close the connection, with a short error response unless the application has begun its own."""
        self._stop_request_timer()
        self.logger.warning("closing connection from %s: %s", self.client, message)
        if not self.transport.is_closing():
            cycle = self.cycle if self._answering() else None
            if cycle is not None:
                # The application, waiting for the rest of the body, gets a disconnect and sends nothing more.
                cycle.disconnected = True
                cycle.message_event.set()
            if cycle is None or not cycle.response_started:
                self.transport.write(_plain_response(status, message))
            self.transport.close()
        # Closed before its request was read: the socket no longer counts against the cap.
        self.connections.discard(self)


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to this node's limits."""
    return type("GenoshareHttpProtocol", (GuardedHttpToolsProtocol,), {"settings": settings})


def connection_room(wanted: int) -> int:
    """The connections this process can hold without running out of descriptors: ``wanted``, or fewer.

    Each connection may hold its socket and, while it streams, two files (a Crypt4GH object and its stored
    bytes); the database, logs and the rest keep ``_RESERVED``.  The soft descriptor limit is raised
    towards the hard one first; a cap above what remains would let connections take the descriptors that
    files and the database need (EMFILE: every request failing, as a descriptor leak did).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = _PER_CONNECTION * wanted + _RESERVED
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - _RESERVED) // _PER_CONNECTION))


#: How long uvicorn waits for a worker to answer its health check before it kills and replaces it.
WORKER_HEALTHCHECK_SECONDS = 60


@dataclass(frozen=True)
class ServeOptions:
    """How ``genoshare serve`` listens: address, workers, the proxy in front of it, TLS, the log's format."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    root_path: str = ""
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    log_format: Literal["json", "text"] = "json"


class WorkerHttpProtocol(GuardedHttpToolsProtocol):
    """The protocol of ``serve --workers``: importable by each worker process, its limits set by ``worker_app``."""


def _within_room(settings: Settings) -> Settings:
    room = connection_room(settings.max_connections)
    if room < settings.max_connections:
        logging.getLogger("genoshare.api").warning(
            "max_connections lowered from %d to %d: the descriptor limit (ulimit -n) leaves room for no more",
            settings.max_connections,
            room,
        )
        settings = settings.model_copy(update={"max_connections": room})
    return settings


def worker_app() -> Any:
    """The application of one worker of ``serve --workers`` (``GENOSHARE_DATA_DIR`` names the node).

    Every worker opens the node itself; what must agree between workers (privacy budgets and answers,
    revocations, consent, tickets' secret) is in the database or the key files, never in one process.
    """
    from genoshare.api.app import create_app

    os.umask(PRIVATE_UMASK)
    settings = load_settings()
    WorkerHttpProtocol.settings = _within_room(settings)
    return create_app(Node.open(settings))


def run(node: Node, options: ServeOptions | None = None) -> None:
    """Serve the node's application with the limits of its settings until interrupted."""
    from genoshare.api.app import create_app

    options = options or ServeOptions()
    common: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "log_config": log_config(options.log_format),
        "access_log": False,  # the application's own (route templates, request ids): genoshare.access_log
        "timeout_keep_alive": node.settings.keep_alive_seconds,
        "proxy_headers": options.proxy_headers,
        "forwarded_allow_ips": options.forwarded_allow_ips,
        "root_path": options.root_path,
        "ssl_certfile": str(options.ssl_certfile) if options.ssl_certfile else None,
        "ssl_keyfile": str(options.ssl_keyfile) if options.ssl_keyfile else None,
        "server_header": False,
    }
    if options.workers > 1:
        os.environ["GENOSHARE_DATA_DIR"] = str(node.settings.data_dir)
        node.close()  # each worker opens its own
        uvicorn.run(
            "genoshare.api.server:worker_app",
            factory=True,
            workers=options.workers,
            http=WorkerHttpProtocol,
            # A worker answers uvicorn's health check only once it has imported and opened the node: seconds
            # on a loaded machine, where the default 5 s had uvicorn kill and restart workers as they started.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **common,
        )
        return
    uvicorn.run(create_app(node), http=guarded_protocol(_within_room(node.settings)), **common)
