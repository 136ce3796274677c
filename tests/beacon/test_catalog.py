"""The Beacon's catalog of datasets and variant indexes, which it re-reads at most every ``max_age`` seconds."""

from __future__ import annotations

import time

from genoshare.beacon.catalog import Catalog
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node


def test_a_new_catalog_reads_the_datasets_on_first_use_however_long_the_machine_has_been_up(node: Node) -> None:
    """``time.monotonic()`` counts from boot: a catalog made soon after boot must not take "never read" as fresh."""
    DatasetService(node.database).create(NewDataset("cohort", "a cohort", "Clinic", "controlled", ["GRU"]))
    catalog = Catalog(node.database, node.settings.data_dir, max_age=time.monotonic() + 3600)
    assert [dataset.id for dataset in catalog.datasets()] == ["cohort"]
    DatasetService(node.database).create(NewDataset("later", "another", "Clinic", "public", ["NRES"]))
    assert [dataset.id for dataset in catalog.datasets()] == ["cohort"]  # within max_age: the copy it read
    catalog.invalidate()
    assert [dataset.id for dataset in catalog.datasets()] == ["cohort", "later"]
