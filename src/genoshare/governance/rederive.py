"""Rewrites multi-sample files without the participants who withdrew, then serves them again.

The file is decrypted to the staging area, the withdrawn samples are dropped with htslib (bcftools for
VCF/BCF, ``genoshare.ingest.reads.keep_samples`` for BAM/CRAM), and the result goes through the same
index, checksum and encrypt steps as an ingest.  The object row is switched to the new bytes in one
transaction; until then the object is blocked (``status = rederiving``) and no API serves it.  A file
that would be left with no read stays blocked rather than be published empty.

A failure is one line in the audit log (``consent.rederive``, ``fail``), shown by ``genoshare consent
list`` and retried: by the server (with a growing delay), at its next start, and by ``genoshare consent
rederive``.  A VCF published before ingest refused undeclared contigs and tags is repaired (they are
declared) so that bcftools can subset it.  The replaced blob, index and subsets are deleted once the row
points at the new ones: a stream that already opened the old file keeps reading it (the bytes go when it
closes); no new request reaches it.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pysam
from pysam import bcftools
from pysam.utils import SamtoolsError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from genoshare.audit import AuditLog, Entry
from genoshare.crypt.errors import CryptError
from genoshare.crypt.files import encrypt_file
from genoshare.crypt.keys import KeyPair, NodeKeys, storing_encrypted
from genoshare.errors import Conflict, GenoshareError
from genoshare.formats import FileFormat
from genoshare.governance.consent import ACTIVE
from genoshare.governance.lifecycle import delete_recorded, stored_keys, unshared
from genoshare.index.published import BeaconIndexer, index_dir
from genoshare.index.stored import delete_index, kept_in_store
from genoshare.ingest.pipeline import build_index, file_checksums
from genoshare.ingest.reads import keep_samples
from genoshare.store.beacon_tables import BeaconVariantIndex
from genoshare.store.blobs import copy_plaintext
from genoshare.store.db import Database
from genoshare.store.models import DataObject, ObjectParticipant, Participant
from genoshare.store.objects import ObjectStore

ACTOR = "genoshare (consent re-derivation)"
#: The server retries a failed re-derivation after 1 min, then 2, 4 ... up to once an hour.
RETRY_FIRST_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0
log = logging.getLogger("genoshare.governance")


class RederivationFailed(GenoshareError):
    """A blocked file could not be rewritten; it stays blocked (the message is one line for the steward)."""


@dataclass(frozen=True)
class Rederivation:
    done: list[str]
    #: object id -> why it could not be rewritten (it stays blocked)
    failed: dict[str, str]


@dataclass(frozen=True)
class Blocked:
    """A file no API serves until it is rewritten without someone who withdrew."""

    object_id: str
    #: Why the last attempt failed; None while the first one is waiting or running.
    failure: str | None = None
    failed_at: datetime | None = None


@dataclass(frozen=True)
class Derived:
    """A file rewritten with some of its samples, stored like an ingest's: encrypted, indexed, checksummed."""

    blob_key: str
    index_key: str
    md5: str
    sha256: str
    size: int


