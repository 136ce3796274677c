"""Stored objects read back: Crypt4GH-encrypted (every dataset) or plaintext (public datasets that ask).

A blob's key says how it is stored: keys ending ``.c4gh`` are Crypt4GH files encrypted to the node's key;
any other key is the plaintext itself, which only a public dataset created with ``--store-plaintext`` gets
(``genoshare.access.at_rest``).  Keying on the blob rather than on the dataset's current setting means a file
is always read the way it was written.

Every reader of stored bytes goes through here: ``/data`` (``genoshare.drs.reads``), htsget, and the node's
own background work (Beacon indexing, re-derivation after a withdrawal) through ``copy_plaintext``.

Plaintext objects are read by position into fresh buffers, in large pieces (64 KiB pieces streamed at a
fifth of the rate of 1 MiB ones): ``os.preadv`` on a local file, whose pieces in the page cache are read
without leaving the event loop, or a ranged GET on an object in an S3 store.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from genoshare.crypt.files import ENCRYPTED_SUFFIX, EncryptedFile, LocalFile, Positional
from genoshare.crypt.keys import SecretKeys
from genoshare.errors import NotFound
from genoshare.store.models import DataObject
from genoshare.store.objects import ObjectStore

#: Pieces in which ``copy_plaintext`` reads a plaintext object (a ranged GET each on an S3 store).
_COPY_PIECE = 8 * 1024 * 1024
#: ``preadv2`` flag: fail with EAGAIN rather than wait for the disk (Linux >= 4.14); 0 where unavailable.
_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)


def is_plaintext(blob_key: str) -> bool:
    """Whether a blob is stored as plaintext (public datasets created with ``--store-plaintext``)."""
    return not blob_key.endswith(ENCRYPTED_SUFFIX)


class StoredBytes:
    """A blob's bytes as stored, read by position from several threads at once.

    What the node streams without transforming: a plaintext blob (:class:`PlainFile`), and the ciphertext
    segments of a Crypt4GH blob sent as they are to a recipient under a re-keyed header.  Both go through
    this one reader, so both get the same cheap path (see :meth:`cached_view`).
    """

    def __init__(self, source: Path | Positional) -> None:
        """Read ``source``: a local path, or stored bytes (which this reader then owns and closes)."""
        self._source = LocalFile(Path(source)) if isinstance(source, str | os.PathLike) else source
        self.path = Path(self._source.name)
        self.size: int = self._source.size
        #: A local file's descriptor, for reads from the page cache that never wait (-1: not a local file).
        self._fd = self._source.fd if isinstance(self._source, LocalFile) else -1

    def view(self, start: int, end: int) -> memoryview:
        """Bytes ``[start, end)`` clamped to the file, in a buffer made for this call (safe to hand to a socket)."""
        start, view = self._buffer(start, end)
        got = 0
        while got < len(view):
            n = self._source.readinto(view[got:], start + got)
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
        if not _NOWAIT or self._fd < 0:
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
        self._source.close()
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


def copy_plaintext(objects: ObjectStore, secret_key: SecretKeys, row: DataObject, target: Path) -> None:
    """Write the plaintext of a stored object to ``target`` (a staging file of the node's own work)."""
    source = objects.open(row.blob_key)
    if is_plaintext(row.blob_key):
        with PlainFile(source) as stored, target.open("wb") as out:
            for start in range(0, stored.size, _COPY_PIECE):
                out.write(stored.view(start, start + _COPY_PIECE))
        return
    with EncryptedFile(source, secret_key) as stored, target.open("wb") as out:
        for piece in stored.iter_plaintext():
            out.write(piece)
