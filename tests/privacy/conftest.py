"""A migrated metadata database with two datasets, for the privacy defences' tests.

SQLite for now; the lead's shared fixture will run the same tests on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genoshare.store.db import Database, migrate
from genoshare.store.models import Dataset


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'privacy.db'}"


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database.engine)
    with database.session() as session:
        for dataset_id, level in (("cohort", "controlled"), ("open", "public")):
            session.add(Dataset(id=dataset_id, title=dataset_id, custodian="steward", access_level=level))
    yield database
    database.dispose()
