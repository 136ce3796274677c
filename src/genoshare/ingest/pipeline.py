"""The ingest pipeline: stage every file, then publish all of them or none.

Each file is validated, de-identified, checksummed, indexed and encrypted in a staging area first; one
database transaction at the end publishes the whole batch, with its participants and their Beacon
individuals (the variant index, built from the files after that, only reads their numbers).

Blobs are stored under their content checksum, so a crash leaves at most unreferenced blobs (invisible,
reclaimable) and never a half-published object; re-ingesting the same source file is recognised by its
checksum and skipped.  Blobs are Crypt4GH-encrypted (key ``blobs/xx/<sha256>.c4gh``), except in public
datasets created with ``--store-plaintext``, whose files are stored as they are (key ``blobs/xx/<sha256>``
plus the format's extension; see ``genoshare.access.at_rest`` and ``genoshare.store.blobs``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pysam
from pysam import bcftools
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genoshare.access.at_rest import check_plaintext_allowed
from genoshare.audit import AuditLog, Entry
from genoshare.crypt.files import encrypt_file
from genoshare.crypt.keys import KeyPair, NodeKeys, storing_encrypted
from genoshare.errors import Conflict
from genoshare.formats import FileFormat, detect, is_bgzf, split_name
from genoshare.ids import check_object_name, object_id
from genoshare.index.published import BeaconIndexer, assign_sample_numbers
from genoshare.ingest.deidentify import Pseudonymiser, rename_samples, scrub_names
from genoshare.ingest.errors import IngestError
from genoshare.ingest.identifiers import check_for_identifiers, check_raw_header
from genoshare.ingest.reads import deidentify_reads
from genoshare.ingest.validate import FileReport, validate
from genoshare.store.db import Database, lock_stored_keys
from genoshare.store.models import DataObject, Dataset, ObjectParticipant, Participant, PendingRemoval
from genoshare.store.objects import ObjectStore

#: Called with (file name, stage, done, total); stages: checksum, validate, rewrite (BAM/CRAM
#: de-identification), encrypt, index.
StageProgress = Callable[[str, str, int, int], None]
_CHUNK = 1 << 20


@dataclass
class Staged:
    source: Path
    report: FileReport
    row: DataObject
    blob: Path
    index: Path
    #: The stored file's plaintext, kept in staging until the Beacon variant index is built from it.
    plain: Path
    #: sample name in the steward's file -> name in the stored file
    pseudonyms: dict[str, str] = field(default_factory=dict)


@dataclass
class IngestResult:
    published: list[DataObject] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def file_checksums(path: Path, progress: Callable[[int, int], None] | None = None) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return md5.hexdigest(), sha256.hexdigest()


def build_index(path: Path, fmt: FileFormat) -> Path:
    """Always rebuilt from the stored bytes: an index shipped beside a file may not match it."""
    try:
        if fmt is FileFormat.VCF:
            pysam.tabix_index(str(path), preset="vcf", force=True, keep_original=True)
        elif fmt is FileFormat.BCF:
            bcftools.index("--csi", "--force", str(path), catch_stdout=False)
        else:
            pysam.index(str(path), catch_stdout=False)
    except (OSError, ValueError, pysam.utils.SamtoolsError) as error:
        raise IngestError(path, f"could not build the {fmt.index_format} index: {error}") from error
    index = path.with_name(path.name + "." + fmt.index_format)
    if not index.is_file():
        raise IngestError(path, f"indexing produced no {fmt.index_format} file")
    return index


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
        self, dataset_id: str, paths: Sequence[Path], progress: StageProgress | None = None, actor: str = "steward"
    ) -> IngestResult:
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
                for path in paths:
                    path = Path(path)
                    source_sha = file_checksums(path, _stage(progress, path.name, "checksum"))[1]
                    if source_sha in known:
                        result.unchanged.append(known[source_sha])
                        continue
                    staged.append(self._stage_file(dataset, path, source_sha, workdir, progress))
                    known[source_sha] = staged[-1].row.name
                self._publish(dataset_id, staged, result, actor)
            self._index_variants(dataset_id, staged, progress)
        return result

    def _stage_file(
        self, dataset: Dataset, path: Path, source_sha: str, workdir: Path, progress: StageProgress | None
    ) -> Staged:
        fmt = detect(path)
        plain = workdir / f"{uuid.uuid4().hex}{fmt.extension}"
        if fmt is FileFormat.VCF and not is_bgzf(path):
            if path.name.lower().endswith(".gz"):
                raise IngestError(path, "compressed with plain gzip, not BGZF: recompress with bgzip")
            pysam.tabix_compress(str(path), str(plain), force=True)
            source = plain
        else:
            source = path
        if fmt is not FileFormat.CRAM:
            check_raw_header(source, fmt, shown_as=path)
        report = validate(source, fmt, _stage(progress, path.name, "validate"), shown_as=path)
        if fmt is FileFormat.CRAM:
            check_for_identifiers(path, report.header)
        # Who is in the file, by the name the stored file will carry (pseudonym, or the public name).
        names = {
            sample: self.pseudonymiser.pseudonym(dataset.id, sample) if dataset.pseudonymise else sample
            for sample in report.samples
        }
        if dataset.pseudonymise and fmt.is_variants:
            renamed = workdir / f"{plain.name}.renamed"
            rename_samples(source, renamed, report.header, names)
            renamed.replace(plain)
        elif dataset.pseudonymise:
            namer = self.pseudonymiser.read_namer(dataset.id)
            deidentify_reads(source, plain, fmt, names, namer, _stage(progress, path.name, "rewrite"))
        elif source is not plain:
            shutil.copyfile(source, plain)
        stem = split_name(path.name)[0]
        if dataset.pseudonymise:
            stem = scrub_names(stem, names)
        name = check_object_name(stem + fmt.extension)
        index = build_index(plain, fmt)
        md5, sha256 = file_checksums(plain)
        if dataset.store_plaintext:
            # A second name for the staged file: the store moves the blob in, the Beacon index reads ``plain``.
            blob = plain.with_name(plain.name + ".blob")
            _link_or_copy(plain, blob)
            blob_key = f"blobs/{sha256[:2]}/{sha256}{fmt.extension}"
        else:
            blob = plain.with_name(plain.name + ".c4gh")
            encrypt_file(plain, blob, self.keys)
            _stage(progress, path.name, "encrypt")(1, 1)
            blob_key = f"blobs/{sha256[:2]}/{sha256}.c4gh"
        row = DataObject(
            id=object_id(dataset.id, name),
            dataset_id=dataset.id,
            name=name,
            htsget_id=stem,
            format=fmt.value,
            size=plain.stat().st_size,
            md5=md5,
            sha256=sha256,
            source_sha256=source_sha,
            blob_key=blob_key,
            index_key=f"indexes/{sha256[:2]}/{sha256}.{fmt.index_format}",
            index_format=fmt.index_format,
            mime_type=fmt.mime_type,
        )
        return Staged(path, report, row, blob, index, plain, names)

    def _publish(self, dataset_id: str, staged: list[Staged], result: IngestResult, actor: str) -> None:
        if not staged:
            return
        # A second name for each staged file: ``put`` consumes it, and skips storing bytes already there.
        spares = {}
        for item in staged:
            for path, key in ((item.blob, item.row.blob_key), (item.index, item.row.index_key or "")):
                spares[key] = path.with_name(path.name + ".spare")
                _link_or_copy(path, spares[key])
                self.objects.put(path, key)
        try:
            with self.database.session() as session:
                for item in staged:
                    self._check_names_free(session, item)
                    session.add(item.row)
                    self._link_participants(session, dataset_id, item.row.id, item.pseudonyms)
                    if FileFormat(item.row.format).is_variants:
                        # The people's Beacon numbers, in the transaction that publishes them: a clash refuses
                        # the batch here, not after its files are served.
                        assign_sample_numbers(session, dataset_id, list(item.pseudonyms.values()))
                session.flush()
                # Bytes that were there already may have been deleted since by a removal that found no row
                # using them; held now, a removal sees these rows once they commit (``delete_unused``).
                lock_stored_keys(session, spares)
                for key, spare in spares.items():
                    if not self.objects.exists(key):
                        self.objects.put(spare, key)
        except (IntegrityError, Conflict) as error:
            # Nothing is published: what was stored for it is left to ``genoshare objects sweep`` (which keeps
            # bytes that published data uses), never unrecorded at rest.
            with self.database.session() as session:
                session.add_all(
                    PendingRemoval(key=key, kind="object", removal=f"ingest/{dataset_id}") for key in spares
                )
            if isinstance(error, Conflict):
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
                    details={"dataset": dataset_id, "sha256": item.row.sha256, "records": item.report.records},
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
            _stage(progress, item.source.name, "index")(0, 1)
            try:
                self.indexer.index_object(dataset_id, item.row, item.plain)
            except (OSError, ValueError) as error:
                raise IngestError(
                    item.source,
                    f"published, but its Beacon index failed ({error}); run `genoshare beacon-index {dataset_id}`",
                ) from error
            _stage(progress, item.source.name, "index")(1, 1)

    @staticmethod
    def _check_names_free(session: Session, item: Staged) -> None:
        if session.get(DataObject, item.row.id) is not None:
            raise Conflict(
                f"{item.source.name}: object {item.row.id} exists with other content; "
                "rename the file to add it as a new object"
            )
        holder = session.scalar(
            select(DataObject.dataset_id).where(
                DataObject.htsget_id == item.row.htsget_id, DataObject.format == item.row.format
            )
        )
        if holder is not None:
            raise Conflict(
                f"{item.source.name}: htsget id {item.row.htsget_id!r} ({item.row.format}) is taken by dataset "
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


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _stage(progress: StageProgress | None, name: str, stage: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(name, stage, done, total)

    return report
