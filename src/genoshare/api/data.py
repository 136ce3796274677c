"""``/data/{object_id}``: the bytes behind DRS access URLs and htsget tickets.

Each request carries a ticket (``Authorization: Bearer``) from DRS or htsget, checked on every request, and
every range served is written to the audit log (``genoshare.drs.stored``).  Objects are Crypt4GH files
decrypted on the fly, or, for public datasets stored unencrypted, read straight from disk; both in 1 MiB
pieces (FLOORS.md: a default 64 KiB ``FileResponse`` streams at a fifth of that).  A ticket with a recipient
key (htsget ``encryptionScheme=C4GH``) reads the stored ciphertext under a header re-keyed to the recipient.

Encrypted pieces are decrypted by worker threads, ``AHEAD`` of the one being sent.  The decryptor releases
the GIL (``genoshare.crypt.aead``), so decryption runs while the event loop writes to the socket; before,
decrypting and sending took turns.  Bytes sent as they are stored (public data stored unencrypted, and the
ciphertext segments behind a re-keyed header) are read by the event loop itself when the page cache holds
them, like the bare HTTP ceiling does, and by a thread otherwise: a thread hop per piece doubled their CPU
cost (and more pieces in flight made it worse), while a cached 1 MiB read takes about 0.1 ms.  Pieces are
fresh buffers handed to the socket without a copy.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from genoshare.api.deps import NodeDep, bearer_token
from genoshare.crypt.files import EncryptedFile
from genoshare.drs.stored import OpenedBlob, PlainFile, StoredBytes, open_for_ticket, record_read
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
#: Encrypted pieces decrypted while one is sent (more did not help on 2 cores, and each costs 2 MiB).
AHEAD = 1
#: Threads that read (and decrypt) the pieces of every stream.
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


def _pieces(start: int, end: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` in CHUNK pieces cut at multiples of CHUNK, so no segment is decrypted twice."""
    while start < end:
        stop = min((start // CHUNK + 1) * CHUNK, end)
        yield start, stop
        start = stop


def _close_when_done(opened: OpenedBlob, futures: list[Future[memoryview]]) -> None:
    """Close the file once no worker reads it (closing needs no ``await``: a cancelled task cannot await)."""
    running = [future for future in futures if not future.cancel()]
    if not running:
        opened.close()
        return
    left = [len(running)]
    lock = threading.Lock()

    def done(_: Future[memoryview]) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            opened.close()

    for future in running:
        future.add_done_callback(done)


async def _decrypted_stream(opened: OpenedBlob, start: int, end: int) -> AsyncIterator[memoryview]:
    """Plaintext ``[start, end)`` of a Crypt4GH object, ``AHEAD`` pieces decrypted in threads while one is sent.

    Each piece is decrypted into a buffer allocated here, in the event loop that later frees it: buffers
    allocated by a worker thread and freed by the loop came back from the kernel every time (page faults
    that cost as much CPU as the cipher).  Also when the client goes away mid-stream, the file is closed
    once the pieces in flight are done.
    """
    file = opened.file
    assert isinstance(file, EncryptedFile)
    bounds = _pieces(start, end)
    pending: deque[Future[memoryview]] = deque()

    def refill() -> None:
        while len(pending) <= AHEAD and (span := next(bounds, None)) is not None:
            buffer = memoryview(bytearray(file.covering_size(*span)))
            pending.append(_PRODUCERS.submit(file.plaintext_view, *span, buffer))

    try:
        refill()
        while pending:
            piece = await asyncio.wrap_future(pending[0])
            pending.popleft()
            refill()
            yield piece
    finally:
        _close_when_done(opened, list(pending))


async def _stored_stream(
    opened: OpenedBlob, source: StoredBytes, start: int, end: int, prefix: bytes = b""
) -> AsyncIterator[memoryview]:
    """``prefix``, then ``source``'s stored bytes ``[start, end)``: cached pieces read in the loop, others in a thread.

    The path of every stream sent as stored, plaintext-at-rest objects and the re-keyed ciphertext alike: a
    thread hop per 1 MiB piece had cost the re-keyed stream as much CPU again as the bare HTTP ceiling (and
    half its throughput), while a cached read takes about 0.1 ms in the loop.  The file is closed once no
    thread reads it, also when the client goes away mid-stream.
    """
    reading: Future[memoryview] | None = None
    try:
        if prefix:
            yield memoryview(prefix)
        for span in _pieces(start, end):
            piece = source.cached_view(*span)
            if piece is None:
                reading = _PRODUCERS.submit(source.view, *span)
                piece = await asyncio.wrap_future(reading)
                reading = None
            yield piece
    finally:
        _close_when_done(opened, [reading] if reading is not None else [])


def _stored_plaintext_stream(opened: OpenedBlob, start: int, end: int) -> AsyncIterator[memoryview]:
    """A plaintext-stored object's ``[start, end)``, read as it is."""
    assert isinstance(opened.file, PlainFile)
    return _stored_stream(opened, opened.file, start, end)


def _reencrypted_stream(opened: OpenedBlob, start: int, end: int) -> AsyncIterator[memoryview]:
    """The re-keyed file's ``[start, end)``: part of the new header, then stored ciphertext (no decryption)."""
    assert opened.stored is not None
    header, first, last = opened.reencrypted_parts(start, end)
    return _stored_stream(opened, opened.stored, first, last, header)


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
    opened = open_for_ticket(node, object_id, token)
    size = opened.size
    try:
        requested = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        opened.close()
        raise
    start, end = requested or (0, size)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start), "Cache-Control": "no-store"}
    status = 200
    if requested is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{max(start, end - 1)}/{size}"
    record_read(node, opened, start, end, request.method)
    if request.method == "HEAD":
        opened.close()
        return Response(status_code=status, headers=headers, media_type=opened.mime_type)
    if opened.reencryption is not None:
        body = _reencrypted_stream
    elif isinstance(opened.file, PlainFile):
        body = _stored_plaintext_stream
    else:
        body = _decrypted_stream
    return StreamingResponse(body(opened, start, end), status_code=status, headers=headers, media_type=opened.mime_type)
