"""The DUO release genoshare understands, read once from package data (see ``data/SOURCE.txt``).

Consent decisions must be reproducible, so the vocabulary is a pinned snapshot rather than a live
lookup; ``DUO_VERSION`` is what dataset descriptions advertise as the DUO version they used.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib.resources import files

#: The DUO release whose classes are in duo-terms.tsv (SOURCE.txt: "the v2021-02-23 release").
DUO_VERSION = "2021-02-23"
_OBO_PREFIX = "http://purl.obolibrary.org/obo/"


class Kind(StrEnum):
    PERMISSION = "permission"
    MODIFIER = "modifier"
    INVESTIGATION = "investigation"


@dataclass(frozen=True)
class DuoTerm:
    id: str
    shorthand: str
    label: str
    kind: Kind
    parents: tuple[str, ...]
    definition: str
    comment: str


@dataclass(frozen=True)
class ObsoleteTerm:
    id: str
    shorthand: str
    label: str
    replaced_by: tuple[str, ...]


@dataclass(frozen=True)
class DuoRelease:
    by_id: dict[str, DuoTerm]
    by_shorthand: dict[str, DuoTerm]
    #: Both the IRI as written in the OWL and the one derived from the CURIE (they differ for NPOA).
    by_iri: dict[str, DuoTerm]
    obsolete_by_id: dict[str, ObsoleteTerm]
    obsolete_by_shorthand: dict[str, ObsoleteTerm]

    def consent_codes(self) -> tuple[DuoTerm, ...]:
        """Permissions first, then modifiers; roots and investigation classes are not codes."""
        codes = [t for t in self.by_id.values() if t.shorthand]
        return tuple(sorted(codes, key=lambda t: (t.kind != Kind.PERMISSION, t.id)))


@cache
def duo_release() -> DuoRelease:
    by_id: dict[str, DuoTerm] = {}
    by_iri: dict[str, DuoTerm] = {}
    for row in _rows("duo-terms.tsv"):
        term = DuoTerm(
            id=row["id"],
            shorthand=row["shorthand"],
            label=row["label"],
            kind=Kind(row["kind"]),
            parents=tuple(p for p in row["parents"].split(";") if p),
            definition=row["definition"],
            comment=row["comment"],
        )
        by_id[term.id] = term
        by_iri[row["iri"]] = term
        by_iri[_OBO_PREFIX + term.id.replace(":", "_")] = term
    obsolete = {
        row["id"]: ObsoleteTerm(
            id=row["id"],
            shorthand=row["shorthand"],
            label=row["label"],
            replaced_by=tuple(r for r in row["replaced_by"].split(";") if r),
        )
        for row in _rows("duo-obsolete.tsv")
    }
    return DuoRelease(
        by_id=by_id,
        by_shorthand={t.shorthand: t for t in by_id.values() if t.shorthand},
        by_iri=by_iri,
        obsolete_by_id=obsolete,
        obsolete_by_shorthand={t.shorthand: t for t in obsolete.values() if t.shorthand},
    )


def _rows(name: str) -> list[dict[str, str]]:
    text = files("genoshare.duo").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
