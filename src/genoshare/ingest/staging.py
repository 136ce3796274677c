"""Stages one file of an ingest: everything before publishing, in the ingesting process or in a worker.

Staging a file validates it, de-identifies it, checksums it, indexes it and encrypts it into the ingest's
work directory.  It reads nothing but the file, what :class:`StageContext` carries (the dataset's options,
the pseudonym secret, the node's public key) and the work directory, and writes nothing else: so the files
of one ingest can be staged side by side in worker processes (``genoshare.ingest.workers``), each file by
the same code as in the ingesting process, and published together by it (``genoshare.ingest.pipeline``).
This module imports no database code, which keeps a worker's start short.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import pysam
from pysam import bcftools

from genoshare.crypt.files import encrypt_file
from genoshare.crypt.keys import KeyPair
from genoshare.formats import FileFormat, detect, is_bgzf, split_name
from genoshare.ids import check_object_name
from genoshare.ingest.deidentify import Pseudonymiser, rename_samples, scrub_names
from genoshare.ingest.errors import IngestError
from genoshare.ingest.identifiers import check_for_identifiers, check_raw_header
from genoshare.ingest.reads import deidentify_reads
from genoshare.ingest.validate import validate

#: Called with (file name, stage, done, total); stages: checksum, validate, rewrite (BAM/CRAM
#: de-identification), encrypt, index.
StageProgress = Callable[[str, str, int, int], None]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StageContext:
    """What staging needs of the node and the dataset: picklable, so a worker process gets it once."""

    dataset_id: str
    pseudonymise: bool
    store_plaintext: bool
    pseudonymiser: Pseudonymiser
    #: The node's public key alone (the secret stays in the ingesting process): staging only encrypts.
    public_key: bytes
    workdir: Path


@dataclass(frozen=True)
class Unchanged:
    """A file whose content the dataset holds already (by the checksum of the steward's file)."""

    source: Path
    source_sha256: str


@dataclass(frozen=True)
class StagedFile:
    """A file ready to publish: its stored bytes, index and plaintext in the work directory."""

    source: Path
    source_sha256: str
    format: FileFormat
    #: The stored file's name (sample names scrubbed) and its htsget id.
    name: str
    stem: str
    size: int
    md5: str
    sha256: str
    records: int
    blob: Path
    blob_key: str
    index: Path
    #: The stored file's plaintext, kept in staging until the Beacon variant index is built from it.
    plain: Path
    #: sample name in the steward's file -> name in the stored file
    pseudonyms: dict[str, str]


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


def stage_file(
    context: StageContext, path: Path, known: Collection[str], progress: StageProgress | None
) -> StagedFile | Unchanged:
    """Stage ``path``, or return :class:`Unchanged` if its checksum is in ``known`` (the dataset's sources)."""
    source_sha = file_checksums(path, stage_progress(progress, path.name, "checksum"))[1]
    if source_sha in known:
        return Unchanged(path, source_sha)
    fmt = detect(path)
    workdir = context.workdir
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
    report = validate(source, fmt, stage_progress(progress, path.name, "validate"), shown_as=path)
    if fmt is FileFormat.CRAM:
        check_for_identifiers(path, report.header)
    # Who is in the file, by the name the stored file will carry (pseudonym, or the public name).
    pseudonymiser = context.pseudonymiser
    names = {
        sample: pseudonymiser.pseudonym(context.dataset_id, sample) if context.pseudonymise else sample
        for sample in report.samples
    }
    if context.pseudonymise and fmt.is_variants:
        renamed = workdir / f"{plain.name}.renamed"
        rename_samples(source, renamed, report.header, names)
        renamed.replace(plain)
    elif context.pseudonymise:
        namer = pseudonymiser.read_namer(context.dataset_id)
        deidentify_reads(source, plain, fmt, names, namer, stage_progress(progress, path.name, "rewrite"))
    elif source is not plain:
        shutil.copyfile(source, plain)
    stem = split_name(path.name)[0]
    if context.pseudonymise:
        stem = scrub_names(stem, names)
    name = check_object_name(stem + fmt.extension)
    index = build_index(plain, fmt)
    md5, sha256 = file_checksums(plain)
    if context.store_plaintext:
        # A second name for the staged file: the store moves the blob in, the Beacon index reads ``plain``.
        blob = plain.with_name(plain.name + ".blob")
        link_or_copy(plain, blob)
        blob_key = f"blobs/{sha256[:2]}/{sha256}{fmt.extension}"
    else:
        blob = plain.with_name(plain.name + ".c4gh")
        encrypt_file(plain, blob, KeyPair(public=context.public_key, secret=b""))
        stage_progress(progress, path.name, "encrypt")(1, 1)
        blob_key = f"blobs/{sha256[:2]}/{sha256}.c4gh"
    return StagedFile(
        source=path,
        source_sha256=source_sha,
        format=fmt,
        name=name,
        stem=stem,
        size=plain.stat().st_size,
        md5=md5,
        sha256=sha256,
        records=report.records,
        blob=blob,
        blob_key=blob_key,
        index=index,
        plain=plain,
        pseudonyms=names,
    )


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def stage_progress(progress: StageProgress | None, name: str, stage: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(name, stage, done, total)

    return report
