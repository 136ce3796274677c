"""Object storage behind one small interface, chosen from a URL like the database.

Only ``file://`` exists today. The interface is shaped so that an S3-compatible backend can implement it:
``put`` takes a finished local file (multipart upload there, an atomic rename here) and ``local_path``
is the one place where a remote backend would materialise a cached copy for pysam and random access.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from genoshare.errors import InvalidInput, NotFound


class ObjectStore(Protocol):
    def put(self, source: Path, key: str) -> None:
        """Store ``source`` under ``key`` atomically: readers see the whole object or none."""
        ...

    def exists(self, key: str) -> bool: ...

    def local_path(self, key: str) -> Path:
        """A path on this machine holding the object's bytes, for random access."""
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
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if target.exists():
            # Keys are content checksums: an existing object already holds these bytes.
            source.unlink(missing_ok=True)
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.move(source, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

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


@contextmanager
def _staging_lock(staging: Path) -> Iterator[int]:
    descriptor = os.open(staging.parent / _STAGING_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        yield descriptor
    finally:
        os.close(descriptor)  # releases the lock


def create_object_store(url: str) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(unquote(parsed.path)))
    raise InvalidInput(f"unsupported objects_url {url!r}: only file:// stores exist in this version")
