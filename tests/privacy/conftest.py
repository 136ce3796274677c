"""A migrated metadata database with two datasets, for the privacy defences' tests.

``database_url`` is the shared fixture: every test here runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from genoshare.store.db import Database, migrate
from genoshare.store.models import Dataset


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database.engine)
    with database.session() as session:
        for dataset_id, level in (("cohort", "controlled"), ("open", "public")):
            session.add(Dataset(id=dataset_id, title=dataset_id, custodian="steward", access_level=level))
    yield database
    database.dispose()