class Rederiver:
    """Rewrites stored files with only some of their people: after a withdrawal, and for narrowed consent.

    Takes what it uses: the metadata database, the object store, the audit log, the node's Crypt4GH keys
    (to read and re-encrypt) and the Beacon indexer (a rewritten VCF/BCF is indexed again).
    """

    def __init__(
        self,
        database: Database,
        objects: ObjectStore,
        audit: AuditLog,
        keys: KeyPair | NodeKeys,
        indexer: BeaconIndexer,
    ) -> None:
        self.database = database
        self.objects = objects
        self.audit = audit
        self.keys = keys
        self.indexer = indexer

    def pending(self) -> list[str]:
        with self.database.sessions() as session:
            return list(session.scalars(select(DataObject.id).where(DataObject.status == "rederiving")))

    def rederive(self, object_id: str) -> bool:
        """Rewrite one blocked object; False when it is not blocked (any more).

        Someone in the file who withdraws while it is rewritten is still in the rewrite: it is not published,
        and the file is rewritten again without them (their withdrawal found the file blocked already).
        """
        while True:
            with self.database.sessions() as session:
                row = session.get(DataObject, object_id)
                if row is None or row.status != "rederiving":
                    return False
                people = _people(session, object_id)
            keep = [name for _, name, status in people if status == ACTIVE]
            gone = [pid for pid, _, status in people if status != ACTIVE]
            derived = self.derive_or_report(row, keep, "consent.rederive")
            with self.database.session() as session:
                # A write first, so that a withdrawal (which writes the row too) is wholly before or after this
                # transaction: SQLite's write lock, PostgreSQL's row lock.
                session.execute(update(DataObject).where(DataObject.id == object_id).values(status=DataObject.status))
                withdrew = set(keep) - {name for _, name, status in _people(session, object_id) if status == ACTIVE}
                stored_row = session.get(DataObject, object_id)
                assert stored_row is not None
                if not withdrew:
                    stored_row.blob_key, stored_row.index_key = derived.blob_key, derived.index_key
                    stored_row.md5, stored_row.sha256, stored_row.size = derived.md5, derived.sha256, derived.size
                    stored_row.status = "available"
                    session.execute(
                        delete(ObjectParticipant).where(
                            ObjectParticipant.object_id == object_id, ObjectParticipant.participant_id.in_(gone)
                        )
                    )
                switched = stored_row
            if not withdrew:
                break
            with self.database.sessions() as session:
                keys = unshared(session, [derived.blob_key, derived.index_key])
            delete_recorded(self.database, self.objects, keys, f"objects/{object_id}")
        self.audit.record(
            Entry(
                ACTOR,
                "consent.rederive",
                f"objects/{object_id}",
                "publish",
                f"rewritten without {len(gone)} withdrawn participant(s)",
                {"dataset": row.dataset_id, "sha256": derived.sha256},
            )
        )
        self._delete_replaced(row)
        self._reindex_beacon(row, switched)
        return True

    def _reindex_beacon(self, old: DataObject, new: DataObject) -> None:
        """Build the Beacon variant index of the rewritten file, then delete the old one (it held their carriers).

        Beacon answers leave a withdrawn person out from the moment of withdrawal either way; a failure here
        keeps the old index serving and is logged, ``genoshare beacon-index`` builds it again.
        """
        with self.database.sessions() as session:
            indexed = session.get(BeaconVariantIndex, old.id)
        if indexed is None or not FileFormat(new.format).is_variants:
            return
        try:
            with self.objects.work_dir("rederive-beacon") as work:
                plain = work / f"kept{FileFormat(new.format).extension}"
                copy_plaintext(self.objects, self.keys, new, plain)
                self.indexer.index_object(new.dataset_id, new, plain, indexed.assembly_id)
        except (GenoshareError, CryptError, OSError, ValueError) as error:
            log.warning("Beacon index of re-derived %s not rebuilt (%s); the old one still serves", new.id, error)
            return
        old_key, new_key = index_dir(old.dataset_id, old), index_dir(new.dataset_id, new)
        if old_key == new_key:
            return
        if kept_in_store(self.objects):
            delete_index(self.objects, old_key)
        else:
            shutil.rmtree(self.indexer.data_dir / old_key, ignore_errors=True)

    def derive_or_report(self, row: DataObject, keep: list[str], action: str) -> Derived:
        """``derive``, with a failure written to the audit log under ``action`` and raised as one line."""
        try:
            return self.derive(row, keep)
        except GenoshareError as error:
            self._record_failure(row, action, error.message)
            raise
        except (SamtoolsError, CryptError, OSError, ValueError) as error:
            message = _one_line(error)
            self._record_failure(row, action, message)
            raise RederivationFailed(message) from error

    def _record_failure(self, row: DataObject, action: str, message: str) -> None:
        self.audit.record(Entry(ACTOR, action, f"objects/{row.id}", "fail", message, {"dataset": row.dataset_id}))

    def _delete_replaced(self, old: DataObject) -> None:
        """Delete the withdrawn person's old copy: blob, index, and the subsets made from it.

        Keys are content checksums, so another object may hold the same bytes: those keys stay.
        """
        with self.database.sessions() as session:
            keys = unshared(session, stored_keys(self.objects, [old]))
        delete_recorded(self.database, self.objects, keys, f"objects/{old.id}")

    def derive(self, row: DataObject, keep: list[str]) -> Derived:
        """Store the object's file with only the samples ``keep`` (VCF/BCF columns, BAM/CRAM read groups).

        The plaintext exists only in a private staging directory, removed when done; the result is Crypt4GH
        encrypted to the node's key and put under content-addressed keys (atomically). Shared by the
        re-derivation after a withdrawal and the subsets served to grants that a narrowed consent excludes.
        """
        fmt = FileFormat(row.format)
        with self.objects.work_dir("rederive") as work:
            source = work / f"source{fmt.extension}"
            copy_plaintext(self.objects, self.keys, row, source)
            target = work / f"kept{fmt.extension}"
            _keep_samples(source, target, fmt, keep)
            index = build_index(target, fmt)
            md5, sha256 = file_checksums(target)
            blob = work / "kept.c4gh"
            blob_key = f"blobs/{sha256[:2]}/{sha256}.c4gh"
            index_key = f"indexes/{sha256[:2]}/{sha256}.{fmt.index_format}"
            with storing_encrypted(self.keys):  # a rotation retires no key this file was encrypted to
                encrypt_file(target, blob, self.keys)
                self.objects.put(blob, blob_key)
            self.objects.put(index, index_key)
            return Derived(blob_key, index_key, md5, sha256, target.stat().st_size)

    def rederive_pending(self) -> Rederivation:
        """Rewrite every blocked object. Safe to run again after a crash: what a killed run left is removed first."""
        self.objects.sweep_staging()
        outcome = Rederivation([], {})
        for object_id in self.pending():
            try:
                if self.rederive(object_id):
                    outcome.done.append(object_id)
            except GenoshareError as error:
                outcome.failed[object_id] = error.message
        return outcome

    def blocked(self, dataset_id: str) -> list[Blocked]:
        """The dataset's files waiting to be rewritten, with the last failure of each (from the audit log)."""
        with self.database.sessions() as session:
            ids = list(
                session.scalars(
                    select(DataObject.id)
                    .where(DataObject.dataset_id == dataset_id, DataObject.status == "rederiving")
                    .order_by(DataObject.id)
                )
            )
        found = []
        for object_id in ids:
            last = None
            for event in self.audit.entries(resource_prefix=f"objects/{object_id}"):
                if event.resource == f"objects/{object_id}" and event.action == "consent.rederive":
                    last = event
            if last is not None and last.decision == "fail":
                found.append(Blocked(object_id, last.reason, last.at))
            else:
                found.append(Blocked(object_id))
        return found


