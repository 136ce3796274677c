"""Exhausting ``genoshare serve`` before a request reaches the application: slowloris and huge headers.

Issue 12: the HTTP server had no header size limit, header timeout or connection cap: 2,000 slowloris
sockets were held for 30 s, ten unfinished 50 MiB headers raised its RSS from 322 to 738 MB, and a 24 MB
``Authorization`` header was parsed.  Here, bounded in count and time: a few hundred sockets trickling
headers or a body against a 2 s request timeout and a cap of 100 connections, and headers of a few MiB
against the default 64 KiB limit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

import httpx
from sqlite_node import sqlite_node

from genoshare.node import Node

__all__ = ["sqlite_node"]

TRICKLE = b"GET /service-info HTTP/1.1\r\nHost: localhost\r\n"
SLOW_BODY = (
    b"POST /ga4gh/drs/v1/objects HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


def address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].split(":")
    return host, int(port)


def sockets_of(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            continue
    return count


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed (after at most a short error response), without waiting."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def test_slowloris_sockets_are_dropped_and_real_clients_served(sqlite_node: Node, serve: Any) -> None:
    server = serve(
        sqlite_node.settings.data_dir,
        {
            "GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url,
            "GENOSHARE_REQUEST_TIMEOUT_SECONDS": "2",
            "GENOSHARE_MAX_CONNECTIONS": "100",
        },
    )
    pid, target = server.process.pid, address(server.url)
    # 200 sockets trickle header lines; 100 send whole headers, then a body a few bytes at a time.
    attackers: list[tuple[socket.socket, bool]] = []
    for number in range(300):
        sock = socket.create_connection(target)
        slow_body = number % 3 == 0
        sock.sendall(SLOW_BODY if slow_body else TRICKLE)
        attackers.append((sock, slow_body))
    started = time.monotonic()
    # A real client must be served while the attack goes on: within this client's 5 s timeout, however loaded
    # the machine running the test is (a wall-clock bound tighter than that measures the machine, not the node).
    with httpx.Client(timeout=5) as http:
        # A line (or a few body bytes) every half second, for 3.5 s: past the 2 s request timeout.
        line = 0
        while time.monotonic() - started < 3.5:
            for sock, slow_body in attackers:
                with contextlib.suppress(OSError):
                    sock.sendall(b'{"a": ' if slow_body else f"X-Slow-{line}: 1\r\n".encode())
            line += 1
            # Meanwhile a real client is served at once, and the server holds no more than its cap.
            assert http.get(f"{server.url}/service-info").status_code == 200
            assert sockets_of(pid) <= 100 + 5
            time.sleep(0.5)
        # Every slow socket is closed once its 2 s are up; the server's sweep may lag on a loaded machine.
        deadline = time.monotonic() + 10
        still_open = attackers
        while still_open and time.monotonic() < deadline:
            still_open = [(sock, slow_body) for sock, slow_body in still_open if not closed_by_server(sock)]
            time.sleep(0.2)
        assert still_open == [], f"{len(still_open)} of 300 slow sockets still open after the request timeout"
        assert http.get(f"{server.url}/service-info").status_code == 200
    for sock, _ in attackers:
        sock.close()


def test_oversized_headers_are_refused_with_bounded_memory(sqlite_node: Node, serve: Any) -> None:
    server = serve(sqlite_node.settings.data_dir, {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url})
    pid, target = server.process.pid, address(server.url)
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{server.url}/service-info").status_code == 200
        # A passport with many visas still fits (the limit is 64 KiB by default).
        big_passport = http.get(
            f"{server.url}/ga4gh/drs/v1/objects/x", headers={"Authorization": "Bearer " + "a" * 40_000}
        )
        assert big_passport.status_code in (401, 404), big_passport.text
    before = rss_mib(pid)

    # Ten unfinished 8 MiB headers, sent at once.
    attackers = []
    for _ in range(10):
        sock = socket.create_connection(target)
        sock.sendall(b"GET /service-info HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
        attackers.append(sock)
    piece = b"a" * (1 << 20)
    refused = 0
    for sock in attackers:
        try:
            for _ in range(8):
                sock.sendall(piece)
        except OSError:  # the server closed the connection mid-header
            refused += 1
            continue
    for sock in attackers:
        sock.settimeout(5)
        try:
            answer = sock.recv(200)
        except OSError:
            answer = b""
        assert answer.startswith(b"HTTP/1.1 431") or answer == b"", answer
        sock.close()
    grown = rss_mib(pid) - before
    assert grown < 8, f"server RSS grew {grown:.0f} MiB on ten unfinished headers"

    # A complete request with a 4 MiB Authorization header is refused before it is parsed.
    with socket.create_connection(target) as sock:
        sock.settimeout(5)
        request = b"GET /service-info HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + b"a" * (4 << 20)
        with contextlib.suppress(OSError):  # the server may close before all of it is sent
            sock.sendall(request + b"\r\n\r\n")
        answer = sock.recv(200)
        assert answer.startswith(b"HTTP/1.1 431"), answer
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{server.url}/service-info").status_code == 200


def test_oversized_bodies_are_refused(sqlite_node: Node, serve: Any) -> None:
    """A body over ``max_body_bytes`` (1 MiB) is refused, whether its size is declared or it comes chunked."""
    server = serve(sqlite_node.settings.data_dir, {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url})
    pid, target = server.process.pid, address(server.url)
    before = rss_mib(pid)
    declared = (
        b"POST /ga4gh/drs/v1/objects HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 67108864\r\n\r\n"
    )
    chunked = (
        b"POST /ga4gh/drs/v1/objects HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % (256 << 10) + b" " * (256 << 10) + b"\r\n"
    for head, piece in ((declared, b" " * (1 << 20)), (chunked, chunk)):
        # Five clients push 16 MiB each; the server drops them (a reset loses its 413 on the way).
        for _ in range(5):
            with socket.create_connection(target) as sock, contextlib.suppress(OSError):
                sock.sendall(head)
                for _ in range(16):
                    sock.sendall(piece)
        # One that sends just past the limit and then listens gets the 413.
        with socket.create_connection(target) as sock:
            sock.settimeout(5)
            sock.sendall(head if head is declared else head + piece * 4 + b"400\r\n" + b" " * 1024 + b"\r\n")
            answer = sock.recv(200)
        assert answer.startswith(b"HTTP/1.1 413"), answer
    grown = rss_mib(pid) - before
    assert grown < 8, f"server RSS grew {grown:.0f} MiB on ten oversized bodies"
    with httpx.Client(timeout=10) as http:
        small = http.post(f"{server.url}/ga4gh/drs/v1/objects", json={"bulk_object_ids": ["x"]})
        assert small.status_code == 200, small.text


def test_connections_never_take_the_descriptors_files_need(sqlite_node: Node, serve: Any) -> None:
    """Under ``ulimit -n 300`` the cap of 1,000 connections falls to what the descriptors allow, and 400
    slowloris sockets cannot make the server run out of them (with the cap left at 1,000, every request
    failed: the sockets had taken the descriptors)."""
    server = serve(
        sqlite_node.settings.data_dir,
        {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url},
        wrapper=["prlimit", "--nofile=300:300"],
    )
    assert "max_connections lowered from 1000 to 78" in server.log
    pid, target = server.process.pid, address(server.url)
    attackers = []
    for _ in range(400):
        sock = socket.create_connection(target)
        sock.sendall(TRICKLE)
        attackers.append(sock)
    with httpx.Client(timeout=10) as http:
        for _ in range(5):
            assert http.get(f"{server.url}/service-info").status_code == 200
            assert sockets_of(pid) <= 78 + 5
    for sock in attackers:
        sock.close()
