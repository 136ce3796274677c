"""Replaces sample names (VCF columns, BAM/CRAM read-group ``SM``) by stable pseudonyms before storing.

The rest of a pseudonymised file's de-identification: VCF headers keep only their structural lines
(below); BAM/CRAM headers and records are rewritten by ``genoshare.ingest.reads``.

Pseudonyms are an HMAC of (dataset, sample name) under a node secret: stable across re-ingests, so the
same person keeps one pseudonym, and not reversible without the secret.  The ``participants`` table keeps no
sample name either, only another keyed hash of it (``source_key``): enough for an ingest to recognise a person
and for ``genoshare consent find`` to go from the institution's id to the pseudonym, while a copy of the
database alone reveals no institution's id (the secret lives in ``keys/``, apart from the database).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pysam
from pysam import bcftools

from genoshare.ingest.errors import IngestError

PREFIX = "GS"


class Pseudonymiser:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def load_or_create(cls, path: Path) -> Pseudonymiser:
        if not path.is_file():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    def pseudonym(self, dataset_id: str, sample: str) -> str:
        digest = hmac.new(self._secret, f"{dataset_id}\0{sample}".encode(), hashlib.sha256).hexdigest()
        return f"{PREFIX}{digest[:12].upper()}"

    def source_key(self, dataset_id: str, sample: str) -> str:
        """What the database keeps of a sample name: a keyed hash of it, whole.

        Not the pseudonym: that is cut to 48 bits, which two people of a large dataset may share, and two
        sample names never share this one.
        """
        message = f"source-id\0{dataset_id}\0{sample}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def read_namer(self, dataset_id: str) -> Callable[[str], str]:
        """Opaque read names: keyed BLAKE2 of the original, so mates keep one name and re-ingests agree.

        96 bits: no two of a file's reads share a name by chance (under 10^-11 for a billion reads).
        """
        key = hmac.new(self._secret, f"read-names\0{dataset_id}".encode(), hashlib.sha256).digest()

        def name(original: str) -> str:
            return hashlib.blake2b(original.encode(), key=key, digest_size=12).hexdigest()

        return name


def scrub_names(text: str, names: dict[str, str]) -> str:
    """Replace each sample name standing as a whole token in a file name (``NA12878.bam``).

    Only for the file's name: inside a header, sample names are replaced where they stand (the ``#CHROM``
    columns, ``SM``), never by text substitution, which would also rewrite ``Number=1`` or contig ``chr1``.
    """
    for old, new in sorted(names.items(), key=lambda item: -len(item[0])):
        # Most of a cohort's names are not in its file name: no pattern is compiled for them.
        if old in text:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(old)}(?![A-Za-z0-9])", new, text)
    return text


#: VCF header lines a pseudonymised file keeps: the declarations records depend on.  Everything else
#: (``##source``, ``##commandline``, ``##GATKCommandLine``, ``##bcftools_*``, ``##SAMPLE``, ``##PEDIGREE``,
#: any site-specific line) is free text or names samples, so it is not stored.
VCF_KEPT_LINES = frozenset(
    {"fileformat", "fileDate", "reference", "contig", "INFO", "FORMAT", "FILTER", "ALT", "assembly", "phasing", "META"}
)
_PUBLIC_LOCATION = re.compile(r"^(?:https?|ftp)://", re.IGNORECASE)


def public_location(location: str) -> str:
    """A reference's location without the directories of a local path, which often name a user."""
    if _PUBLIC_LOCATION.match(location):
        return location
    return location.rstrip("/").rsplit("/", 1)[-1]


def deidentified_vcf_header(header: str, names: dict[str, str]) -> str:
    """The header with only the known-safe lines, and samples renamed in the ``#CHROM`` columns alone."""
    kept = []
    for line in header.splitlines():
        if line.startswith("#CHROM"):
            columns = line.split("\t")
            kept.append("\t".join(columns[:9] + [names[sample] for sample in columns[9:]]))
            continue
        key, _, value = line[2:].partition("=")
        if key not in VCF_KEPT_LINES:
            continue
        kept.append(f"##reference={public_location(value)}" if key == "reference" else line)
    return "\n".join(kept) + "\n"


def rename_samples(source: Path, target: Path, header: str, names: dict[str, str]) -> None:
    """Write ``source`` with its de-identified header (bcftools reheader, records untouched).

    ``header`` is the one validation read: opening the file again only made htslib print an error line
    about the index a staged file never has yet.
    """
    header_file = target.with_name(target.name + ".header.vcf")
    header_file.write_text(deidentified_vcf_header(header, names))
    try:
        bcftools.reheader("--header", str(header_file), "--output", str(target), str(source), catch_stdout=False)
    except pysam.utils.SamtoolsError as error:
        raise IngestError(source, f"could not rename samples: {error}") from error
    finally:
        header_file.unlink(missing_ok=True)
