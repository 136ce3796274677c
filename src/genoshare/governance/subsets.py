"""Shared files served without the people whose narrowed consent excludes the caller's grant.

``AccessPolicy.check_object`` names who is excluded (the one decision point); this module serves the file
without them.  The subset is made with the re-derivation's own mechanism (``rederive.derive``: htslib drops
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
from dataclasses import asdict

from sqlalchemy import select

from genoshare.errors import GenoshareError, Unavailable
from genoshare.governance.consent import ACTIVE
from genoshare.node import Node
from genoshare.store.models import DataObject, ObjectParticipant, Participant

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def manifest_key(row: DataObject, keep: list[str]) -> str:
    """Where the subset of ``row`` holding only ``keep`` is described; the same for the same bytes and people."""
    digest = hashlib.sha256("\n".join([row.sha256, *sorted(keep)]).encode()).hexdigest()
    return f"subsets/{row.sha256[:2]}/{row.sha256}/{digest}.json"


def served_object(node: Node, row: DataObject, excluded: frozenset[str]) -> DataObject:
    """``row`` as this caller may get it: itself, or (not stored in the database) its subset without ``excluded``."""
    if not excluded:
        return row
    with node.database.sessions() as session:
        names = session.scalars(
            select(Participant.pseudonym)
            .join(ObjectParticipant, ObjectParticipant.participant_id == Participant.id)
            .where(ObjectParticipant.object_id == row.id, Participant.consent_status == ACTIVE)
        )
        keep = sorted(name for name in names if name not in excluded)
    key = manifest_key(row, keep)
    with _lock(key):
        if not node.objects.exists(key):
            # Imported here: the re-derivation reads blobs through ``genoshare.drs.stored``, which asks this
            # module for what a ticket serves.
            from genoshare.governance.rederive import derive_or_report

            with node.objects.work_dir("subset") as work:
                try:
                    derived = derive_or_report(node, row, keep, "consent.subset")
                except GenoshareError as error:
                    raise Unavailable(
                        f"{row.id} cannot be served now without the people whose consent excludes this use "
                        f"(preparing that copy failed: {error.message}); the node's stewards see it in its audit log"
                    ) from error
                staged = work / "manifest.json"
                staged.write_text(json.dumps(asdict(derived)))
                node.objects.put(staged, key)
        derived = json.loads(node.objects.local_path(key).read_text())
    values = {column.key: getattr(row, column.key) for column in DataObject.__table__.columns}
    values.update({name: derived[name] for name in ("blob_key", "index_key", "md5", "sha256", "size")})
    return DataObject(**values)


def _lock(key: str) -> threading.Lock:
    """One derivation per subset at a time in this process; another process at worst derives the same bytes."""
    with _locks_guard:
        if len(_locks) > 10_000:
            _locks.clear()
        return _locks.setdefault(key, threading.Lock())
