"""Replaces sample names (VCF columns, BAM/CRAM read-group ``SM``) by stable pseudonyms before storing.

Pseudonyms are an HMAC of (dataset, sample name) under a node secret: stable across re-ingests, so the
same person keeps one pseudonym, and not reversible without the secret.  The mapping is also kept in the
``participants`` table, which no API serves.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import shutil
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


def scrub_names(text: str, names: dict[str, str]) -> str:
    """Replace each name wherever it stands as a whole token in a header.

    That covers sample columns and ``SM`` tags, and also file names in ``@PG``/``##commandline`` lines,
    which often carry the sample name too.
    """
    for old, new in sorted(names.items(), key=lambda item: -len(item[0])):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(old)}(?![A-Za-z0-9])", new, text)
    return text


#: Direct identifiers that must never reach a stored header; found ones stop the ingest.
IDENTIFIER_PATTERNS = {
    "an e-mail address": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "a US social security number": re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"),
    "an NHS number": re.compile(r"(?<!\d)\d{3} \d{3} \d{4}(?!\d)"),
    "a date of birth": re.compile(r"(?i)\b(?:date[ _-]?of[ _-]?birth|dob|birth[ _-]?date)\b"),
}


def check_for_identifiers(path: Path, header: str) -> None:
    """Refuse a file whose header still holds an obvious direct identifier (the value is not repeated)."""
    for number, line in enumerate(header.splitlines(), start=1):
        for kind, pattern in IDENTIFIER_PATTERNS.items():
            if pattern.search(line):
                raise IngestError(path, f"header line {number} holds {kind}; remove it before ingest")


def rename_samples(source: Path, target: Path, names: dict[str, str]) -> None:
    """Write ``source`` with its VCF/BCF samples renamed to ``target`` (bcftools reheader, records untouched)."""
    with pysam.VariantFile(str(source)) as variants:
        header = str(variants.header)
    header_file = target.with_name(target.name + ".header.vcf")
    header_file.write_text(scrub_names(header, names))
    try:
        bcftools.reheader("--header", str(header_file), "--output", str(target), str(source), catch_stdout=False)
    except pysam.utils.SamtoolsError as error:
        raise IngestError(source, f"could not rename samples: {error}") from error
    finally:
        header_file.unlink(missing_ok=True)


def rename_read_groups(source: Path, target: Path, names: dict[str, str], cram: bool) -> None:
    """Write ``source`` with read-group ``SM`` names replaced (samtools reheader; reads untouched).

    CRAM is rewritten in place on ``target`` (a copy), which works while the new header fits the space
    the CRAM writer reserved; pseudonyms are short, so it does in practice.
    """
    with pysam.AlignmentFile(str(source), require_index=False, check_sq=False) as reads:
        header = str(reads.header)
    header_file = target.with_name(target.name + ".header.sam")
    header_file.write_text(scrub_names(header, names))
    try:
        if cram:
            shutil.copyfile(source, target)
            pysam.samtools.reheader("--no-PG", "-i", str(header_file), str(target), catch_stdout=False)
        else:
            # --no-PG: samtools would record its command line, which holds the original file name.
            pysam.samtools.reheader("--no-PG", str(header_file), str(source), save_stdout=str(target))
    except pysam.utils.SamtoolsError as error:
        raise IngestError(source, f"could not pseudonymise read-group samples: {error}") from error
    finally:
        header_file.unlink(missing_ok=True)
