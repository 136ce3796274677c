"""One disease under its several names: MONDO, OMIM and Orphanet ids of the same disease, as MONDO maps them.

A Matchmaker Exchange peer names a patient's disorder in whatever scheme it uses (``MIM:154700``,
``ORPHA:558``, ``MONDO:0007947``), the node's individuals carry MONDO ids, and the HPO annotations that
score a disorder against phenotypes are OMIM's. MONDO's own exact-match mappings (``skos:exactMatch`` to
OMIM and Orphanet, release v2023-08-02, the same as the node's MONDO hierarchy; ``data/SOURCE.txt``)
join them, read from package data once per process.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

#: Prefix spellings seen in MME requests and phenopackets -> the one used here.
_PREFIXES = {"MIM": "OMIM", "OMIM": "OMIM", "ORPHA": "ORPHA", "ORPHANET": "ORPHA", "ORDO": "ORPHA", "MONDO": "MONDO"}
_CURIE = re.compile(r"\s*([A-Za-z]+)[:_]\s*([0-9]+)\s*")


def normalise_disease_id(text: str) -> str | None:
    """``MIM:154700`` -> ``OMIM:154700``, ``Orphanet:558`` -> ``ORPHA:558``; None for another scheme."""
    found = _CURIE.fullmatch(text)
    if found is None:
        return None
    prefix = _PREFIXES.get(found.group(1).upper())
    if prefix is None:
        return None
    number = found.group(2)
    return f"{prefix}:{number.zfill(7) if prefix == 'MONDO' else number.lstrip('0') or '0'}"


class DiseaseXrefs:
    """MONDO <-> OMIM and Orphanet exact matches, both ways."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._links: dict[str, set[str]] = {}
        for mondo, other in pairs:
            self._links.setdefault(mondo, set()).add(other)
            self._links.setdefault(other, set()).add(mondo)

    def equivalents(self, disease_id: str) -> frozenset[str]:
        """The id (normalised) with the ids MONDO says name the same disease; empty for another scheme."""
        own = normalise_disease_id(disease_id)
        if own is None:
            return frozenset()
        found = {own}
        for mondo in self._links.get(own, ()) if not own.startswith("MONDO:") else (own,):
            found.add(mondo)
            found |= self._links.get(mondo, set())
        return frozenset(found)


@cache
def mondo_xrefs() -> DiseaseXrefs:
    text = files("genoshare.ontology").joinpath("data/mondo-xrefs.tsv").read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines[0] != "mondo\txref":
        raise ValueError(f"mondo-xrefs.tsv has an unexpected header: {lines[0]!r}")
    pairs = []
    for line in lines[1:]:
        mondo, other = line.split("\t")
        pairs.append((mondo, other))
    return DiseaseXrefs(pairs)
