"""Builds the Beacon's variant index for a published VCF/BCF object, with stable sample numbers.

Each VCF sample (already a pseudonym when the dataset pseudonymises) gets the next free
``sample_number`` of its dataset the first time it is seen, and keeps it: the number is its bit in every
carrier bitmap and in the phenotype bitmaps, across files. A person without phenotypes yet gets an
individual row with unknown sex and one biosample, so every carrier resolves to an entry.

Two ways in (``BeaconIndexer``): ``index_object`` for the ingest pipeline, which still holds the plaintext,
and ``index_dataset`` (``genoshare beacon-index DATASET``), which decrypts each stored object to a scratch
file.

It lives in ``index``, below the services, because three of them build or number with it: ingest (new
files), governance (files re-derived after a withdrawal) and the Beacon's phenotype ingest (people described
before their VCF arrives).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import cyvcf2
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genoshare.crypt.keys import SecretKeys
from genoshare.errors import Conflict, InvalidInput
from genoshare.index.build import IndexSummary, build_variant_index
from genoshare.index.serving import published_files
from genoshare.index.stored import kept_in_store, publish_index, stored_index
from genoshare.store.beacon_tables import BeaconBiosample, BeaconIndividual, BeaconVariantIndex
from genoshare.store.blobs import copy_plaintext
from genoshare.store.db import Database
from genoshare.store.models import DataObject
from genoshare.store.objects import ObjectStore

VARIANT_FORMATS = ("VCF", "BCF")
#: The files of an index written before the Arrow layout: served, and rebuilt by ``genoshare beacon-index``.
_OLDER_LAYOUT = ".parquet"
#: (plaintext VCF/BCF, index directory, sample numbers) -> what was written; the directory is served as it is.
IndexBuilder = Callable[[Path, Path, Mapping[str, int]], IndexSummary]
DEFAULT_ASSEMBLY = "GRCh38"
_CONTIG_ASSEMBLY = re.compile(r"[<,]assembly=([^,>]+)")
#: Until phenotypes say otherwise: a specimen of unknown origin, a reference (non-tumour) sample.
DEFAULT_BIOSAMPLE: dict[str, object] = {
    "biosampleStatus": {"id": "EFO:0009654", "label": "reference sample"},
    "sampleOriginType": {"id": "OBI:0100051", "label": "specimen from organism"},
}


def index_dir(dataset_id: str, object_row: DataObject) -> str:
    """Relative to the data directory, named by content so a rebuilt object never reuses a directory."""
    return f"beacon/{dataset_id}/{object_row.sha256}"


def assign_sample_numbers(session: Session, dataset_id: str, pseudonyms: Sequence[str]) -> dict[str, int]:
    """Numbers for these samples, creating individuals (and a default biosample) for unseen ones."""
    known = dict(
        session.execute(
            select(BeaconIndividual.pseudonym, BeaconIndividual.sample_number).where(
                BeaconIndividual.dataset_id == dataset_id
            )
        ).all()
    )
    # Not ``max or -1``: a dataset whose one individual is number 0 would number the next one 0 again.
    highest = session.scalar(
        select(func.max(BeaconIndividual.sample_number)).where(BeaconIndividual.dataset_id == dataset_id)
    )
    next_number = 0 if highest is None else highest + 1
    for pseudonym in pseudonyms:
        if pseudonym in known:
            continue
        person = BeaconIndividual(dataset_id=dataset_id, pseudonym=pseudonym, sample_number=next_number)
        session.add(person)
        session.flush()
        session.add(
            BeaconBiosample(
                dataset_id=dataset_id,
                biosample_id=f"{pseudonym}-S1",
                individual_id=person.id,
                document=dict(DEFAULT_BIOSAMPLE),
            )
        )
        known[pseudonym] = next_number
        next_number += 1
    return {name: known[name] for name in pseudonyms}


def read_header(path: Path, default: str = DEFAULT_ASSEMBLY) -> tuple[list[str], str]:
    """The samples and the assembly a VCF/BCF header declares (``##reference`` or a contig's ``assembly=``)."""
    reader = cyvcf2.VCF(str(path), lazy=True)
    try:
        samples, header = list(reader.samples), reader.raw_header
    finally:
        reader.close()
    assembly = None
    for line in header.splitlines():
        if line.startswith("##reference=") and line[12:].strip():
            return samples, Path(line[12:].strip()).name.split(".fa", 1)[0]
        declared = _CONTIG_ASSEMBLY.search(line) if line.startswith("##contig=") else None
        if declared and assembly is None:
            assembly = declared.group(1)
    return samples, assembly or default


class BeaconIndexer:
    """Builds Beacon variant indexes: files in the data directory (or a remote object store), rows in the database."""

    def __init__(
        self,
        database: Database,
        data_dir: Path,
        objects: ObjectStore,
        secret_key: SecretKeys,
        build: IndexBuilder = build_variant_index,
    ) -> None:
        self.database = database
        self.data_dir = data_dir
        self.objects = objects
        #: The node's Crypt4GH secret key: ``index_dataset`` reads the stored files with it.
        self.secret_key = secret_key
        #: Writes the index files: in this process, or on Spark (``genoshare.index.spark``), the same layout.
        self.build = build

    def index_object(
        self, dataset_id: str, object_row: DataObject, plaintext_path: Path, assembly: str | None = None
    ) -> BeaconVariantIndex | None:
        """Index one VCF/BCF object from its plaintext (other formats are ignored: they hold no variants here)."""
        if object_row.format not in VARIANT_FORMATS:
            return None
        samples, declared = read_header(plaintext_path)
        relative = index_dir(dataset_id, object_row)
        try:
            with self.database.session() as session:
                numbers = assign_sample_numbers(session, dataset_id, samples)
            if kept_in_store(self.objects):
                with self.objects.work_dir("beacon-index") as built:
                    summary = self.build(plaintext_path, built, numbers)
                    publish_index(self.objects, built, relative)
            else:
                summary = self.build(plaintext_path, self.data_dir / relative, numbers)
            row = BeaconVariantIndex(
                object_id=object_row.id,
                dataset_id=dataset_id,
                path=relative,
                assembly_id=assembly or declared,
                contigs=list(summary.contigs),
                n_rows=summary.n_rows,
                n_samples=summary.n_samples,
                built_at=datetime.now(UTC),
            )
            with self.database.session() as session:
                session.merge(row)
        except IntegrityError as error:
            # The file was removed, or its dataset deleted, while this was built: no row will name these
            # files, so neither a server nor the removal (which found none) would ever read or delete them.
            if kept_in_store(self.objects):
                for key in self.objects.keys(f"{relative}/"):
                    self.objects.delete(key)
            else:
                shutil.rmtree(self.data_dir / relative, ignore_errors=True)
            raise Conflict(f"{object_row.id} was removed while its Beacon index was built: index discarded") from error
        if kept_in_store(self.objects):  # a rebuild's older layout: served no more once the row says the new one
            for key in self.objects.keys(f"{relative}/"):
                if key.endswith(_OLDER_LAYOUT):
                    self.objects.delete(key)
        return row

    def in_older_layout(self, index: BeaconVariantIndex) -> bool:
        """Whether the index's files are Parquet (``genoshare-variant-index/1``): ``index_dataset`` rebuilds it."""
        if kept_in_store(self.objects):
            names = [stored.name for stored in stored_index(self.objects, index.path)]
        else:
            names = [path.name for path in published_files(self.data_dir / index.path)]
        return any(name.endswith(_OLDER_LAYOUT) for name in names)

    def index_dataset(self, dataset_id: str, assembly: str | None = None) -> list[BeaconVariantIndex]:
        """Index every stored VCF/BCF object of a dataset that has no index yet, or one in the older layout."""
        with self.database.sessions() as session:
            objects = select(func.count()).select_from(DataObject).where(DataObject.dataset_id == dataset_id)
            if session.scalar(objects) == 0:
                raise InvalidInput(f"dataset {dataset_id!r} has no published objects: ingest a VCF/BCF first")
            indexed = {
                index.object_id
                for index in session.scalars(
                    select(BeaconVariantIndex).where(BeaconVariantIndex.dataset_id == dataset_id)
                )
                if not self.in_older_layout(index)
            }
            pending = [
                row
                for row in session.scalars(select(DataObject).where(DataObject.dataset_id == dataset_id))
                if row.format in VARIANT_FORMATS and row.id not in indexed
            ]
        built = []
        with self.objects.work_dir("beacon-index") as scratch:
            for row in pending:
                plain = scratch / row.name
                copy_plaintext(self.objects, self.secret_key, row, plain)
                result = self.index_object(dataset_id, row, plain, assembly)
                if result is not None:
                    built.append(result)
                plain.unlink()
        return built
