"""Which datasets exist and which variant indexes each serves, cached for a fraction of a second.

A Beacon request must not cost a full metadata read; a steward's change (a new dataset, a new index, an
access level) is seen after at most ``max_age`` seconds, in every server process, without notification.
Each index is served by ``genoshare.index.serving.VariantIndex`` (numpy columns in memory), loaded once and
kept until the index is rebuilt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from genoshare.index.serving import VariantIndex
from genoshare.store.beacon_tables import BeaconVariantIndex
from genoshare.store.db import Database
from genoshare.store.models import Dataset


@dataclass(frozen=True)
class ServedIndex:
    row: BeaconVariantIndex
    #: One dataset inside, named by the index's object id.
    source: VariantIndex


#: "Never read": ``time.monotonic()`` counts from boot, so on a machine up for less than ``max_age`` a
#: stamp of -1 looked fresh and a new catalog served no datasets at all.
_NEVER = float("-inf")


class Catalog:
    def __init__(self, database: Database, data_dir: Path, max_age: float = 0.5) -> None:
        self.database = database
        self.data_dir = data_dir
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
        with self.database.sessions() as session:
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
            with self.database.sessions() as session:
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
                fresh[row.object_id] = ServedIndex(row, VariantIndex({row.object_id: self._path(row)}))
        self._indexes = fresh

    def _path(self, row: BeaconVariantIndex) -> Path:
        return self.data_dir / row.path
