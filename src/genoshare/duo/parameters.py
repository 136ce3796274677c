"""Parameters that some DUO codes must carry, and how each is checked and normalised.

DUO attaches them in two ways: as OWL restrictions (DS: a disease, GS: a place, RS: a research topic)
and as editors' comments (MOR: an ISO 8601 date, TS: a number of months, COL: the investigators).
Codes not listed here take no parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from genoshare.duo.errors import DuoError
from genoshare.ontology import Ontology, UnknownTerm, get_ontology

_CURIE = re.compile(r"^[A-Za-z][\w.-]*:\S+$")
_MONDO = re.compile(r"^MONDO:\d{7}$")
_GAZ = re.compile(r"^GAZ:\d{8}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Parameter:
    """A checked parameter: ``value`` is canonical text, ``label`` a human name when one is known."""

    value: str
    label: str | None = None

    @property
    def is_curie(self) -> bool:
        return bool(_CURIE.match(self.value))


@dataclass(frozen=True)
class ParameterSpec:
    description: str
    example: str
    check: Callable[[str, Ontology | None], Parameter]


def _disease(raw: str, mondo: Ontology | None) -> Parameter:
    if not _MONDO.match(raw):
        raise DuoError(
            f"DS needs a MONDO disease id like MONDO:0005015, got {raw!r} "
            "(DUO recommends MONDO so that matching can be automated)"
        )
    try:
        return Parameter(raw, (mondo or get_ontology("MONDO")).label(raw))
    except UnknownTerm as err:
        raise DuoError(f"DS: {err}") from None


def _place(raw: str, _: Ontology | None) -> Parameter:
    if _CURIE.match(raw) and not _GAZ.match(raw):
        raise DuoError(f"GS needs a place: a GAZ id like GAZ:00002459 or a place name, got {raw!r}")
    return Parameter(raw)


def _date(raw: str, _: Ontology | None) -> Parameter:
    try:
        if not _ISO_DATE.match(raw):
            raise ValueError(raw)
        return Parameter(dt.date.fromisoformat(raw).isoformat())
    except ValueError:
        raise DuoError(f"MOR needs an ISO 8601 date like 2027-01-31, got {raw!r}") from None


def _months(raw: str, _: Ontology | None) -> Parameter:
    if not raw.isdecimal() or int(raw) < 1:
        raise DuoError(f"TS needs a positive whole number of months like TS:12, got {raw!r}")
    return Parameter(str(int(raw)))


def _text(code: str, what: str) -> Callable[[str, Ontology | None], Parameter]:
    def check(raw: str, _: Ontology | None) -> Parameter:
        if not raw:
            raise DuoError(f"{code} needs {what}")
        return Parameter(raw)

    return check


PARAMETERS: dict[str, ParameterSpec] = {
    "DS": ParameterSpec("a MONDO disease id", "DS:MONDO:0005015", _disease),
    "GS": ParameterSpec("a place: GAZ id or name", "GS:GAZ:00002459", _place),
    "RS": ParameterSpec("a research topic (EDAM id or text)", "RS:EDAM:topic_3574", _text("RS", "a topic")),
    "MOR": ParameterSpec("an ISO 8601 date", "MOR:2027-01-31", _date),
    "TS": ParameterSpec("a number of months", "TS:12", _months),
    "COL": ParameterSpec("the investigator(s) to collaborate with", "COL:Dr Jane Doe", _text("COL", "a name")),
}


def check_parameter(shorthand: str, raw: str | None, mondo: Ontology | None) -> Parameter | None:
    """``mondo`` defaults to the packaged release and is only loaded for DS."""
    spec = PARAMETERS.get(shorthand)
    value = raw.strip() if raw is not None else None
    if spec is None:
        if value is not None:
            raise DuoError(f"{shorthand} takes no parameter, got {shorthand}:{raw}")
        return None
    if not value:
        raise DuoError(f"{shorthand} needs a parameter: {spec.description}, e.g. {spec.example}")
    return spec.check(value, mondo)
