"""A Beacon variant index kept in the node's object store, when that store is not the local disk.

A node whose objects live in S3 keeps its indexes there too: one more disk-bound thing fewer, and every
server process reads the same copy. The index is built in local staging (as before), then its files go up
under ``beacon/DATASET/SHA256/`` (a partitioned build's parts first, its manifest last: a reader sees the
manifest only once every part it names is there). A server opens each file as a seekable handle over
ranged GETs (``StoredFile``): it reads the footer once, then only the record batches a query touches, into
the bounded cache of ``serving``. Nothing is copied to local disk.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from genoshare.crypt.files import PositionalIO
from genoshare.index.build import INDEX_FILE, PARQUET_INDEX_FILE
from genoshare.index.schema import MANIFEST
from genoshare.index.serving import StoredFile
from genoshare.store.objects import LocalObjectStore, ObjectStore


def kept_in_store(objects: ObjectStore) -> bool:
    """Indexes live beside the objects when those are remote; on a local store, in the data directory."""
    return not isinstance(objects, LocalObjectStore)


def publish_index(objects: ObjectStore, built: Path, key: str) -> None:
    """Upload the index files written in ``built`` under ``key``/, the manifest (if any) last; ``built`` is emptied."""
    files = sorted(path for path in built.rglob("*") if path.is_file() and not path.name.startswith("."))
    files.sort(key=lambda path: path.name == MANIFEST)
    for path in files:
        objects.put(path, f"{key}/{path.relative_to(built).as_posix()}")
    shutil.rmtree(built, ignore_errors=True)


def stored_index(objects: ObjectStore, key: str) -> list[StoredFile]:
    """The files of the index under ``key``/ in the store, as the server opens them (ranged reads)."""
    names = [INDEX_FILE]
    if objects.exists(f"{key}/{MANIFEST}"):
        names = list(json.loads(objects.read_bytes(f"{key}/{MANIFEST}"))["parts"])
    elif not objects.exists(f"{key}/{INDEX_FILE}") and objects.exists(f"{key}/{PARQUET_INDEX_FILE}"):
        names = [PARQUET_INDEX_FILE]  # published before the Arrow layout
    return [StoredFile(f"{key}/{name}", partial(_open, objects, f"{key}/{name}")) for name in names]


def delete_index(objects: ObjectStore, key: str) -> None:
    """Remove every object of the index under ``key``/ (after a withdrawal replaced the file it indexed)."""
    for name in objects.keys(f"{key}/"):
        objects.delete(name)


def _open(objects: ObjectStore, key: str) -> BinaryIO:
    return cast(BinaryIO, PositionalIO(objects.open(key)))
