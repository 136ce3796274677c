"""Stored objects behind ``/data``: Crypt4GH-encrypted (every dataset) or plaintext (public datasets that ask).

A blob's key says how it is stored: keys ending ``.c4gh`` are Crypt4GH files encrypted to the node's key;
any other key is the plaintext itself, which only a public dataset created with ``--store-plaintext`` gets
(``genoshare.ingest``).  Keying on the blob rather than on the dataset's current setting means a file is
always read the way it was written.

``TicketReads.open`` is the path from a data ticket to bytes for both kinds: it verifies the ticket, asks the
access policy again (a grant revoked or a file closed since the ticket was issued stops the read; ``recheck``
asks again while a long read streams), and ``record_read`` audits each range served.  ``copy_plaintext`` is
how the node's own background work (Beacon indexing, re-derivation after a withdrawal) reads a blob of
either kind.

Plaintext objects are read with ``os.preadv`` into fresh buffers, in large pieces (64 KiB pieces streamed at a
fifth of the rate of 1 MiB ones); pieces in the page cache are read without leaving the event loop.  A
ticket with a recipient key (htsget ``encryptionScheme=C4GH``) on a plaintext object is refused when issued
(``genoshare.htsget.service``), and again here.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from genoshare.access.policy import AccessPolicy
from genoshare.access.tickets import Ticket, TicketSigner
from genoshare.audit import AuditLog, Entry
from genoshare.crypt.files import EncryptedFile, Reencryption
from genoshare.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from genoshare.governance.subsets import Subsets
from genoshare.ids import is_wellformed_id
from genoshare.store.db import Database
from genoshare.store.models import DataObject
from genoshare.store.objects import ObjectStore

ENCRYPTED_SUFFIX = ".c4gh"
#: ``preadv2`` flag: fail with EAGAIN rather than wait for the disk (Linux >= 4.14); 0 where unavailable.
_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)


def is_plaintext(blob_key: str) -> bool:
    """Whether a blob is stored as plaintext (public datasets created with ``--store-plaintext``)."""
    return not blob_key.endswith(ENCRYPTED_SUFFIX)


class StoredBytes:
    """A blob's bytes as stored, read by position from several threads at once (``os.preadv`` on one descriptor).

    What the node streams without transforming: a plaintext blob (:class:`PlainFile`), and the ciphertext
    segments of a Crypt4GH blob sent as they are to a recipient under a re-keyed header.  Both go through
    this one reader, so both get the same cheap path (see :meth:`cached_view`).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self.size: int = os.fstat(self._fd).st_size

    def view(self, start: int, end: int) -> memoryview:
        """Bytes ``[start, end)`` clamped to the file, in a buffer made for this call (safe to hand to a socket)."""
        start, view = self._buffer(start, end)
        got = 0
        while got < len(view):
            n = os.preadv(self._fd, [view[got:]], start + got)
            if n == 0:
                raise NotFound(f"{self.path.name} shrank while being read")
            got += n
        return view

    def cached_view(self, start: int, end: int) -> memoryview | None:
        """Bytes ``[start, end)`` if the page cache holds them all, else None; never waits for the disk.

        ``preadv2`` with ``RWF_NOWAIT`` fails instead of blocking, so an event loop can read cached pieces
        itself (as the bare HTTP ceiling does) and hand only real disk reads to a thread: measured here, a
        thread hop per 1 MiB piece doubled the CPU a plaintext stream costs.
        """
        if not _NOWAIT:
            return None
        start, view = self._buffer(start, end)
        try:
            got = os.preadv(self._fd, [view], start, _NOWAIT) if len(view) else 0
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as error:
            if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without RWF_NOWAIT
                return None
            raise
        return view if got == len(view) else None

    def _buffer(self, start: int, end: int) -> tuple[int, memoryview]:
        """``start`` clamped to the file, and a fresh buffer for ``[start, end)`` clamped to it."""
        start, end = min(max(start, 0), self.size), min(end, self.size)
        return start, memoryview(bytearray(max(end - start, 0)))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> StoredBytes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainFile(StoredBytes):
    """A plaintext blob, with the plaintext-reading interface of :class:`EncryptedFile` (the stored bytes)."""

    @property
    def plaintext_size(self) -> int:
        return self.size

    def read_plaintext(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` clamped to the file."""
        return bytes(self.view(start, end))

    def plaintext_view(self, start: int, end: int) -> memoryview:
        """Bytes ``[start, end)`` clamped to the file, in a buffer made for this call."""
        return self.view(start, end)


@dataclass
class OpenedBlob:
    row: DataObject
    ticket: Ticket
    file: EncryptedFile | PlainFile
    #: For a ticket with a recipient key: the stored file's header re-written for it (no edit list).
    reencryption: Reencryption | None = None
    #: For a ticket with a recipient key: the stored file's bytes, whose segments follow the new header as they are.
    stored: StoredBytes | None = None
    #: Pseudonyms of the people the served file leaves out (their consent excludes the ticket's grants).
    withheld: frozenset[str] = frozenset()

    @property
    def size(self) -> int:
        """Size of what this ticket reads: the plaintext, or the encrypted file re-keyed to the recipient."""
        if self.reencryption is None or not isinstance(self.file, EncryptedFile):
            return self.file.plaintext_size
        return len(self.reencryption.header) + self.file.file_size - self.file.header_size

    @property
    def mime_type(self) -> str:
        return self.row.mime_type if self.reencryption is None else "application/octet-stream"

    def reencrypted_parts(self, start: int, end: int) -> tuple[bytes, int, int]:
        """Bytes ``[start, end)`` of the file re-keyed to the recipient: ``(header slice, first, last)``.

        The slice of the new header they cover, followed by the stored bytes ``[first, last)``: ciphertext
        segments, sent as they are, never decrypted or re-encrypted.
        """
        assert self.reencryption is not None and isinstance(self.file, EncryptedFile)
        header = self.reencryption.header
        shift = self.file.header_size - len(header)
        first, last = max(start, len(header)) + shift, max(end, len(header)) + shift
        return header[start:end], first, max(first, last)

    def close(self) -> None:
        self.file.close()
        if self.stored is not None:
            self.stored.close()


class TicketReads:
    """What ``/data`` serves: the bytes a data ticket opens, for as long as the access it was issued under lasts."""

    def __init__(
        self,
        database: Database,
        objects: ObjectStore,
        secret_key: bytes,
        tickets: TicketSigner,
        policy: AccessPolicy,
        subsets: Subsets,
        audit: AuditLog,
    ) -> None:
        self.database = database
        self.objects = objects
        #: The node's Crypt4GH secret key: stored files are decrypted (or re-keyed for a recipient) with it.
        self.secret_key = secret_key
        self.tickets = tickets
        self.policy = policy
        self.subsets = subsets
        self.audit = audit

    def open(self, object_id: str, token: str) -> OpenedBlob:
        ticket = self.tickets.verify(token, object_id)
        row, withheld = self._still_readable(ticket)
        path = self.objects.local_path(row.blob_key)
        if is_plaintext(row.blob_key):
            if ticket.recipient_key:
                raise InvalidInput(f"{object_id} is stored unencrypted (public data): it is not served as Crypt4GH")
            return OpenedBlob(row, ticket, PlainFile(path), withheld=withheld)
        file = EncryptedFile(path, self.secret_key)
        if not ticket.recipient_key:
            return OpenedBlob(row, ticket, file, withheld=withheld)
        try:
            reencryption = file.reencrypted(ticket.recipient_key, [])
            return OpenedBlob(row, ticket, file, reencryption, StoredBytes(path), withheld)
        except BaseException:
            file.close()
            raise

    def _still_readable(self, ticket: Ticket) -> tuple[DataObject, frozenset[str]]:
        """The ticket's object, if the ticket still opens it (not expired, grants not revoked, file not closed).

        As served: itself, or its subset without the people (also returned) whose consent excludes the grants.
        """
        if ticket.expires < time.time():
            raise Unauthenticated("data ticket expired: ask DRS or htsget for a new URL")
        if not is_wellformed_id(ticket.object_id):
            raise NotFound(f"no object {ticket.object_id!r}")
        with self.database.sessions() as session:
            row = session.get(DataObject, ticket.object_id)
        if row is None or row.dataset_id != ticket.dataset_id:
            raise NotFound(f"no object {ticket.object_id!r}")
        self.policy.check_ticket(ticket)
        withheld = self.policy.check_object(row, ticket.grants)
        served = self.subsets.served(row, withheld)
        if ticket.version is not None and served.sha256 != ticket.version:
            raise PermissionDenied(
                f"{row.id} has changed since this ticket was issued (a participant's consent changed): ask again"
            )
        return served, withheld

    def recheck(self, opened: OpenedBlob) -> None:
        """Raise if access to an object being streamed has ended (expiry, revocation, withdrawal) since it opened.

        A download is one GET for most clients (curl, wget, browsers, DRS clients), so checking only when a
        request arrives would let a revoked or expired ticket stream a whole file; ``/data`` calls this every
        few seconds while it streams.
        """
        self._still_readable(opened.ticket)

    def record_read(self, opened: OpenedBlob, start: int, end: int, method: str) -> None:
        """One audit entry per range served."""
        self.audit.record(
            Entry(
                actor=opened.ticket.actor,
                action="data.read",
                resource=f"objects/{opened.row.id}",
                decision="permit",
                reason="valid ticket",
                details={
                    "dataset": opened.row.dataset_id,
                    "start": start,
                    "end": end,
                    "method": method,
                    "grants": list(opened.ticket.grants),
                    "reencrypted": opened.reencryption is not None,
                    # Whose data the bytes held: usage reports tell each participant (consent may leave some out).
                    "withheld": sorted(opened.withheld),
                },
            )
        )


def copy_plaintext(objects: ObjectStore, secret_key: bytes, row: DataObject, target: Path) -> None:
    """Write the plaintext of a stored object to ``target`` (a staging file of the node's own work)."""
    path = objects.local_path(row.blob_key)
    if is_plaintext(row.blob_key):
        shutil.copyfile(path, target)
        return
    with EncryptedFile(path, secret_key) as stored, target.open("wb") as out:
        for piece in stored.iter_plaintext():
            out.write(piece)
