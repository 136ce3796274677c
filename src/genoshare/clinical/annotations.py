"""Clinical significance the steward loads: a ClinVar-format VCF (``CLNSIG``, ``CLNDN``, ``CLNREVSTAT``).

ClinVar publishes its variants as a VCF per assembly (``clinvar.vcf.gz``), one allele a record, with the
release date in ``##fileDate`` and the assembly in ``##reference``. ``load`` replaces everything earlier
loaded from the same source on that assembly in one transaction, so a lookup never mixes two releases.
Values are kept as ClinVar writes them, with its ``_`` read back as spaces (``Likely_pathogenic``).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import delete, insert, select

from genoshare.clinical.variants import Allele, normalise_contig
from genoshare.errors import InvalidInput
from genoshare.store.db import Database
from genoshare.store.models import ClinicalAnnotation

_BATCH = 5000
_REQUIRED_INFO = ("CLNSIG",)


@dataclass(frozen=True)
class Loaded:
    source: str
    source_date: str
    assembly: str
    records: int


@dataclass(frozen=True)
class Annotation:
    gene: str
    significance: str
    conditions: list[str]
    review_status: str
    variant_id: str
    source: str
    source_date: str

    def as_dict(self) -> dict[str, object]:
        return {
            "significance": self.significance,
            "conditions": self.conditions,
            "reviewStatus": self.review_status,
            "gene": self.gene,
            "variantId": self.variant_id,
            "source": self.source,
            "sourceDate": self.source_date,
        }


def _open(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _text(value: str) -> str:
    return value.replace("_", " ").strip()


def _info(field: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in field.split(";"):
        key, _, value = item.partition("=")
        pairs[key] = value
    return pairs


class AnnotationStore:
    """``canonical`` names an assembly one way (GRCh38.p13, hg38 -> GRCh38): the Beacon's rule, handed in."""

    def __init__(self, database: Database, canonical: Callable[[str], str]) -> None:
        self.database = database
        self.canonical = canonical

    def load(self, path: Path, assembly: str | None = None, source: str | None = None) -> Loaded:
        """Read a ClinVar-format VCF (plain or gzipped) into the node, replacing that source's earlier release."""
        try:
            with _open(path) as handle:
                header = self._header(path, handle)
                name = source or header.get("source") or "ClinVar"
                date = header.get("fileDate", "")
                given = assembly or header.get("reference")
                if not given:
                    raise InvalidInput(f"{path.name}: no ##reference header; say the assembly (--assembly GRCh38)")
                on = self.canonical(given)
                with self.database.session() as session:
                    session.execute(
                        delete(ClinicalAnnotation).where(
                            ClinicalAnnotation.source == name, ClinicalAnnotation.assembly_id == on
                        )
                    )
                    count = 0
                    batch: list[dict[str, object]] = []
                    for row in self._records(path, handle, name, date, on):
                        batch.append(row)
                        if len(batch) >= _BATCH:
                            session.execute(insert(ClinicalAnnotation), batch)
                            count, batch = count + len(batch), []
                    if batch:
                        session.execute(insert(ClinicalAnnotation), batch)
                        count += len(batch)
                    if not count:
                        raise InvalidInput(f"{path.name}: no record with CLNSIG; is this a ClinVar VCF?")
        except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as error:
            raise InvalidInput(f"{path.name}: not a readable VCF ({error})") from None
        return Loaded(name, date, on, count)

    @staticmethod
    def _header(path: Path, handle: IO[str]) -> dict[str, str]:
        first = handle.readline()
        if not first.startswith("##fileformat=VCF"):
            raise InvalidInput(f"{path.name}: not a VCF (no ##fileformat=VCF line)")
        meta: dict[str, str] = {}
        for line in handle:
            if line.startswith("#CHROM"):
                return meta
            if line.startswith("##") and "=" in line and not line.startswith("##INFO"):
                key, _, value = line[2:].rstrip("\n").partition("=")
                meta.setdefault(key, value)
        raise InvalidInput(f"{path.name}: the VCF has no #CHROM header line")

    @staticmethod
    def _records(path: Path, handle: IO[str], source: str, date: str, assembly: str) -> Iterator[dict[str, object]]:
        seen: set[tuple[str, int, str, str]] = set()
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 8:
                raise InvalidInput(f"{path.name}: record {number} has {len(fields)} columns, a VCF has at least 8")
            contig, position, variant_id, ref, alts, _, _, info_field = fields[:8]
            info = _info(info_field)
            if any(key not in info for key in _REQUIRED_INFO) or alts in (".", ""):
                continue
            if not position.isdigit():
                raise InvalidInput(f"{path.name}: record {number} has position {position!r}")
            gene = info.get("GENEINFO", "").split("|", 1)[0].split(":", 1)[0]
            for alt in alts.split(","):
                key = (normalise_contig(contig), int(position), ref.upper(), alt.upper())
                if key in seen:
                    continue
                seen.add(key)
                yield {
                    "source": source,
                    "source_date": date,
                    "assembly_id": assembly,
                    "contig": key[0],
                    "position": key[1],
                    "ref": key[2],
                    "alt": key[3],
                    "variant_id": variant_id if variant_id != "." else "",
                    "gene": gene,
                    "significance": _text(info.get("CLNSIG", "")),
                    "conditions": info.get("CLNDN", ""),
                    "review_status": _text(info.get("CLNREVSTAT", "")),
                }

    def find(self, allele: Allele) -> list[Annotation]:
        """What each loaded source says of the allele."""
        with self.database.sessions() as session:
            rows = session.scalars(
                select(ClinicalAnnotation)
                .where(
                    ClinicalAnnotation.assembly_id == self.canonical(allele.assembly),
                    ClinicalAnnotation.contig == allele.contig,
                    ClinicalAnnotation.position == allele.position,
                    ClinicalAnnotation.ref == allele.ref,
                    ClinicalAnnotation.alt == allele.alt,
                )
                .order_by(ClinicalAnnotation.source)
            ).all()
        return [
            Annotation(
                row.gene,
                row.significance,
                [_text(name) for name in row.conditions.split("|") if name and name != "not_provided"],
                row.review_status,
                row.variant_id,
                row.source,
                row.source_date,
            )
            for row in rows
        ]
