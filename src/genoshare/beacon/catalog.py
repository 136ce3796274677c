"""Which datasets exist and which variant indexes each serves, cached for a fraction of a second.

A Beacon request must not cost a full metadata read; a steward's change (a new dataset, a new index, an
access level) is seen after at most ``max_age`` seconds, in every server process, without notification.
Each index is served by ``genoshare.index.serving.VariantIndex`` (footers read once, record batches read
as queries touch them into one cache of ``cache_bytes`` for all of them), from the data directory or, on a
node whose objects are in S3, from the object store (``genoshare.index.stored``), and kept until the index
is rebuilt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from genoshare.index.serving import CACHE_BYTES, BatchCache, StoredFile, VariantIndex
from genoshare.index.stored import kept_in_store, stored_index
from genoshare.store.beacon_tables import BeaconVariantIndex
from genoshare.store.db import Database
from genoshare.store.models import Dataset
from genoshare.store.objects import ObjectStore


@dataclass(frozen=True)
class ServedIndex:
    row: BeaconVariantIndex
    #: One dataset inside, named by the index's object id.
    source: VariantIndex


#: "Never read": ``time.monotonic()`` counts from boot, so on a machine up for less than ``max_age`` a
#: stamp of -1 looked fresh and a new catalog served no datasets at all.
_NEVER = float("-inf")


class Catalog:
    def __init__(
        self,
        database: Database,
        data_dir: Path,
        max_age: float = 0.5,
        objects: ObjectStore | None = None,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.database = database
        #: One cache for every index served: the process's memory for them is bounded whatever their number.
        self.cache = BatchCache(cache_bytes)
        self.data_dir = data_dir
        #: Where indexes are read from when they are kept in a remote object store (``index.stored``).
        self.objects = objects if objects is not None and kept_in_store(objects) else None
        self.max_age = max_age
        self._datasets: tuple[float, list[Dataset]] = (_NEVER, [])
        self._indexes: dict[str, ServedIndex] = {}
        self._index_version: tuple[float, tuple[int, object]] = (_NEVER, (-1, None))
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Read the datasets (and their policies) again on next use."""
        self._datasets = (_NEVER, [])

    def datasets(self) -> list[Dataset]:
        loaded_at, rows = self._datasets
        if time.monotonic() - loaded_at < self.max_age:
            return rows
        with self.database.reads() as session:
            rows = list(session.scalars(select(Dataset).order_by(Dataset.id)))
        self._datasets = (time.monotonic(), rows)
        return rows

    def indexes(self, dataset_id: str) -> list[ServedIndex]:
        self._refresh_indexes()
        return [served for served in self._indexes.values() if served.row.dataset_id == dataset_id]

    def _refresh_indexes(self) -> None:
        checked_at, version = self._index_version
        if time.monotonic() - checked_at < self.max_age:
            return
        with self._lock:
            with self.database.reads() as session:
                count, latest = session.execute(select(func.count(), func.max(BeaconVariantIndex.built_at))).one()
                current = (int(count), latest)
                rows = list(session.scalars(select(BeaconVariantIndex))) if current != version else []
            if current != version:
                self._reload(rows)
            self._index_version = (time.monotonic(), current)

    def _reload(self, rows: list[BeaconVariantIndex]) -> None:
        fresh: dict[str, ServedIndex] = {}
        for row in rows:
            known = self._indexes.get(row.object_id)
            if known is not None and known.row.built_at == row.built_at:
                fresh[row.object_id] = known
            else:
                index = VariantIndex({row.object_id: self._files(row)}, self.cache)
                fresh[row.object_id] = ServedIndex(row, index)
        self._indexes = fresh

    def _files(self, row: BeaconVariantIndex) -> Path | list[StoredFile]:
        if self.objects is not None:
            return stored_index(self.objects, row.path)
        return self.data_dir / row.path
