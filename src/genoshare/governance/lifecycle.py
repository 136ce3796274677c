"""Deleting a dataset and removing a file: what goes, in which order, and what the audit log keeps.

Serving stops first, atomically: one database transaction deletes the rows every API reads (the object
rows DRS, htsget and ``/data`` look up, the Beacon's variant-index rows and people) together with the audit
entry that records who did it. A ``/data`` stream of a removed file re-checks its object while it streams
(``genoshare.drs.reads``) and is cut as after a withdrawal; Beacon servers reload their indexes within
half a second (``genoshare.beacon.catalog``). Only then are the stored bytes deleted: the encrypted file,
its index, the per-consent subsets made from it, and the Beacon index files. What is to go is written,
in that same transaction, as ``PendingRemoval`` rows, each deleted once its bytes are: a failure there (the
store down, a read-only directory, the process killed) leaves unreferenced bytes that nothing serves, named in
a second audit entry (``fail``) and in the error, and kept as pending. ``genoshare check`` reports them and
``Lifecycle.sweep`` (``genoshare objects sweep``) deletes them, audited.

A dataset's grants are deleted with it (the visas the node signed for it name a dataset that no longer
exists, and ``genoshare.datasets`` refuses to create one under a deleted id, so they never open anything
again); its access requests stay, with the dataset rejected (pending) or revoked (approved) in each. A
file's removal leaves the dataset's grants and requests alone: they cover the dataset, not the file.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from genoshare.audit import AuditLog, Entry
from genoshare.errors import GenoshareError, NotFound
from genoshare.governance.requests import _overall, dataset_state
from genoshare.ids import is_wellformed_id
from genoshare.store.beacon_tables import BeaconBiosample, BeaconIndividual, BeaconVariantIndex
from genoshare.store.db import Database, lock_stored_keys, write_first
from genoshare.store.models import (
    AccessRequest,
    DataObject,
    Dataset,
    DatasetDecision,
    Grant,
    ObjectParticipant,
    Participant,
    PendingRemoval,
    RequestDocument,
    utcnow,
)
from genoshare.store.objects import ObjectStore
from genoshare.store.privacy_tables import PrivacyAnswer, PrivacySession, PrivacySpend

log = logging.getLogger("genoshare.governance")
#: What a request's pending or approved dataset becomes when the dataset is deleted.
_ENDED = {"pending": "rejected", "approved": "revoked"}


@dataclass
class Removal:
    """What a deletion took away, or, for a dry run, what it would take away."""

    #: ``dataset`` or ``object``
    kind: str
    id: str
    dataset: str
    dry_run: bool
    #: DRS ids of the files no API serves any more.
    objects: list[str] = field(default_factory=list)
    #: Object-store keys: encrypted files, their indexes, per-consent subsets and their manifests.
    stored: list[str] = field(default_factory=list)
    #: Beacon variant-index directories, relative to the data directory.
    beacon_indexes: list[str] = field(default_factory=list)
    #: Grants (visa ``jti``) deleted with the dataset.
    grants: list[str] = field(default_factory=list)
    #: Access request id -> what the dataset's decision in it became.
    requests: dict[str, str] = field(default_factory=dict)
    participants: int = 0
    #: Stored keys that could not be deleted (nothing serves them; the audit log names them).
    left: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def stored_keys(objects: ObjectStore, rows: Iterable[DataObject]) -> list[str]:
    """Every stored key of these files: each one's bytes and index, and the subsets made from them.

    A subset manifest that cannot be read is still listed (its own key), its blob is not: logged.
    """
    keys: list[str] = []
    for row in rows:
        keys += [row.blob_key, *([row.index_key] if row.index_key else [])]
        for manifest in objects.keys(f"subsets/{row.sha256[:2]}/{row.sha256}/"):
            try:
                subset = json.loads(objects.read_bytes(manifest))
                keys += [subset["blob_key"], subset["index_key"]]
            except (GenoshareError, OSError, ValueError, KeyError) as error:
                log.warning("subset manifest %s unreadable (%s); its blob stays", manifest, error)
            keys.append(manifest)
    return list(dict.fromkeys(keys))


def unshared(session: Session, keys: Sequence[str], leaving: Iterable[str] = ()) -> list[str]:
    """``keys`` that no other file row uses (keys are content checksums: two rows may hold the same bytes)."""
    gone = list(leaving)
    used = set(
        session.scalars(select(DataObject.blob_key).where(DataObject.blob_key.in_(keys), DataObject.id.not_in(gone)))
    ) | set(
        session.scalars(select(DataObject.index_key).where(DataObject.index_key.in_(keys), DataObject.id.not_in(gone)))
    )
    return [key for key in keys if key not in used]


def forget_answers(session: Session, dataset_id: str) -> None:
    """Drop the Beacon answers the privacy defences cached for a dataset whose variants changed.

    A cached answer may say "exists" for an allele only a removed file held. Budgets spent stay. Touching each
    principal's session row makes every server process read its copy again (``SqlPrivacyState``'s check).
    """
    session.execute(delete(PrivacyAnswer).where(PrivacyAnswer.dataset_id == dataset_id))
    session.execute(update(PrivacySession).where(PrivacySession.dataset_id == dataset_id).values(updated_at=utcnow()))


def _ended_requests(session: Session, dataset_id: str) -> list[tuple[AccessRequest, str]]:
    """The requests in which the dataset is pending or approved, and what it becomes in each."""
    found = []
    for request in session.scalars(select(AccessRequest).order_by(AccessRequest.created_at)):
        state = dataset_state(request, dataset_id) if dataset_id in request.datasets else ""
        if state in _ENDED:
            found.append((request, _ENDED[state]))
    return found


def delete_stored(objects: ObjectStore, keys: Iterable[str]) -> list[str]:
    """Delete each key; the ones that could not be deleted, logged."""
    left = []
    for key in keys:
        try:
            objects.delete(key)
        except (GenoshareError, OSError) as error:
            log.warning("stored %s not deleted: %s", key, error)
            left.append(key)
    return left


@dataclass
class Sweep:
    """What ``Lifecycle.sweep`` did with the pending removals."""

    #: Deleted now (object keys, and Beacon index directories relative to the data directory).
    done: list[str] = field(default_factory=list)
    #: Still not deletable: kept as pending.
    left: list[str] = field(default_factory=list)
    #: Not deleted because data published since uses them (keys are content checksums): no longer pending.
    kept: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def still_used(session: Session, keys: Sequence[str]) -> set[str]:
    """The keys that stored data uses again: the same bytes published since (under the same checksum key).

    A file, its index, a request document; a per-consent subset of a file with that checksum; a Beacon index
    under a path the index table names.
    """
    used = set(keys) - set(unshared(session, keys))
    used |= set(session.scalars(select(RequestDocument.blob_key).where(RequestDocument.blob_key.in_(keys))))
    checksums = {key.split("/")[2] for key in keys if key.startswith("subsets/") and key.count("/") >= 3}
    if checksums:
        live = set(session.scalars(select(DataObject.sha256).where(DataObject.sha256.in_(checksums))))
        used |= {key for key in keys if key.startswith("subsets/") and key.split("/")[2] in live}
    indexes = list(session.scalars(select(BeaconVariantIndex.path)))
    used |= {
        key
        for key in keys
        if any(key == path or key.startswith(f"{path}/") or path.startswith(f"{key}/") for path in indexes)
    }
    return used


#: Keys checked and deleted per hold of the stored keys' lock: what an ingest of the same bytes waits for at most.
_DELETE_BATCH = 16


def delete_unused(database: Database, objects: ObjectStore, keys: Sequence[str]) -> tuple[list[str], set[str]]:
    """Delete the stored ``keys`` no data uses now: the ones that could not be deleted, and the ones kept as used.

    Checked again, and deleted, holding the keys (``lock_stored_keys``) a batch at a time: an ingest of the same
    bytes (keys are checksums) skips storing them when they are there, so one that committed since the removal
    decided keeps them here, and one committing after this finds them gone and stores them again. The lock is
    not the database's write turn (on SQLite either), and nothing here writes: Beacon answers and audit entries
    go on while the bytes are deleted.
    """
    left: list[str] = []
    used: set[str] = set()
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start : start + _DELETE_BATCH]
        with database.session() as session:
            lock_stored_keys(session, batch)
            now = still_used(session, batch)
            left += delete_stored(objects, [key for key in batch if key not in now])
        used |= now
    return left, used


def delete_recorded(database: Database, objects: ObjectStore, keys: Sequence[str], removal: str) -> list[str]:
    """``delete_unused`` for a deletion outside ``Lifecycle`` (a withdrawal's old copy): pending until gone."""
    with database.session() as session:
        session.add_all(PendingRemoval(key=key, kind="object", removal=removal) for key in keys)
    left = delete_unused(database, objects, keys)[0]
    with database.session() as session:
        session.execute(
            delete(PendingRemoval).where(
                PendingRemoval.removal == removal, PendingRemoval.key.in_(keys), PendingRemoval.key.not_in(left)
            )
        )
    return left


class Lifecycle:
    """Deletes datasets and removes files: ``genoshare datasets delete`` and ``genoshare objects remove``."""

    def __init__(self, database: Database, objects: ObjectStore, audit: AuditLog, data_dir: Path) -> None:
        self.database = database
        self.objects = objects
        self.audit = audit
        self.data_dir = data_dir

    def remove_object(self, object_id: str, actor: str, *, dry_run: bool = False) -> Removal:
        with self.database.sessions() as session:
            row = session.get(DataObject, object_id) if is_wellformed_id(object_id) else None
            if row is None:
                raise NotFound(f"no DRS object {object_id!r} (see `genoshare objects list DATASET`)")
            keys = unshared(session, stored_keys(self.objects, [row]), [row.id])
            indexed = select(BeaconVariantIndex.path).where(BeaconVariantIndex.object_id == row.id)
            indexes = list(session.scalars(indexed))
            people = int(session.scalar(select(func.count()).where(ObjectParticipant.object_id == row.id)) or 0)
        # Beacon index files: in the data directory, or beside the objects when those are remote.
        keys += [key for index in indexes for key in self.objects.keys(f"{index}/")]
        removal = Removal("object", row.id, row.dataset_id, dry_run, [row.id], keys, indexes, participants=people)
        if dry_run:
            return removal
        with self.database.session() as session:
            session.execute(delete(BeaconVariantIndex).where(BeaconVariantIndex.object_id == row.id))
            session.execute(delete(ObjectParticipant).where(ObjectParticipant.object_id == row.id))
            session.execute(delete(DataObject).where(DataObject.id == row.id))
            if indexes:
                forget_answers(session, row.dataset_id)
            _pending(session, removal)
            self.audit.record_in(
                session.connection(),
                Entry(
                    actor,
                    "objects.remove",
                    f"objects/{row.id}",
                    "delete",
                    "file removed by the operator",
                    {"dataset": row.dataset_id, "sha256": row.sha256, "name": row.name, "stored": keys},
                ),
            )
        return self._delete_bytes(removal, actor)

    def delete_dataset(self, dataset_id: str, actor: str, *, dry_run: bool = False) -> Removal:
        if dry_run:
            with self.database.sessions() as session:
                return self._dataset_removal(session, dataset_id, dry_run)[1]
        # The store is listed (a request per file on S3) before the write turn is taken, not while others wait.
        with self.database.sessions() as session:
            rows = session.scalars(select(DataObject).where(DataObject.dataset_id == dataset_id))
            listed = {row.id: stored_keys(self.objects, [row]) for row in rows}
        listed[""] = self.objects.keys(f"beacon/{dataset_id}/")
        with self.database.session() as session:
            # What goes is read in the transaction that deletes it, with the dataset locked: an ingest into it
            # publishes wholly before (and its rows and bytes are in this removal) or fails after.
            write_first(session)
            dataset, removal = self._dataset_removal(session, dataset_id, dry_run, listed)
            ids = removal.objects
            for table in (BeaconVariantIndex, BeaconBiosample, BeaconIndividual):
                session.execute(delete(table).where(table.dataset_id == dataset_id))
            session.execute(delete(ObjectParticipant).where(ObjectParticipant.object_id.in_(ids)))
            session.execute(delete(DataObject).where(DataObject.dataset_id == dataset_id))
            session.execute(delete(Grant).where(Grant.dataset_id == dataset_id))
            self._end_requests(session, dataset_id, actor)
            session.execute(delete(Participant).where(Participant.dataset_id == dataset_id))
            for privacy in (PrivacyAnswer, PrivacySpend, PrivacySession):
                session.execute(delete(privacy).where(privacy.dataset_id == dataset_id))
            session.execute(delete(Dataset).where(Dataset.id == dataset_id))
            _pending(session, removal)
            self.audit.record_in(
                session.connection(),
                Entry(
                    actor,
                    "datasets.delete",
                    f"datasets/{dataset_id}",
                    "delete",
                    "dataset deleted by the operator",
                    {
                        "title": dataset.title,
                        "objects": ids,
                        "grants": removal.grants,
                        "requests": removal.requests,
                        "participants": removal.participants,
                        "stored": removal.stored,
                    },
                ),
            )
        return self._delete_bytes(removal, actor)

    def _dataset_removal(
        self, session: Session, dataset_id: str, dry_run: bool, listed: dict[str, list[str]] | None = None
    ) -> tuple[Dataset, Removal]:
        """What deleting the dataset takes away, read with its row locked.

        ``FOR UPDATE``: an ingest's insert waits for it, where a plain update of the row would not conflict with
        the insert's foreign-key lock (PostgreSQL's key-share lock). ``listed``: the stored keys of each file
        (by DRS id) and of the Beacon index (under ``""``), listed before; only the files published since and
        the Beacon indexes not seen then are listed here.
        """
        locked = select(Dataset).where(Dataset.id == dataset_id).with_for_update()
        dataset = session.scalar(locked) if is_wellformed_id(dataset_id) else None
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r} (see `genoshare datasets list`)")
        listed = listed or {}
        rows = list(session.scalars(select(DataObject).where(DataObject.dataset_id == dataset_id)))
        ids = [row.id for row in rows]
        keys = [key for row in rows if row.id in listed for key in listed[row.id]]
        keys += stored_keys(self.objects, [row for row in rows if row.id not in listed])
        keys = unshared(session, list(dict.fromkeys(keys)), ids)
        grants = list(session.scalars(select(Grant.id).where(Grant.dataset_id == dataset_id)))
        requests = {request.id: ended for request, ended in _ended_requests(session, dataset_id)}
        people = int(session.scalar(select(func.count()).where(Participant.dataset_id == dataset_id)) or 0)
        beacon = [f"beacon/{dataset_id}"] if (self.data_dir / "beacon" / dataset_id).exists() else []
        if "" not in listed:
            keys += self.objects.keys(f"beacon/{dataset_id}/")
        else:
            keys += listed[""]
            indexed = select(BeaconVariantIndex.path).where(BeaconVariantIndex.dataset_id == dataset_id)
            for path in session.scalars(indexed):
                if not any(key.startswith(f"{path}/") for key in listed[""]):
                    keys += self.objects.keys(f"{path}/")
        return dataset, Removal("dataset", dataset_id, dataset_id, dry_run, ids, keys, beacon, grants, requests, people)

    def _end_requests(self, session: Session, dataset_id: str, actor: str) -> None:
        """The deleted dataset's decision in each request: pending ones rejected, approved ones revoked."""
        now = utcnow()
        for request, status in _ended_requests(session, dataset_id):
            ended: DatasetDecision = {
                "status": status,
                "by": actor,
                "at": now.isoformat(),
                "note": f"dataset {dataset_id} was deleted",
            }
            request.decisions = {**(request.decisions or {}), dataset_id: ended}
            request.status = _overall([dataset_state(request, d) for d in request.datasets])

    def _delete_bytes(self, removal: Removal, actor: str) -> Removal:
        """After the rows are gone (nothing serves the bytes any more): the stored files and Beacon indexes."""
        removal.left = delete_unused(self.database, self.objects, removal.stored)[0]
        removal.left += self._delete_directories(removal.beacon_indexes)
        with self.database.session() as session:
            session.execute(
                delete(PendingRemoval).where(
                    PendingRemoval.removal == f"{removal.kind}s/{removal.id}", PendingRemoval.key.not_in(removal.left)
                )
            )
        if removal.left:
            self.audit.record(
                Entry(
                    actor,
                    f"{removal.kind}s.delete" if removal.kind == "dataset" else "objects.remove",
                    f"{removal.kind}s/{removal.id}",
                    "fail",
                    f"{len(removal.left)} stored file(s) could not be deleted; nothing serves them",
                    {"left": removal.left},
                )
            )
        return removal

    def pending(self) -> list[PendingRemoval]:
        """What earlier removals left to delete, oldest first."""
        with self.database.sessions() as session:
            return list(session.scalars(select(PendingRemoval).order_by(PendingRemoval.id)))

    def sweep(self, actor: str) -> Sweep:
        """Delete what earlier removals left behind; audited when there was anything to do.

        A key that data published since uses again (the same bytes ingested anew: keys are checksums) is not
        deleted, only no longer pending. Run after an ingest's publication, a key is re-checked here, not when
        the removal was made. What still fails stays pending, for the next sweep.
        """
        pending = self.pending()
        if not pending:
            return Sweep()
        keys = list(dict.fromkeys(row.key for row in pending if row.kind == "object"))
        directories = list(dict.fromkeys(row.key for row in pending if row.kind == "directory"))
        outcome = Sweep()
        outcome.left, used = delete_unused(self.database, self.objects, keys)
        with self.database.sessions() as session:
            used |= still_used(session, directories)
        outcome.kept = [key for key in keys + directories if key in used]
        outcome.left += self._delete_directories([path for path in directories if path not in used])
        outcome.done = [key for key in keys + directories if key not in used and key not in outcome.left]
        with self.database.session() as session:
            session.execute(
                delete(PendingRemoval).where(
                    PendingRemoval.id.in_([row.id for row in pending]), PendingRemoval.key.not_in(outcome.left)
                )
            )
        self.audit.record(
            Entry(
                actor,
                "objects.sweep",
                "objects/pending-removals",
                "fail" if outcome.left else "delete",
                f"{len(outcome.done)} stored file(s) left by removals deleted, {len(outcome.left)} still not",
                {**outcome.as_dict(), "removals": sorted({row.removal for row in pending})},
            )
        )
        return outcome

    def _delete_directories(self, relatives: Iterable[str]) -> list[str]:
        """Remove each Beacon index directory under the data directory; the ones that could not be, logged."""
        left = []
        for relative in relatives:
            try:
                shutil.rmtree(self.data_dir / relative)
            except FileNotFoundError:
                pass
            except OSError as error:
                log.warning("Beacon index %s not deleted: %s", relative, error)
                left.append(relative)
        return left


def _pending(session: Session, removal: Removal) -> None:
    """Every key and Beacon index directory the removal is to delete, in the transaction that commits to it."""
    name = f"{removal.kind}s/{removal.id}"
    session.add_all(PendingRemoval(key=key, kind="object", removal=name) for key in removal.stored)
    session.add_all(PendingRemoval(key=path, kind="directory", removal=name) for path in removal.beacon_indexes)
