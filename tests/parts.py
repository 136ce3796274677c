"""A node's parts without a ``Node``: what a service's unit test builds the service from.

Real components (a migrated database of either kind, a file object store, a Crypt4GH key pair, a keyed
audit chain, the access policy, a ticket signer), made here one by one as ``genoshare.node`` makes them, so
a test shows a service needs exactly the parts its constructor names and nothing reached through a node.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from genoshare.access.policy import AccessPolicy
from genoshare.access.tickets import TicketSigner
from genoshare.audit import AuditLog
from genoshare.crypt.keys import KeyPair, generate_keypair
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.governance.subsets import Subsets
from genoshare.settings import Settings, load_settings
from genoshare.store.db import Database, migrate
from genoshare.store.models import DataObject
from genoshare.store.objects import ObjectStore, create_object_store

from support import PUBLIC_URL

TICKET_TTL = 120


@dataclass
class Parts:
    settings: Settings
    database: Database
    objects: ObjectStore
    keys: KeyPair
    audit: AuditLog
    policy: AccessPolicy
    tickets: TicketSigner
    subsets: Subsets

    def public_dataset(self, dataset_id: str = "open") -> None:
        DatasetService(self.database).create(
            NewDataset(
                id=dataset_id,
                title="Open",
                custodian="C",
                access_level="public",
                duo_codes=["NRES"],
                pseudonymise=False,
            )
        )


def _no_subset(row: DataObject, keep: list[str], action: str) -> object:
    """Public data with nobody's consent narrowed never needs a subset; asking for one is the test failing."""
    raise AssertionError(f"{action}: no subset of {row.id} should be made here")


@contextmanager
def node_parts(tmp_path: Path, database_url: str) -> Iterator[Parts]:
    settings = load_settings(tmp_path / "parts", database_url=database_url, public_url=PUBLIC_URL, environment="test")
    settings.data_dir.mkdir(mode=0o700, parents=True)
    database = Database(database_url)
    migrate(database.engine)
    keys = generate_keypair(settings.keys_dir, "node")
    audit = AuditLog(database, settings.keys_dir / "audit.key")
    audit.ensure_head()
    audit.create_key()
    objects = create_object_store(settings.objects_url)
    policy = AccessPolicy(audit, database, PUBLIC_URL)
    tickets = TicketSigner(secrets.token_bytes(32), TICKET_TTL)
    subsets = Subsets(database, objects, _no_subset)  # type: ignore[arg-type]
    try:
        yield Parts(settings, database, objects, keys, audit, policy, tickets, subsets)
    finally:
        database.dispose()