def _one_line(error: Exception) -> str:
    """Htslib's last complaint (bcftools prints its reason last), or the error itself, on one line."""
    text = str(error.value) if isinstance(error, SamtoolsError) else str(error) or type(error).__name__
    reason = text.rsplit("stderr=", 1)[-1]
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()


def _keep_samples(source: Path, target: Path, fmt: FileFormat, keep: list[str]) -> None:
    if fmt.is_variants:
        try:
            _subset_variants(source, target, fmt, keep)
        except SamtoolsError:
            # Published before ingest refused undeclared contigs and tags (bcftools will not subset those):
            # declare them as htslib reads them, then subset.
            declared = _declare_everything(source, target.with_name(f"declared{fmt.extension}"))
            if declared is None:
                raise
            _subset_variants(declared, target, fmt, keep)
        return
    if keep_samples(source, target, fmt, keep) == 0:
        raise Conflict("no read of a participant who still consents would remain; the file stays blocked")


#: INFO fields that describe the site, not the samples: the only ones a subset keeps besides the counts it
#: recomputes (``SAMPLE_COUNTS``).
SITE_INFO = frozenset({"END", "SVTYPE", "SVLEN", "CIPOS", "CIEND", "IMPRECISE", "DB", "H2", "H3", "ANN", "CSQ", "BCSQ"})
#: The sample-derived standard fields a subset recomputes from its own genotypes: (Number, Type).
SAMPLE_COUNTS = {"AC": ("A", "Integer"), "AN": ("1", "Integer"), "AF": ("A", "Float"), "NS": ("1", "Integer")}
_DESCRIPTIONS = {
    "AC": "Allele count in genotypes, for each ALT allele, in the same order as listed",
    "AN": "Total number of alleles in called genotypes",
    "AF": "Allele frequency, for each ALT allele, in the same order as listed",
    "NS": "Number of samples with data",
}


