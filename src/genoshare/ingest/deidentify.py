"""Replaces VCF sample names by stable pseudonyms before a file is stored.

Pseudonyms are an HMAC of (dataset, sample name) under a node secret: stable across re-ingests, so the
same person keeps one pseudonym, and not reversible without the secret.  The mapping is also kept in the
``participants`` table, which no API serves.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
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


def rename_samples(source: Path, target: Path, names: dict[str, str]) -> None:
    """Write ``source`` with its samples renamed to ``target`` (bcftools reheader, records untouched)."""
    mapping = target.with_name(target.name + ".samples")
    mapping.write_text("".join(f"{old}\t{new}\n" for old, new in names.items()))
    try:
        bcftools.reheader("--samples", str(mapping), "--output", str(target), str(source), catch_stdout=False)
    except pysam.utils.SamtoolsError as error:
        raise IngestError(source, f"could not rename samples: {error}") from error
    finally:
        mapping.unlink(missing_ok=True)
