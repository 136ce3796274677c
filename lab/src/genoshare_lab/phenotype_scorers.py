"""Phenotype scorers the matchmaking benchmark compares with the node's own (``PhenotypeIndex.score``).

They are the ones the literature uses for "which patient looks like mine": Resnik similarity of each query
term to its best match in a profile, averaged (best-match average, BMA; one direction, and both as
Phenomizer does, Köhler et al. 2009, AJHG 85:457), and Phenodigm (Smedley et al. 2013, Database
bat025): the mean of the best single match (maxIC) and the BMA, each over its best possible value. They
are vectorised over every profile the way the node's index is, so their latency is comparable; the node
does not use them (``docs/clinical.md`` has the figures).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from genoshare.ontology.similarity import InformationContent


class ResnikScorers:
    """Resnik-based scorers of one query against many profiles; IC as the node's (``InformationContent``)."""

    def __init__(self, ic: InformationContent, profiles: Sequence[Iterable[str]]) -> None:
        self.ic = ic
        self.size = len(profiles)
        closures: dict[str, list[int]] = {}
        vocabulary: dict[str, int] = {}
        rows: list[int] = []
        columns: list[int] = []
        for number, profile in enumerate(profiles):
            terms = {term for term in profile if term in ic.ontology}
            for term in terms:
                rows.append(number)
                columns.append(vocabulary.setdefault(term, len(vocabulary)))
            for term in ic.closure(terms):
                closures.setdefault(term, []).append(number)
        self._closures = {term: np.asarray(people, dtype=np.int32) for term, people in closures.items()}
        self._rows = np.asarray(rows, dtype=np.int64)
        self._columns = np.asarray(columns, dtype=np.int64)
        self._lengths = np.bincount(self._rows, minlength=self.size)
        self._lineage = [(term, (term, *ic.ontology.ancestors(term))) for term in vocabulary]

    def _known(self, query: Iterable[str]) -> list[str]:
        return sorted({term for term in query if term in self.ic.ontology})

    def best_match(self, term: str) -> np.ndarray:
        """Per profile, the IC of the most informative common ancestor of ``term`` and any of its terms."""
        best = np.zeros(self.size)
        for ancestor in sorted((term, *self.ic.ontology.ancestors(term)), key=self.ic):
            people = self._closures.get(ancestor)
            if people is not None:
                best[people] = self.ic(ancestor)  # in rising IC: the last write is the largest
        return best

    def query_to_profile(self, query: Iterable[str]) -> np.ndarray:
        """BMA from the query's side: each query term's best match in the profile, averaged."""
        terms = self._known(query)
        if not terms:
            return np.zeros(self.size)
        return np.sum([self.best_match(term) for term in terms], axis=0) / len(terms)

    def profile_to_query(self, query: Iterable[str]) -> np.ndarray:
        """BMA from the profile's side: each profile term's best match in the query, averaged."""
        closure = self.ic.closure(self._known(query))
        best = np.asarray(
            [max((self.ic(a) for a in lineage if a in closure), default=0.0) for _, lineage in self._lineage]
        )
        if not len(best):
            return np.zeros(self.size)
        total = np.bincount(self._rows, weights=best[self._columns], minlength=self.size)
        return np.divide(total, self._lengths, out=np.zeros(self.size), where=self._lengths > 0)

    def symmetric(self, query: Iterable[str]) -> np.ndarray:
        terms = list(query)
        return (self.query_to_profile(terms) + self.profile_to_query(terms)) / 2

    def phenodigm(self, query: Iterable[str]) -> np.ndarray:
        """(maxIC / its best + BMA / its best) / 2, the best being the query against itself."""
        terms = self._known(query)
        if not terms:
            return np.zeros(self.size)
        matches = np.asarray([self.best_match(term) for term in terms])
        best_single = max(self.ic(term) for term in terms)
        best_average = sum(self.ic(term) for term in terms) / len(terms)
        return (matches.max(axis=0) / best_single + matches.mean(axis=0) / best_average) / 2
