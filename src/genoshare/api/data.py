"""``/data/{object_id}``: the bytes behind DRS access URLs and htsget tickets.

Each request carries a ticket (``Authorization: Bearer``) from DRS or htsget, checked on every request, and
every range served is written to the audit log (``genoshare.drs.reads``).  Objects are Crypt4GH files
decrypted on the fly, or, for public datasets stored unencrypted, read straight from disk; both in 1 MiB
pieces (a default 64 KiB ``FileResponse`` streamed at a fifth of that rate).  A ticket with a recipient
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
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from genoshare.api.deps import NodeDep, ReadsDep, bearer_token
from genoshare.api.openapi import TICKET
from genoshare.crypt.files import EncryptedFile
from genoshare.drs.reads import OpenedBlob, TicketReads
from genoshare.errors import GenoshareError, InvalidInput, Unauthenticated
from genoshare.formats import FileFormat
from genoshare.settings import Settings
from genoshare.store.blobs import PlainFile, StoredBytes

router = APIRouter(
    tags=["Data"],
    responses={
        401: {"description": "No ticket, or a ticket that is expired, forged or for another object."},
        403: {"description": "The grant behind the ticket no longer holds."},
        404: {"description": "No such object."},
    },
)
#: The stored object's own media type, or octet-stream for a Crypt4GH stream re-keyed to the client.
_BINARY = {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in ("application/octet-stream", *(fmt.mime_type for fmt in FileFormat))
}
_SIZE = {"description": "Bytes in this answer", "schema": {"type": "integer"}}
_RANGES = {"description": "Always bytes", "schema": {"type": "string"}}
_PART = {"description": "bytes first-last/size", "schema": {"type": "string"}}


_WHOLE = {"headers": {"Accept-Ranges": _RANGES, "Content-Length": _SIZE}}
_GET_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        **_WHOLE,
        "description": "The whole object: no Range, several ranges (RFC 9110 lets a server send it all), "
        "or an empty object.",
        "content": _BINARY,
    },
    206: {
        "description": "The requested byte range.",
        "headers": {"Content-Range": _PART, "Content-Length": _SIZE},
        "content": _BINARY,
    },
    400: {"description": "A malformed Range."},
    416: {
        "description": "No range of the Range header is satisfiable.",
        "headers": {"Content-Range": {"description": "bytes */size", "schema": {"type": "string"}}},
    },
}
#: HEAD ignores Range (RFC 9110 defines it for GET only): it announces the whole object.
_HEAD_ANSWERS: dict[int | str, dict[str, Any]] = {200: {**_WHOLE, "description": "The whole object's headers."}}


_RANGE_HEADER = {
    "name": "Range",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "One byte range, e.g. bytes=0-1023, bytes=1024- or bytes=-500 (RFC 9110)",
}
CHUNK = 1 << 20
#: Encrypted pieces decrypted while one is sent (more did not help on 2 cores, and each costs 2 MiB).
AHEAD = 1
#: Threads that read (and decrypt) the pieces of every stream.
_PRODUCERS = ThreadPoolExecutor(thread_name_prefix="genoshare-data")


#: Digits past which a position is larger than any object (2**63 has 19): never converted with ``int``,
#: which refuses strings over 4,300 digits with a ValueError.
_MAX_DIGITS = 18
_BEYOND_ANY_OBJECT = 1 << 63
_RANGE_SPEC = re.compile(r"(\d*)-(\d*)")


def _position(digits: str) -> int:
    """A ``first-pos``/``last-pos``/``suffix-length``, capped above any object size instead of parsed."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_DIGITS else _BEYOND_ANY_OBJECT


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range to answer with 206, as a half-open pair, or None for the whole object (200).

    RFC 9110 section 14 to the letter: a unit other than ``bytes`` is ignored (MUST); a malformed
    ranges-specifier is rejected (400, as 14.2 allows); when no range is satisfiable the answer is 416 with
    ``Content-Range: bytes */size``; several ranges are answered with the whole object (200, as 14.2 allows:
    no multipart/byteranges); an empty object is sent whole (200), since no ``Content-Range`` can describe a
    part of nothing.
    """
    if header is None:
        return None
    unit, equals, specifier = header.partition("=")
    if not equals:
        raise InvalidInput(f"malformed Range {header[:80]!r}: send 'bytes=start-end'")
    if unit.strip().lower() != "bytes":
        return None
    ranges: list[tuple[int | None, int | None]] = []
    for spec in filter(None, (part.strip() for part in specifier.split(","))):
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None or match.groups() == ("", ""):
            raise InvalidInput(f"malformed Range {header[:80]!r}: send 'bytes=start-end'")
        first, last = (None if digits == "" else _position(digits) for digits in match.groups())
        if first is not None and last is not None and last < first:
            raise InvalidInput(f"malformed Range {header[:80]!r}: a range ends before it starts")
        ranges.append((first, last))
    if not ranges:
        raise InvalidInput(f"malformed Range {header[:80]!r}: send 'bytes=start-end'")
    if size == 0:
        return None
    satisfiable = [(first, last) for first, last in ranges if (first < size if first is not None else last != 0)]
    if not satisfiable:
        raise RangeNotSatisfiable(f"Range {header[:80]!r} asks for none of the object's {size} bytes", size)
    if len(ranges) > 1:
        return None
    first, last = satisfiable[0]
    if first is None:  # a suffix: the last ``last`` bytes, or all of them when the object is shorter
        assert last is not None
        return max(0, size - last), size
    return first, size if last is None else min(last + 1, size)


class RangeNotSatisfiable(InvalidInput):
    status_code = 416
    code = "InvalidRange"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size
        #: RFC 9110 15.5.17: a 416 names the object's current length.
        self.headers = {"Content-Range": f"bytes */{size}"}


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


async def _decrypted_stream(opened: OpenedBlob, start: int, end: int) -> AsyncGenerator[memoryview, None]:
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
) -> AsyncGenerator[memoryview, None]:
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


def _stored_plaintext_stream(opened: OpenedBlob, start: int, end: int) -> AsyncGenerator[memoryview, None]:
    """A plaintext-stored object's ``[start, end)``, read as it is."""
    assert isinstance(opened.file, PlainFile)
    return _stored_stream(opened, opened.file, start, end)


