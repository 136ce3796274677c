"""Object storage behind one small interface, chosen from a URL like the database.

``file://root`` keeps objects as files; ``s3://bucket/prefix`` keeps them in an S3-compatible store
(``S3ObjectStore``).  Either way ``put`` takes a finished local file (an atomic rename here, a single PUT or
a multipart upload there: S3 publishes an object only once it is whole) and ``open`` reads stored bytes by
position (``os.preadv`` here, ranged GETs there: a data file is never copied whole to local disk).  Only
small objects that are parsed whole (htsget indexes) get a local copy, through ``local_copy``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlparse

from genoshare.crypt.files import LocalFile, Positional
from genoshare.errors import InvalidInput, NotFound, Unavailable
from genoshare.settings import S3Settings

if TYPE_CHECKING:
    from genoshare.store.ledger import Ledger


class ObjectStore(Protocol):
    def put(self, source: Path, key: str) -> None:
        """Store ``source`` under ``key`` atomically: readers see the whole object or none."""
        ...

    def replace(self, source: Path, key: str) -> bool:
        """Store ``source`` under ``key`` in place of the object there (a rotation's new header, same length).

        Only while the object is there: one deleted meanwhile (a file removed, a withdrawn participant's old
        file) stays deleted, and ``replace`` returns False. Readers that opened the object before go on reading
        the bytes they opened (a file store) or, the length being the same, the new bytes, whose segments are
        the old ones (an S3 store).
        """
        ...

    def exists(self, key: str) -> bool: ...

    def open(self, key: str) -> Positional:
        """The object's bytes, read by position (raises ``NotFound`` if it is not there)."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """A small object's bytes, whole (manifests)."""
        ...

    def local_copy(self, key: str) -> Path:
        """A file on this machine with a small object's whole bytes (indexes that engines parse from a path)."""
        ...

    def check(self) -> None:
        """Raise ``Unavailable`` if the store cannot be read and written now (readiness probes)."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object if it is there (readers that already opened it keep their bytes)."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (a folder-like key ending in ``/``)."""
        ...

    def staging_dir(self) -> Path:
        """Scratch space on the same file system as the store, so that ``put`` can rename."""
        ...

    def work_dir(self, prefix: str) -> AbstractContextManager[Path]:
        """A private scratch directory in staging, removed on exit, and by ``sweep_staging`` after a crash."""
        ...

    def sweep_staging(self) -> list[str]:
        """Remove what dead processes left in staging (plaintext included); returns the names removed."""
        ...


#: Beside staging: every process that works in staging holds its lock shared; a sweep needs it exclusively.
_STAGING_LOCK = ".staging.lock"
#: Beside the objects: a replace (is the object still there? then rename) and a delete hold it exclusively.
_WRITES_LOCK = ".writes.lock"
#: The store's lock files: empty, created by the first process that needs one, runtime state of this machine.
LOCK_FILES = (_STAGING_LOCK, _WRITES_LOCK)


class LocalObjectStore:
    """Objects as files under ``root``: 0700 directories and 0600 files, whatever the umask."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise InvalidInput(f"object key escapes the store: {key!r}")
        return path

    def put(self, source: Path, key: str) -> None:
        target = self._path(key)
        if target.exists():
            # Keys are content checksums: an existing object already holds these bytes.
            source.unlink(missing_ok=True)
            return
        os.replace(self._staged(source, target), target)

    def replace(self, source: Path, key: str) -> bool:
        target = self._path(key)
        staged = self._staged(source, target)
        with self._writes():
            if not target.is_file():
                staged.unlink()
                return False
            os.replace(staged, target)  # a reader's open descriptor keeps the file it opened
        return True

    def _staged(self, source: Path, target: Path) -> Path:
        """``source`` moved beside ``target`` (0600), ready to be renamed onto it."""
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.move(source, staged)
        os.chmod(staged, 0o600)
        return staged

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._writes():
            path.unlink(missing_ok=True)

    @contextmanager
    def _writes(self) -> Iterator[None]:
        """Held by a replace and a delete, in every process: a replace never brings back a deleted object."""
        with _lock_file(self.root / _WRITES_LOCK) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        return sorted(str(path.relative_to(root)) for path in folder.rglob("*") if path.is_file())

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object bytes missing from the store: {key}")
        return path

    def open(self, key: str) -> Positional:
        # A lexical check, not ``_path``'s resolve (a stat per directory, on every read): the node writes every
        # file in the store itself, never a link.
        if key.startswith("/") or ".." in PurePosixPath(key).parts or not PurePosixPath(key).parts:
            raise InvalidInput(f"object key escapes the store: {key!r}")
        try:
            return LocalFile(self.root / key)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"object bytes missing from the store: {key}") from None

    def read_bytes(self, key: str) -> bytes:
        return self.local_path(key).read_bytes()

    def local_copy(self, key: str) -> Path:
        return self.local_path(key)

    def check(self) -> None:
        if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            raise Unavailable(f"object store {self.root} is not readable and writable by the node")

    def staging_dir(self) -> Path:
        staging = self.root / ".staging"
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        return staging

    @contextmanager
    def work_dir(self, prefix: str) -> Iterator[Path]:
        staging = self.staging_dir()
        with _staging_lock(staging) as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            work = staging / f"{prefix}-{uuid.uuid4().hex}"
            work.mkdir(mode=0o700)
            try:
                yield work
            finally:
                shutil.rmtree(work, ignore_errors=True)

    def sweep_staging(self) -> list[str]:
        """Only when no process works in staging: the shared locks die with their processes, ``kill -9`` too."""
        staging = self.staging_dir()
        with _staging_lock(staging) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []
            removed = []
            for leftover in staging.iterdir():
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                removed.append(leftover.name)
            return removed


def _staging_lock(staging: Path) -> AbstractContextManager[int]:
    return _lock_file(staging.parent / _STAGING_LOCK)


@contextmanager
def _lock_file(path: Path) -> Iterator[int]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        yield descriptor
    finally:
        os.close(descriptor)  # releases the lock


def create_object_store(
    url: str, s3: S3Settings | None = None, scratch: Path | None = None, ledger: Ledger | None = None
) -> ObjectStore:
    """The store at ``url``; an ``s3://`` one is reached with ``s3`` and stages in ``scratch`` (a local directory).

    An S3 store records what it writes in ``ledger``, and checks its reads against it (``genoshare.store.ledger``).
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise InvalidInput(f"objects_url {url!r}: name a bucket (s3://bucket/prefix)")
        if scratch is None:
            raise InvalidInput(f"objects_url {url!r}: an S3 store needs a local scratch directory")
        from genoshare.store.s3 import S3ObjectStore  # boto3 is loaded only by nodes that use S3

        prefix = parsed.path.strip("/")
        return S3ObjectStore(
            parsed.netloc, prefix, s3 or S3Settings(), LocalObjectStore(scratch), scratch / "cache", ledger
        )
    raise InvalidInput(f"unsupported objects_url {url!r}: write file:///path or s3://bucket/prefix")
