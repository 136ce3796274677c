"""``/data`` attacked with ``Range`` headers, and answered as RFC 9110 says, through ``genoshare serve``.

Issue 12: on a public dataset stored in plaintext, an anonymous request whose ``Range`` has over 4,300
digits (Python's ``int()`` limit) answered 500 and left one descriptor open for good (200 requests: 19 ->
219 open fds).  Issue 13 item 4: a 416 carried no ``Content-Range: bytes */N``, several ranges got 416
where the RFC lets a server send the whole object, and an empty object answered 206 ``bytes 0-0/0``;
an htsget ``class=header`` ticket held the EOF marker as a URL of class body.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pysam
from sqlite_node import sqlite_node

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.htsget import bgzf
from genoshare.node import Node, build_ingestor
from genoshare.store.models import DataObject
from genoshare_lab.synth import generate_cohort

__all__ = ["sqlite_node"]

DRS = "/ga4gh/drs/v1"
HUGE = "9" * 5000


def open_fds(pid: int) -> list[str]:
    """What the process's descriptors point at (files, sockets, pipes)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed while listed
            continue
    return sorted(found)


def settled_fds(pid: int, at_most: int) -> list[str]:
    """The descriptors once closed connections are gone (the server notices a client leaving within ms)."""
    deadline = time.monotonic() + 5
    while len(fds := open_fds(pid)) > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
    return fds


def public_node(node: Node, tmp_path: Path) -> DataObject:
    """A public dataset stored unencrypted (served straight from disk) with one VCF."""
    cohort = generate_cohort(tmp_path / "cohort", 4, 100_000, seed=2, n_variants=200)
    DatasetService(node.database).create(
        NewDataset(
            id="open",
            title="Open data",
            custodian="Example",
            access_level="public",
            duo_codes=["NRES"],
            store_plaintext=True,
        )
    )
    return build_ingestor(node).ingest("open", [cohort.vcf_path]).published[0]


def empty_object(node: Node) -> DataObject:
    """An object of zero bytes in the public dataset, as the object store and the database would hold it."""
    blank = node.objects.staging_dir() / "empty.vcf"
    blank.write_bytes(b"")
    digest = hashlib.sha256(b"").hexdigest()
    node.objects.put(blank, f"open/{digest}")
    row = DataObject(
        id="open.empty.vcf",
        dataset_id="open",
        name="empty.vcf",
        htsget_id="open.empty",
        format="VCF",
        size=0,
        md5=hashlib.md5(b"", usedforsecurity=False).hexdigest(),
        sha256=digest,
        source_sha256=digest,
        blob_key=f"open/{digest}",
        mime_type="text/plain",
    )
    with node.database.sessions() as session, session.begin():
        session.add(row)
    return row


def ticket_for(http: httpx.Client, url: str, object_id: str) -> tuple[str, dict[str, str]]:
    access = http.get(f"{url}{DRS}/objects/{object_id}/access/https")
    assert access.status_code == 200, access.text
    return access.json()["url"], dict(line.split(": ", 1) for line in access.json()["headers"])


def leave_before_the_first_byte(url: str, headers: dict[str, str]) -> None:
    """Send a whole GET and close the socket at once: the response never gets to send its body."""
    host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall("\r\n".join(lines).encode())


def test_no_range_leaks_a_descriptor(sqlite_node: Node, serve: Any, tmp_path: Path) -> None:
    node = sqlite_node
    vcf = public_node(node, tmp_path)
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    pid = server.process.pid
    with httpx.Client(timeout=30) as http:
        data_url, ticket = ticket_for(http, server.url, vcf.id)
        whole = http.get(data_url, headers=ticket)
        assert whole.status_code == 200
        size = len(whole.content)
        assert http.get(data_url, headers={**ticket, "Range": "bytes=0-9"}).status_code == 206
        before = open_fds(pid)

        for _ in range(200):
            attack = http.get(data_url, headers={**ticket, "Range": f"bytes={HUGE}-"})
            assert attack.status_code == 416, attack.text
            assert attack.headers["content-range"] == f"bytes */{size}"
        # Every other way a request can fail or end early, each a few times.
        for _ in range(20):
            assert http.get(data_url, headers={**ticket, "Range": f"bytes=5-{HUGE}"}).content == whole.content[5:]
            assert http.get(data_url, headers={**ticket, "Range": f"bytes=-{HUGE}"}).content == whole.content
            assert http.get(data_url, headers={**ticket, "Range": f"bytes={HUGE}-1"}).status_code == 400
            assert http.get(data_url, headers={**ticket, "Range": "bytes=a-b"}).status_code == 400
            assert http.get(data_url, headers={"Authorization": "Bearer forged"}).status_code == 401
            assert http.head(data_url, headers=ticket).status_code == 200
            leave_before_the_first_byte(data_url, ticket)
        assert http.get(data_url, headers=ticket).content == whole.content  # the server still serves
        after = settled_fds(pid, len(before))
    # No stored file stays open; the rest may grow by the database pool's connections (each its descriptors).
    assert str(node.objects.local_path(vcf.blob_key)) not in after
    assert len(after) <= len(before) + 4, f"descriptors leaked: {before} -> {after}"
    assert "Traceback" not in server.stop()


