"""``/data/{object_id}``: the bytes behind DRS access URLs and htsget tickets.

Each request carries a ticket (``Authorization: Bearer``) from DRS or htsget, checked on every request.
Bytes are decrypted from Crypt4GH on the fly, in 1 MiB pieces (FLOORS.md: a default 64 KiB
``FileResponse`` streams at a fifth of that), and every range served is written to the audit log.  A ticket
with a recipient key (htsget ``encryptionScheme=C4GH``) reads the stored ciphertext under a header re-keyed
to the recipient instead (see ``genoshare.data_access``).

Pieces are produced in a worker thread one ahead of the one being sent: decryption then runs while the event
loop writes the previous piece to the socket, instead of each waiting for the other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from genoshare.api.deps import NodeDep, bearer_token
from genoshare.data_access import DataAccess, OpenedObject
from genoshare.errors import InvalidInput, Unauthenticated
from genoshare.node import Node

router = APIRouter(
    tags=["Data"],
    responses={
        206: {"description": "The requested byte range."},
        401: {"description": "No ticket, or a ticket that is expired, forged or for another object."},
        403: {"description": "The grant behind the ticket no longer holds."},
        404: {"description": "No such object."},
        416: {"description": "The Range cannot be served."},
    },
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 20
#: Threads that decrypt the next piece of each stream; one piece in flight per stream.
_PRODUCERS = ThreadPoolExecutor(thread_name_prefix="genoshare-data")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range as a half-open pair, or None for the whole object."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        raise RangeNotSatisfiable(f"unsupported Range {header!r}: send one 'bytes=start-end' range", size)
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
        if last != "" and int(last) < start:
            raise RangeNotSatisfiable(f"Range {header!r} ends before it starts", size)
    if start >= size and size > 0:
        raise RangeNotSatisfiable(f"Range {header!r} starts past the end ({size} bytes)", size)
    return start, end


class RangeNotSatisfiable(InvalidInput):
    status_code = 416
    code = "InvalidRange"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


async def _stream(opened: OpenedObject, start: int, end: int) -> AsyncIterator[bytes]:
    """The pieces of ``[start, end)``, the next one prepared in a thread while this one is sent.

    The file is closed once no thread reads it any more, also when the client goes away mid-stream (the
    piece being prepared then is dropped); closing needs no ``await``, which a cancelled task could not do.
    """
    pieces = opened.iter_bytes(start, end, CHUNK)
    upcoming = _PRODUCERS.submit(next, pieces, None)
    try:
        while (piece := await asyncio.wrap_future(upcoming)) is not None:
            upcoming = _PRODUCERS.submit(next, pieces, None)
            yield piece
    finally:
        upcoming.add_done_callback(lambda _: opened.file.close())


@router.get("/data/{object_id}", summary="Object bytes (signed ticket required)")
def read_object(object_id: str, request: Request, node: NodeDep) -> Response:
    return serve_object(object_id, request, node)


@router.head("/data/{object_id}", summary="Object size and range support (signed ticket required)")
def head_object(object_id: str, request: Request, node: NodeDep) -> Response:
    return serve_object(object_id, request, node)


def serve_object(object_id: str, request: Request, node: Node) -> Response:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("data URLs need the ticket that DRS or htsget handed out with them")
    access = DataAccess(node)
    opened = access.open(object_id, token)
    size = opened.size
    try:
        requested = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        opened.file.close()
        raise
    start, end = requested or (0, size)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start), "Cache-Control": "no-store"}
    status = 200
    if requested is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{max(start, end - 1)}/{size}"
    access.record_read(opened, start, end, request.method)
    if request.method == "HEAD":
        opened.file.close()
        return Response(status_code=status, headers=headers, media_type=opened.mime_type)
    return StreamingResponse(
        _stream(opened, start, end), status_code=status, headers=headers, media_type=opened.mime_type
    )