def _subset_variants(source: Path, target: Path, fmt: FileFormat, keep: list[str]) -> None:
    """The columns of ``keep`` only, without the alleles (and sites) that none of them carries.

    Alleles only the people left out carried are theirs alone (private variants, the most identifying part
    of a genome): kept as sites with ``AC=0`` they stayed in the file, and Beacon answered "exists" for them.
    Then the site summaries are made the kept samples' own (``_summarise_kept``).
    """
    subset = target.with_name("subset.bcf")  # uncompressed: read once, straight away
    bcftools.view(
        "--samples",
        ",".join(keep),
        "--force-samples",
        "--trim-alt-alleles",
        "--min-ac",
        "1",
        "--no-version",
        "-Ou",
        "-o",
        str(subset),
        str(source),
        catch_stdout=False,
    )
    _summarise_kept(subset, target, fmt)
    subset.unlink()


def _summarise_kept(source: Path, target: Path, fmt: FileFormat) -> None:
    """Recompute AC, AN, AF and NS from the kept genotypes, drop every other sample aggregate, blank QUAL.

    bcftools recomputes only AC and AN: the rest of INFO and QUAL were computed over everyone, the people
    left out included, and a stale AF or NS beside the new AC/AN gives their genotype away. Any INFO field
    not on the short list of site descriptions (``SITE_INFO``) goes, known or not: an unknown field may be
    an aggregate over the person removed (DP, MQ, an in-house count), and guessing wrong would leak them.
    QUAL is computed from every sample's reads, so it becomes missing. Declarations of the dropped fields
    stay in the header (harmless, and the file stays valid and subsettable).
    """
    verbosity = pysam.set_verbosity(0)  # not "Could not retrieve index": it is read once, start to end
    try:
        variants = pysam.VariantFile(str(source))
    finally:
        pysam.set_verbosity(verbosity)
    with variants:
        header = variants.header
        for key, (number, kind) in SAMPLE_COUNTS.items():
            declared = header.info.get(key)
            if declared is None:
                header.add_line(f'##INFO=<ID={key},Number={number},Type={kind},Description="{_DESCRIPTIONS[key]}">')
            elif (str(declared.number), declared.type) != (number, kind):
                raise ValueError(
                    f"INFO/{key} is declared Number={declared.number},Type={declared.type}, not"
                    f" Number={number},Type={kind}: it cannot be recomputed for the samples kept"
                )
        mode = "wz" if fmt is FileFormat.VCF else "wb"
        with pysam.VariantFile(str(target), mode, header=header) as out:
            for record in variants:
                for key in list(record.info):
                    if key not in SITE_INFO:
                        del record.info[key]
                record.qual = None
                _fill_counts(record)
                out.write(record)


