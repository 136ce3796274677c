"""Rewrites multi-sample files without the participants who withdrew, then serves them again.

The file is decrypted to the staging area, the withdrawn samples are dropped with htslib (bcftools for
VCF/BCF, ``genoshare.ingest.reads.keep_samples`` for BAM/CRAM), and the result goes through the same
index, checksum and encrypt steps as an ingest.  The object row is switched to the new bytes in one
transaction; until then the object is blocked (``status = rederiving``) and no API serves it.  A file
that would be left with no read stays blocked rather than be published empty.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pysam import bcftools
from sqlalchemy import delete, select

from genoshare.audit import Entry
from genoshare.crypt.files import encrypt_file
from genoshare.drs.stored import copy_plaintext
from genoshare.errors import Conflict
from genoshare.formats import FileFormat
from genoshare.governance.consent import ACTIVE
from genoshare.ingest.pipeline import build_index, file_checksums
from genoshare.ingest.reads import keep_samples
from genoshare.node import Node
from genoshare.store.models import DataObject, ObjectParticipant, Participant

ACTOR = "genoshare (consent re-derivation)"
log = logging.getLogger("genoshare.governance")


def pending(node: Node) -> list[str]:
    with node.database.sessions() as session:
        return list(session.scalars(select(DataObject.id).where(DataObject.status == "rederiving")))


def rederive(node: Node, object_id: str) -> bool:
    """Rewrite one blocked object; False when it is not blocked (any more)."""
    with node.database.sessions() as session:
        row = session.get(DataObject, object_id)
        if row is None or row.status != "rederiving":
            return False
        people = list(
            session.execute(
                select(Participant.id, Participant.pseudonym, Participant.consent_status)
                .join(ObjectParticipant, ObjectParticipant.participant_id == Participant.id)
                .where(ObjectParticipant.object_id == object_id)
            )
        )
    keep = [name for _, name, status in people if status == ACTIVE]
    gone = [pid for pid, _, status in people if status != ACTIVE]
    derived = derive(node, row, keep)
    with node.database.session() as session:
        stored_row = session.get(DataObject, object_id)
        assert stored_row is not None
        stored_row.blob_key, stored_row.index_key = derived.blob_key, derived.index_key
        stored_row.md5, stored_row.sha256, stored_row.size = derived.md5, derived.sha256, derived.size
        stored_row.status = "available"
        session.execute(
            delete(ObjectParticipant).where(
                ObjectParticipant.object_id == object_id, ObjectParticipant.participant_id.in_(gone)
            )
        )
    node.audit.record(
        Entry(
            ACTOR,
            "consent.rederive",
            f"objects/{object_id}",
            "publish",
            f"rewritten without {len(gone)} withdrawn participant(s)",
            {"dataset": row.dataset_id, "sha256": derived.sha256},
        )
    )
    return True


@dataclass(frozen=True)
class Derived:
    """A file rewritten with some of its samples, stored like an ingest's: encrypted, indexed, checksummed."""

    blob_key: str
    index_key: str
    md5: str
    sha256: str
    size: int


def derive(node: Node, row: DataObject, keep: list[str]) -> Derived:
    """Store the object's file with only the samples ``keep`` (VCF/BCF columns, BAM read groups).

    The plaintext exists only in a private staging directory, removed when done; the result is Crypt4GH
    encrypted to the node's key and put under content-addressed keys (atomically). Shared by the
    re-derivation after a withdrawal and the subsets served to grants that a narrowed consent excludes.
    """
    fmt = FileFormat(row.format)
    work = node.objects.staging_dir() / f"rederive-{uuid.uuid4().hex}"
    work.mkdir(mode=0o700)
    try:
        source = work / f"source{fmt.extension}"
        copy_plaintext(node, row, source)
        target = work / f"kept{fmt.extension}"
        _keep_samples(source, target, fmt, keep)
        index = build_index(target, fmt)
        md5, sha256 = file_checksums(target)
        blob = work / "kept.c4gh"
        encrypt_file(target, blob, node.keys)
        blob_key = f"blobs/{sha256[:2]}/{sha256}.c4gh"
        index_key = f"indexes/{sha256[:2]}/{sha256}.{fmt.index_format}"
        node.objects.put(blob, blob_key)
        node.objects.put(index, index_key)
        return Derived(blob_key, index_key, md5, sha256, target.stat().st_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rederive_pending(node: Node) -> list[str]:
    """Rewrite every blocked object; returns those done. Safe to run again after a crash."""
    return [object_id for object_id in pending(node) if rederive(node, object_id)]


def _keep_samples(source: Path, target: Path, fmt: FileFormat, keep: list[str]) -> None:
    if fmt.is_variants:
        output = "z" if fmt is FileFormat.VCF else "b"
        bcftools.view(
            "--samples",
            ",".join(keep),
            "--force-samples",
            "--no-version",
            f"-O{output}",
            "-o",
            str(target),
            str(source),
            catch_stdout=False,
        )
        return
    if keep_samples(source, target, fmt, keep) == 0:
        raise Conflict("no read of a participant who still consents would remain; the file stays blocked")


class RederivationWorker:
    """Runs re-derivations in one background thread of the server, so a withdrawal answers at once."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rederive")

    def submit(self, object_ids: Sequence[str]) -> list[Future[bool]]:
        return [self._executor.submit(self._run, object_id) for object_id in object_ids]

    def resume(self) -> list[Future[bool]]:
        """Pick up what a stopped server left blocked."""
        return self.submit(pending(self.node))

    def _run(self, object_id: str) -> bool:
        try:
            return rederive(self.node, object_id)
        except Exception:
            log.exception("re-deriving %s failed; it stays blocked until `genoshare consent rederive`", object_id)
            return False

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
