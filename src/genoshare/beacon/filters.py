"""Beacon filtering terms turned into bitmaps of matching individuals.

Ontology filters on HPO and MONDO terms match their descendants unless ``includeDescendantTerms`` is
false; other CURIEs (NCIT sex terms) match exactly. Alphanumeric filters cover ``sex`` and ``age``
(ISO 8601 durations like ``P70Y`` or plain years). Several filters are ANDed, as the spec says.
A term the ontology does not know matches nobody, like any term no one is annotated with (``/filtering_terms``
lists those with data); ``similarity`` other than exact is answered with exact matches, which the spec allows.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pyroaring import AbstractBitMap, BitMap, FrozenBitMap

from genoshare.beacon.errors import BeaconBadRequest
from genoshare.beacon.people import People
from genoshare.ontology import get_ontology, supported_prefixes

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
    "!": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
}
SEX_OPERATORS = ("=", "!")
SEX_LABELS = {"female": "NCIT:C16576", "male": "NCIT:C20197", "unknown": "NCIT:C17998"}
ALPHANUMERIC_FIELDS = ("sex", "age")
_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?$")


@dataclass(frozen=True)
class OntologyFilter:
    id: str
    include_descendants: bool = True
    scope: str | None = None


@dataclass(frozen=True)
class AlphanumericFilter:
    id: str
    operator: str
    value: str
    scope: str | None = None


Filter = OntologyFilter | AlphanumericFilter


def years(value: str) -> float:
    """Years in an ISO 8601 duration (P61Y, P6M, P61Y6M) or a plain number."""
    text = value.strip().upper()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.match(text)
    if match is None or text == "P":
        raise BeaconBadRequest(f"age value {value!r} is neither a number of years nor an ISO 8601 duration")
    y, m, w, d = (float(part) if part else 0.0 for part in match.groups())
    return y + m / 12 + w * 7 / 365.25 + d / 365.25


def parse_filters(raw: Sequence[Any] | None) -> list[Filter]:
    """Filters as GET (CURIE strings) or POST (objects per ``filteringTerms.json``) sent them."""
    parsed: list[Filter] = []
    for item in raw or ():
        if isinstance(item, str):
            parsed.append(OntologyFilter(item))
        elif isinstance(item, Mapping) and isinstance(item.get("id"), str):
            parsed.append(_parse_object(item))
        else:
            raise BeaconBadRequest(f"a filter must be a CURIE or an object with an 'id', not {item!r}")
    return parsed


def _parse_object(item: Mapping[str, Any]) -> Filter:
    scope = item.get("scope")
    if "operator" in item or "value" in item:
        op = item.get("operator", "=")
        if op not in OPERATORS:
            raise BeaconBadRequest(f"filter operator {op!r} is not one of {' '.join(OPERATORS)}")
        if item["id"] not in ALPHANUMERIC_FIELDS:
            raise BeaconBadRequest(
                f"no alphanumeric filter {item['id']!r}: this node filters on {', '.join(ALPHANUMERIC_FIELDS)}"
            )
        return AlphanumericFilter(item["id"], op, str(item.get("value", "")), scope)
    descendants = item.get("includeDescendantTerms", True)
    if not isinstance(descendants, bool):
        raise BeaconBadRequest("includeDescendantTerms must be true or false")
    return OntologyFilter(item["id"], descendants, scope)


@lru_cache(maxsize=4096)
def expand(term: str, include_descendants: bool) -> frozenset[str]:
    """The terms a filter matches; cached because HPO subtrees run to thousands of terms."""
    prefix = term.split(":", 1)[0]
    if not include_descendants or prefix.upper() not in {*supported_prefixes(), "HPO"}:
        return frozenset({term})
    ontology = get_ontology(prefix)
    if term not in ontology:
        return frozenset({term})
    return ontology.descendants(term) | {term}


def matching(people: People, filters: Sequence[Filter]) -> BitMap:
    """Active individuals matching every filter."""
    result = people.active
    for item in filters:
        result &= _one(people, item)
        if not result:
            break
    return result


def _one(people: People, item: Filter) -> AbstractBitMap:
    if isinstance(item, OntologyFilter):
        key = (item.id, item.include_descendants)
        found = people.term_matches.get(key)
        if found is None:
            terms = expand(item.id, item.include_descendants) & people.terms.keys()
            found = FrozenBitMap(BitMap.union(*(people.terms[term] for term in terms)) if terms else ())
            people.term_matches[key] = found
        return found
    if item.id == "sex":
        wanted = SEX_LABELS.get(item.value.lower(), item.value)
        term_set = people.terms.get(wanted, BitMap())
        if item.operator == "=":
            return term_set
        if item.operator == "!":
            return people.everyone - term_set
        raise BeaconBadRequest(f"the sex filter takes {' or '.join(SEX_OPERATORS)}")
    limit, compare = years(item.value), OPERATORS[item.operator]
    return BitMap(
        number
        for number, person in people.by_number.items()
        if person.age_years is not None and compare(person.age_years, limit)
    )
