"""Downloads whose client stops reading, attacked through ``genoshare serve``.

Red team (issue 12 follow-up): an anonymous client that asks for a public file and never reads held its
connection and about 4 MiB of buffers (the piece in the socket's send buffer, the pieces decrypted ahead)
for as long as it liked: 400 such sockets took the server from 173 to 1,630 MiB RSS, and 1,000
(``max_connections``) would have left every other client a 503.  A download now waits at most
``send_timeout_seconds`` for its client to take more bytes, then is cut.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
from big_files import long_read_bam
from sqlite_node import sqlite_node

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor

__all__ = ["sqlite_node"]


def test_a_client_that_stops_reading_is_cut_off(sqlite_node: Node, serve: Any, tmp_path: Path) -> None:
    DatasetService(sqlite_node.database).create(
        NewDataset(id="open", title="Open", custodian="Example", access_level="public", duo_codes=["NRES"])
    )
    row = build_ingestor(sqlite_node).ingest("open", [long_read_bam(tmp_path / "big.bam", "S1", 12)]).published[0]
    env = {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url, "GENOSHARE_SEND_TIMEOUT_SECONDS": "1"}
    server = serve(sqlite_node.settings.data_dir, env)
    access = httpx.get(f"{server.url}/ga4gh/drs/v1/objects/{row.id}/access/https", timeout=30).json()
    path = "/" + access["url"].split("/", 3)[3]
    request = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *access["headers"], "", ""]
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall("\r\n".join(request).encode())
        time.sleep(4)  # reads nothing for longer than the server waits
        stalled.settimeout(10)
        received = 0
        while chunk := stalled.recv(1 << 16):
            received += len(chunk)
    # Before: the stream went on as soon as the client read again, and the whole file arrived.
    assert received < row.size, "a client that stopped reading still got the whole file"
    # A client that reads is served as before.
    whole = httpx.get(access["url"], headers=dict(line.split(": ", 1) for line in access["headers"]), timeout=60)
    assert whole.status_code == 200 and len(whole.content) == row.size
