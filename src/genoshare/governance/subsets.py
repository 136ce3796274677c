"""Shared files served without the people whose narrowed consent excludes the caller's grant.

``AccessPolicy.check_object`` names who is excluded (the one decision point); this module serves the file
without them.  The subset is made with the re-derivation's own mechanism (``Rederiver.derive``: htslib drops
the VCF/BCF columns or BAM/CRAM read groups, a CRAM re-encoded with the reference htslib builds from its
reads and embeds; index, checksums and Crypt4GH as on ingest) once per stored file and set of people kept,
and found again through a small manifest published last, atomically, under a key made of both: a crash
before it leaves no manifest, and the next request derives again.  A new consent gives a new key, so
narrowing and widening take effect at the next request; a file re-derived after a withdrawal has a new
checksum, so its subsets are made afresh.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from sqlalchemy import select

from genoshare.errors import GenoshareError, Unavailable
from genoshare.governance.consent import ACTIVE
from genoshare.store.db import Database
from genoshare.store.models import DataObject, ObjectParticipant, Participant
from genoshare.store.objects import ObjectStore

if TYPE_CHECKING:
    from genoshare.governance.rederive import Derived

#: Stores ``row``'s file with only the people ``keep``, a failure audited under ``action``: the re-derivation's
#: own mechanism (``Rederiver.derive_or_report``), given by the composition root.
Derive = Callable[[DataObject, list[str], str], "Derived"]

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def manifest_key(row: DataObject, keep: list[str]) -> str:
    """Where the subset of ``row`` holding only ``keep`` is described; the same for the same bytes and people."""
    digest = hashlib.sha256("\n".join([row.sha256, *sorted(keep)]).encode()).hexdigest()
    return f"subsets/{row.sha256[:2]}/{row.sha256}/{digest}.json"


class Subsets:
    """Makes and finds the subsets served to grants that some people's narrowed consent excludes."""

    def __init__(self, database: Database, objects: ObjectStore, derive: Derive) -> None:
        self.database = database
        self.objects = objects
        self.derive = derive

    def served(self, row: DataObject, excluded: frozenset[str]) -> DataObject:
        """``row`` as this caller may get it: itself, or its subset without ``excluded`` (not a database row)."""
        if not excluded:
            return row
        with self.database.sessions() as session:
            names = session.scalars(
                select(Participant.pseudonym)
                .join(ObjectParticipant, ObjectParticipant.participant_id == Participant.id)
                .where(ObjectParticipant.object_id == row.id, Participant.consent_status == ACTIVE)
            )
            keep = sorted(name for name in names if name not in excluded)
        key = manifest_key(row, keep)
        with _lock(key):
            if not self.objects.exists(key):
                with self.objects.work_dir("subset") as work:
                    try:
                        derived = self.derive(row, keep, "consent.subset")
                    except GenoshareError as error:
                        raise Unavailable(
                            f"{row.id} cannot be served now without the people whose consent excludes this use "
                            f"(preparing that copy failed: {error.message}); the node's stewards see it in its "
                            "audit log"
                        ) from error
                    staged = work / "manifest.json"
                    staged.write_text(json.dumps(asdict(derived)))
                    self.objects.put(staged, key)
            stored = json.loads(self.objects.read_bytes(key))
        values = {column.key: getattr(row, column.key) for column in DataObject.__table__.columns}
        values.update({name: stored[name] for name in ("blob_key", "index_key", "md5", "sha256", "size")})
        return DataObject(**values)


def _lock(key: str) -> threading.Lock:
    """One derivation per subset at a time in this process; another process at worst derives the same bytes."""
    with _locks_guard:
        if len(_locks) > 10_000:
            _locks.clear()
        return _locks.setdefault(key, threading.Lock())