def _fill_counts(record: pysam.VariantRecord) -> None:
    """AC, AN, AF and NS as the record's own genotypes give them (NS: samples with a called allele)."""
    alts = len(record.alts or ())
    counts = [0] * (alts + 1)
    with_data = 0
    for call in record.samples.values():
        alleles = [a for a in (call.get("GT") or ()) if a is not None] if "GT" in record.format else []
        with_data += bool(alleles)
        for allele in alleles:
            if 0 <= allele <= alts:
                counts[allele] += 1
    called = sum(counts)
    record.info["AN"] = called
    record.info["NS"] = with_data
    if alts:
        record.info["AC"] = counts[1:]
        if called:
            record.info["AF"] = [count / called for count in counts[1:]]


def _declare_everything(source: Path, target: Path) -> Path | None:
    """``source`` with a header declaring every contig and tag its records use; None if nothing was missing."""
    verbosity = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(source)) as variants:
            declared = {str(line) for line in variants.header.records}
            for _ in variants:
                pass  # htslib adds a definition for each undeclared id it meets
            missing = [str(line) for line in variants.header.records if str(line) not in declared]
            lines = str(variants.header).splitlines(keepends=True)
    finally:
        pysam.set_verbosity(verbosity)
    if not missing:
        return None
    header = target.with_name(target.name + ".header")
    header.write_text("".join(lines[:-1] + missing + lines[-1:]))
    bcftools.reheader("--header", str(header), "--output", str(target), str(source), catch_stdout=False)
    return target


def _people(session: Session, object_id: str) -> list[tuple[int, str, str]]:
    """(id, pseudonym, consent status) of everyone in a file."""
    query = (
        select(Participant.id, Participant.pseudonym, Participant.consent_status)
        .join(ObjectParticipant, ObjectParticipant.participant_id == Participant.id)
        .where(ObjectParticipant.object_id == object_id)
    )
    return [(pid, name, status) for pid, name, status in session.execute(query)]


class RederivationWorker:
    """Runs re-derivations in one background thread of the server, so a withdrawal answers at once."""

    def __init__(self, rederiver: Rederiver) -> None:
        self.rederiver = rederiver
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rederive")
        self._retries: dict[str, threading.Timer] = {}
        self._guard = threading.Lock()
        self._stopped = False

    def submit(self, object_ids: Sequence[str]) -> list[Future[bool]]:
        return [self._executor.submit(self._run, object_id, 1) for object_id in object_ids]

    def resume(self) -> list[Future[bool]]:
        """Pick up what a stopped server left blocked, after removing what a killed one left in staging."""
        self.rederiver.objects.sweep_staging()
        return self.submit(self.rederiver.pending())

    def _run(self, object_id: str, attempt: int) -> bool:
        try:
            return self.rederiver.rederive(object_id)
        except GenoshareError as error:
            # In the audit log already; it may be a passing problem (a full disk), so it is tried again.
            log.warning("re-deriving %s failed (attempt %d): %s; it stays blocked", object_id, attempt, error.message)
            self._retry_later(object_id, attempt)
            return False
        except Exception:
            log.exception("re-deriving %s failed; it stays blocked until `genoshare consent rederive`", object_id)
            return False

    def _retry_later(self, object_id: str, attempt: int) -> None:
        delay = min(RETRY_FIRST_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS)
        with self._guard:
            if self._stopped:
                return
            timer = threading.Timer(delay, self._resubmit, (object_id, attempt + 1))
            timer.daemon = True
            self._retries[object_id] = timer
            timer.start()

    def _resubmit(self, object_id: str, attempt: int) -> None:
        with self._guard:
            self._retries.pop(object_id, None)
            if self._stopped:
                return
            self._executor.submit(self._run, object_id, attempt)

    def shutdown(self) -> None:
        with self._guard:
            self._stopped = True
            for timer in self._retries.values():
                timer.cancel()
        self._executor.shutdown(wait=True, cancel_futures=False)
