"""Object storage behind one small interface, chosen from a URL like the database.

Only ``file://`` exists today. The interface is shaped so that an S3-compatible backend can implement it:
``put`` takes a finished local file (multipart upload there, an atomic rename here) and ``local_path``
is the one place where a remote backend would materialise a cached copy for pysam and random access.
"""

from __future__ import annotations

import os
import shutil
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

    def staging_dir(self) -> Path:
        """Scratch space on the same file system as the store, so that ``put`` can rename."""
        ...


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise InvalidInput(f"object key escapes the store: {key!r}")
        return path

    def put(self, source: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # Keys are content checksums: an existing object already holds these bytes.
            source.unlink(missing_ok=True)
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.move(source, tmp)
        os.replace(tmp, target)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object bytes missing from the store: {key}")
        return path

    def staging_dir(self) -> Path:
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging


def create_object_store(url: str) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(unquote(parsed.path)))
    raise InvalidInput(f"unsupported objects_url {url!r}: only file:// stores exist in this version")