def test_ranges_are_answered_as_rfc_9110_says(sqlite_node: Node, serve: Any, tmp_path: Path) -> None:
    node = sqlite_node
    vcf = public_node(node, tmp_path)
    empty = empty_object(node)
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    with httpx.Client(timeout=30) as http:
        data_url, ticket = ticket_for(http, server.url, vcf.id)
        whole = http.get(data_url, headers=ticket).content
        size = len(whole)

        def get(range_header: str, **extra: str) -> httpx.Response:
            return http.get(data_url, headers={**ticket, "Range": range_header, **extra})

        part = get("bytes=10-19")
        assert (part.status_code, part.headers["content-range"], part.content) == (
            206,
            f"bytes 10-19/{size}",
            whole[10:20],
        )
        tail = get("bytes=-7")
        assert (tail.status_code, tail.headers["content-range"], tail.content) == (
            206,
            f"bytes {size - 7}-{size - 1}/{size}",
            whole[-7:],
        )
        # 416 names the current length (15.5.17), for a start past the end and a zero-length suffix.
        for unsatisfiable in (f"bytes={size}-", "bytes=-0", f"bytes={size + 5}-{size + 9}"):
            refused = get(unsatisfiable)
            assert refused.status_code == 416, unsatisfiable
            assert refused.headers["content-range"] == f"bytes */{size}"
        # Several ranges: the whole object with 200, as 14.2 allows (no multipart/byteranges).
        several = get("bytes=0-1, 5-6")
        assert (several.status_code, several.content) == (200, whole)
        assert "content-range" not in several.headers
        # A unit the server does not understand MUST be ignored; so is Range on HEAD, and under If-Range
        # (the node hands out no validator, so none can match).
        assert (get("items=0-1").status_code, get("items=0-1").content) == (200, whole)
        assert get("bytes=0-1", **{"If-Range": '"v1"'}).content == whole
        head = http.head(data_url, headers={**ticket, "Range": "bytes=0-1"})
        assert (head.status_code, head.headers["content-length"]) == (200, str(size))
        # A malformed range is rejected with a one-line error.
        malformed = get("bytes=9-3")
        assert malformed.status_code == 400 and "malformed Range" in malformed.json()["msg"]

        empty_url, empty_ticket = ticket_for(http, server.url, empty.id)
        for range_header in (None, "bytes=0-", "bytes=0-0", "bytes=-5"):
            headers = {**empty_ticket, **({"Range": range_header} if range_header else {})}
            answer = http.get(empty_url, headers=headers)
            assert (answer.status_code, answer.content) == (200, b""), range_header
            assert "content-range" not in answer.headers


def test_htsget_header_tickets_hold_header_data_only(sqlite_node: Node, serve: Any, tmp_path: Path) -> None:
    """htsget 1.3: ``class=header`` asks for header data only; the EOF marker (class body) is not header."""
    vcf = public_node(sqlite_node, tmp_path)
    server = serve(sqlite_node.settings.data_dir, {"GENOSHARE_DATABASE_URL": sqlite_node.settings.database_url})
    with httpx.Client(timeout=30) as http:
        answer = http.get(f"{server.url}/htsget/variants/{vcf.htsget_id}", params={"class": "header"})
        assert answer.status_code == 200, answer.text
        urls = answer.json()["htsget"]["urls"]
        assert [entry.get("class") for entry in urls] == ["header"] * len(urls)
        parts = []
        for entry in urls:
            if entry["url"].startswith("data:"):
                parts.append(base64.b64decode(entry["url"].split(",", 1)[1]))
            else:
                fetched = http.get(entry["url"], headers=entry.get("headers", {}))
                assert fetched.status_code in (200, 206), fetched.text
                parts.append(fetched.content)
    assert bgzf.EOF_MARKER not in parts
    # The header alone, plus the EOF marker a client appends, is a valid VCF with no records.
    header_only = tmp_path / "header.vcf.gz"
    header_only.write_bytes(b"".join(parts) + bgzf.EOF_MARKER)
    with pysam.VariantFile(str(header_only)) as variants:
        assert list(variants) == [] and len(variants.header.samples) == 4
