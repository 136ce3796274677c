"""The ingest pipeline: stage every file, then publish all of them or none.

Each file is validated, de-identified, checksummed, indexed and encrypted in a staging area first
(``genoshare.ingest.staging``; several files at once in worker processes with ``jobs``,
``genoshare.ingest.workers``); one database transaction at the end publishes the whole batch, in the order
the files were named, with its participants and their Beacon individuals (the variant index, built from the
files after that, only reads their numbers).

Blobs are stored under their content checksum, so a crash leaves at most unreferenced blobs (invisible,
reclaimable) and never a half-published object; re-ingesting the same source file is recognised by its
checksum and skipped.  Blobs are Crypt4GH-encrypted (key ``blobs/xx/<sha256>.c4gh``), except in public
datasets created with ``--store-plaintext``, whose files are stored as they are (key ``blobs/xx/<sha256>``
plus the format's extension; see ``genoshare.access.at_rest`` and ``genoshare.store.blobs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genoshare.access.at_rest import check_plaintext_allowed
from genoshare.audit import AuditLog, Entry
from genoshare.crypt.keys import KeyPair, NodeKeys, storing_encrypted
from genoshare.errors import Conflict
from genoshare.formats import FileFormat
from genoshare.ids import object_id
from genoshare.index.published import BeaconIndexer, assign_sample_numbers
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.ingest.errors import IngestError
from genoshare.ingest.staging import StageContext, StagedFile, StageProgress, Unchanged, link_or_copy, stage_progress

# Re-exported: the re-derivation after a withdrawal checksums and indexes as ingest does.
from genoshare.ingest.staging import build_index as build_index
from genoshare.ingest.staging import file_checksums as file_checksums
from genoshare.ingest.workers import stage_all
from genoshare.store.db import Database, lock_stored_keys
from genoshare.store.models import DataObject, Dataset, ObjectParticipant, Participant, PendingRemoval
from genoshare.store.objects import ObjectStore


@dataclass
class Staged:
    file: StagedFile
    row: DataObject


@dataclass
class IngestResult:
    published: list[DataObject] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


class Ingestor:
    def __init__(
        self,
        database: Database,
        objects: ObjectStore,
        keys: KeyPair | NodeKeys,
        audit: AuditLog,
        pseudonymiser: Pseudonymiser,
        indexer: BeaconIndexer,
    ) -> None:
        self.database = database
        self.objects = objects
        #: The node's Crypt4GH keys: every file is stored encrypted to them.
        self.keys = keys
        self.audit = audit
        self.pseudonymiser = pseudonymiser
        self.indexer = indexer

    def ingest(
        self,
        dataset_id: str,
        paths: Sequence[Path],
        progress: StageProgress | None = None,
        actor: str = "steward",
        jobs: int = 1,
    ) -> IngestResult:
        """Stage ``paths``, ``jobs`` files at a time in worker processes (one: in this process), then publish."""
        with self.database.sessions() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                raise IngestError(Path(dataset_id), "no such dataset: create it first (genoshare datasets create)")
            if dataset.store_plaintext:
                check_plaintext_allowed(dataset.id, dataset.access_level)
            known = dict(
                session.execute(
                    select(DataObject.source_sha256, DataObject.name).where(DataObject.dataset_id == dataset_id)
                ).all()
            )
        self.objects.sweep_staging()
        result = IngestResult()
        with self.objects.work_dir("ingest") as workdir:
            staged: list[Staged] = []
            # Files are encrypted as they are staged and stored at the end: no node-key rotation may retire
            # the key they were encrypted to in between.
            with storing_encrypted(self.keys):
                context = StageContext(
                    dataset_id=dataset.id,
                    pseudonymise=dataset.pseudonymise,
                    store_plaintext=dataset.store_plaintext,
                    pseudonymiser=self.pseudonymiser,
                    public_key=self.keys.public,
                    workdir=workdir,
                )
                outcomes = stage_all(context, [Path(path) for path in paths], set(known), jobs, progress)
                for outcome in outcomes:
                    # A file named twice (or two copies of one) is staged once by the serial path, maybe twice
                    # by workers: either way the first is published and the others are unchanged.
                    if isinstance(outcome, Unchanged) or outcome.source_sha256 in known:
                        result.unchanged.append(known[outcome.source_sha256])
                        continue
                    staged.append(Staged(outcome, self._row(dataset_id, outcome)))
                    known[outcome.source_sha256] = outcome.name
                self._publish(dataset_id, staged, result, actor)
            self._index_variants(dataset_id, staged, progress)
        return result

    @staticmethod
    def _row(dataset_id: str, staged: StagedFile) -> DataObject:
        fmt = staged.format
        return DataObject(
            id=object_id(dataset_id, staged.name),
            dataset_id=dataset_id,
            name=staged.name,
            htsget_id=staged.stem,
            format=fmt.value,
            size=staged.size,
            md5=staged.md5,
            sha256=staged.sha256,
            source_sha256=staged.source_sha256,
            blob_key=staged.blob_key,
            index_key=f"indexes/{staged.sha256[:2]}/{staged.sha256}.{fmt.index_format}",
            index_format=fmt.index_format,
            mime_type=fmt.mime_type,
        )

    def _publish(self, dataset_id: str, staged: list[Staged], result: IngestResult, actor: str) -> None:
        if not staged:
            return
        # A second name for each staged file: ``put`` consumes it, and skips storing bytes already there.
        spares: dict[str, Path] = {}
        try:
            for item in staged:
                for path, key in ((item.file.blob, item.row.blob_key), (item.file.index, item.row.index_key or "")):
                    spares[key] = path.with_name(path.name + ".spare")
                    link_or_copy(path, spares[key])
                    self.objects.put(path, key)
            with self.database.session() as session:
                for item in staged:
                    self._check_names_free(session, item)
                    session.add(item.row)
                    self._link_participants(session, dataset_id, item.row.id, item.file.pseudonyms)
                    if FileFormat(item.row.format).is_variants:
                        # The people's Beacon numbers, in the transaction that publishes them: a clash refuses
                        # the batch here, not after its files are served.
                        assign_sample_numbers(session, dataset_id, list(item.file.pseudonyms.values()))
                session.flush()
                # Bytes that were there already may have been deleted since by a removal that found no row
                # using them; held now, a removal sees these rows once they commit (``delete_unused``).
                lock_stored_keys(session, spares)
                for key, spare in spares.items():
                    if not self.objects.exists(key):
                        self.objects.put(spare, key)
        except BaseException as error:
            # Nothing is published (a conflict, a failing store or database, Ctrl-C): what was stored for it is
            # left to ``genoshare objects sweep`` (which keeps bytes that published data uses), never
            # unrecorded at rest.
            if spares:
                with self.database.session() as session:
                    session.add_all(
                        PendingRemoval(key=key, kind="object", removal=f"ingest/{dataset_id}") for key in spares
                    )
            if not isinstance(error, IntegrityError):
                raise
            raise Conflict(
                f"another ingest or a deletion changed dataset {dataset_id} meanwhile; nothing was published "
                f"({error.orig})"
            ) from error
        for item in staged:
            result.published.append(item.row)
            self.audit.record(
                Entry(
                    actor,
                    "ingest",
                    f"objects/{item.row.id}",
                    "publish",
                    details={"dataset": dataset_id, "sha256": item.row.sha256, "records": item.file.records},
                )
            )

    def _index_variants(self, dataset_id: str, staged: list[Staged], progress: StageProgress | None) -> None:
        """Build the Beacon variant index of each published VCF/BCF.

        It runs after publish: the files are served either way, and ``genoshare beacon-index`` redoes a
        failed build.
        """
        for item in staged:
            if not FileFormat(item.row.format).is_variants:
                continue
            stage_progress(progress, item.file.source.name, "index")(0, 1)
            try:
                self.indexer.index_object(dataset_id, item.row, item.file.plain)
            except (OSError, ValueError) as error:
                raise IngestError(
                    item.file.source,
                    f"published, but its Beacon index failed ({error}); run `genoshare beacon-index {dataset_id}`",
                ) from error
            stage_progress(progress, item.file.source.name, "index")(1, 1)

    @staticmethod
    def _check_names_free(session: Session, item: Staged) -> None:
        if session.get(DataObject, item.row.id) is not None:
            raise Conflict(
                f"{item.file.source.name}: object {item.row.id} exists with other content; "
                "rename the file to add it as a new object"
            )
        holder = session.scalar(
            select(DataObject.dataset_id).where(
                DataObject.htsget_id == item.row.htsget_id, DataObject.format == item.row.format
            )
        )
        if holder is not None:
            raise Conflict(
                f"{item.file.source.name}: htsget id {item.row.htsget_id!r} ({item.row.format}) is taken by dataset "
                f"{holder}; htsget ids are node-wide, so rename the file"
            )

    def _link_participants(self, session: Session, dataset_id: str, object_id: str, names: dict[str, str]) -> None:
        """Record each sample as a participant of the dataset (once) and as present in this file."""
        known = {
            p.source_key: p for p in session.scalars(select(Participant).where(Participant.dataset_id == dataset_id))
        }
        for source_name, stored_name in names.items():
            source_key = self.pseudonymiser.source_key(dataset_id, source_name)
            participant = known.get(source_key)
            if participant is None:
                participant = Participant(dataset_id=dataset_id, pseudonym=stored_name, source_key=source_key)
                session.add(participant)
                session.flush()
                known[source_key] = participant
            session.add(ObjectParticipant(object_id=object_id, participant_id=participant.id))