def _reencrypted_stream(opened: OpenedBlob, start: int, end: int) -> AsyncGenerator[memoryview, None]:
    """The re-keyed file's ``[start, end)``: part of the new header, then stored ciphertext (no decryption)."""
    assert opened.stored is not None
    header, first, last = opened.reencrypted_parts(start, end)
    return _stored_stream(opened, opened.stored, first, last, header)


class ClientStalled(GenoshareError):
    """A download's client stopped reading: the stream is cut rather than held open."""


class ObjectResponse(StreamingResponse):
    """An object's bytes; access is asked again every ``stream_recheck_seconds`` while they stream.

    A grant revoked, a ticket expired or a file closed (a withdrawal) ends the stream within that interval:
    the connection is closed before the announced ``Content-Length``, so the client sees a cut transfer,
    not a complete file.  The file is closed however the response ends, also when the client leaves before
    the first byte (a stream that never started has no ``finally`` of its own to run).
    """

    def __init__(
        self,
        settings: Settings,
        reads: TicketReads,
        opened: OpenedBlob,
        pieces: AsyncGenerator[memoryview, None],
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        self.settings, self.reads, self.opened, self._pieces = settings, reads, opened, pieces
        self._started = False
        self.sent = 0
        super().__init__(self._guarded(), status_code=status_code, headers=headers, media_type=opened.mime_type)

    async def _guarded(self) -> AsyncGenerator[memoryview, None]:
        self._started = True
        loop = asyncio.get_running_loop()
        interval = self.settings.stream_recheck_seconds
        due = loop.time() + interval
        try:
            async for piece in self._pieces:
                if loop.time() >= due:
                    await run_in_threadpool(self.reads.recheck, self.opened)
                    due = loop.time() + interval
                yield piece
                self.sent += len(piece)
        finally:
            await self._pieces.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        patience = self.settings.send_timeout_seconds

        async def send_or_give_up(message: Message) -> None:
            # The server's send waits while the client reads nothing (flow control); bound that wait.
            try:
                await asyncio.wait_for(send(message), patience)
            except TimeoutError:
                raise ClientStalled(f"the client took no bytes for {patience:g} s") from None

        try:
            await super().__call__(scope, receive, send_or_give_up)
        except GenoshareError as ended:
            # Returning without the last body message makes the server close the connection (a cut transfer).
            await run_in_threadpool(self.reads.record_stop, self.opened, ended.message, self.sent)
        finally:
            body = self.body_iterator
            assert isinstance(body, AsyncGenerator)
            await body.aclose()
            if not self._started:
                self.opened.close()


@router.get(
    "/data/{object_id}",
    response_class=Response,
    responses=_GET_ANSWERS,
    openapi_extra={**TICKET, "parameters": [_RANGE_HEADER]},
    summary="Object bytes (signed ticket required)",
)
def read_object(object_id: str, request: Request, node: NodeDep, reads: ReadsDep) -> Response:
    return serve_object(object_id, request, node.settings, reads)


@router.head(
    "/data/{object_id}",
    response_class=Response,
    responses=_HEAD_ANSWERS,
    openapi_extra=TICKET,
    summary="Object size and range support (signed ticket required)",
)
def head_object(object_id: str, request: Request, node: NodeDep, reads: ReadsDep) -> Response:
    return serve_object(object_id, request, node.settings, reads)


def serve_object(object_id: str, request: Request, settings: Settings, reads: TicketReads) -> Response:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("data URLs need the ticket that DRS or htsget handed out with them")
    opened = reads.open(object_id, token)
    request.state.actor = opened.ticket.actor  # who the audit log names if the range is refused
    try:
        return _answer(opened, request, settings, reads)
    except BaseException:
        # Every error before the response owns the file (a bad Range, a failed audit write) closes it here.
        opened.close()
        raise


def _answer(opened: OpenedBlob, request: Request, settings: Settings, reads: TicketReads) -> Response:
    size = opened.size
    # RFC 9110 14.2: Range is defined for GET only; without validators of ours, an If-Range never matches.
    honoured = request.method == "GET" and "if-range" not in request.headers
    requested = parse_range(request.headers.get("range"), size) if honoured else None
    start, end = requested or (0, size)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start), "Cache-Control": "no-store"}
    status = 200
    if requested is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    reads.record_read(opened, start, end, request.method)
    if request.method == "HEAD":
        opened.close()
        return Response(status_code=status, headers=headers, media_type=opened.mime_type)
    if opened.reencryption is not None:
        body = _reencrypted_stream
    elif isinstance(opened.file, PlainFile):
        body = _stored_plaintext_stream
    else:
        body = _decrypted_stream
    return ObjectResponse(settings, reads, opened, body(opened, start, end), status, headers)
