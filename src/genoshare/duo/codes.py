"""Consent codes: parsing the notations people write, and the shape Beacon v2 publishes.

A code is written as its DUO shorthand or CURIE (or OBO IRI), with a parameter after a colon when the
code needs one: ``GRU``, ``DS:MONDO:0005015``, ``DUO:0000007:MONDO:0005015``, ``TS:12``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genoshare.duo.errors import DuoError
from genoshare.duo.parameters import Parameter, check_parameter
from genoshare.duo.terms import DUO_VERSION, DuoTerm, Kind, duo_release
from genoshare.ontology import Ontology

#: The primary permissions: a dataset has exactly one of these (several DS are one permission).
PRIMARY = ("NRES", "GRU", "HMB", "DS", "POA")

# Codes from dbGaP / DUOS practice that have no DUO class (SOURCE.txt warns not to mint ids for them).
_NOT_DUO = {
    "NCTRL": "no use as control set",
    "NAGR": "no aggregate research",
    "MDS": "methods development as a research purpose",
    "RS-G": "gender-specific research",
    "RS-M": "male research",
    "RS-FM": "female research",
    "RS-PD": "pediatric research",
}

_BY_ID = re.compile(r"^DUO[:_](\d{7})(?::(.*))?$", re.DOTALL)
_BY_IRI = re.compile(r"^(https?://purl\.obolibrary\.org/obo/DUO_\d{7,8})(?::(.*))?$", re.DOTALL)
_BY_SHORTHAND = re.compile(r"^([A-Za-z][A-Za-z-]*)(?::(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class ConsentCode:
    duo_id: str
    shorthand: str
    label: str
    kind: Kind
    parameter: str | None = None
    #: The parameter's ontology label when known (the MONDO label of a DS disease).
    parameter_label: str | None = None

    @property
    def is_primary(self) -> bool:
        return self.shorthand in PRIMARY

    def __str__(self) -> str:
        return self.shorthand if self.parameter is None else f"{self.shorthand}:{self.parameter}"

    def describe(self) -> str:
        """The code for people: ``DS MONDO:0005015 (diabetes mellitus)``."""
        if self.parameter is None:
            return self.shorthand
        suffix = f" ({self.parameter_label})" if self.parameter_label else ""
        return f"{self.shorthand} {self.parameter}{suffix}"

    def to_beacon(self) -> dict[str, Any]:
        """One ``dataUseConditions.duoDataUse`` item of a Beacon v2 dataset.

        Ontology-term parameters (a MONDO disease, a GAZ place, an EDAM topic) go in ``modifiers``,
        which holds ontologyTerms whose ``id`` must be a CURIE. Plain values (months, a date, names)
        cannot be ontologyTerms, so they go in ``label``, which the schema allows to be customised
        "for a clearer description ... in a specific context"; ``id`` stays the DUO class.
        """
        item: dict[str, Any] = {"id": self.duo_id, "label": self.label, "version": DUO_VERSION}
        parameter = self._parameter()
        if parameter is None:
            return item
        if parameter.is_curie:
            modifier = {"id": parameter.value}
            if parameter.label:
                modifier["label"] = parameter.label
            item["modifiers"] = [modifier]
        else:
            item["label"] = f"{self.label}: {_value_text(self.shorthand, parameter.value)}"
        return item

    def _parameter(self) -> Parameter | None:
        return None if self.parameter is None else Parameter(self.parameter, self.parameter_label)


def _value_text(shorthand: str, value: str) -> str:
    if shorthand == "TS":
        return f"{value} month" + ("" if value == "1" else "s")
    if shorthand == "MOR":
        return f"until {value}"
    return value


def parse_code(text: str, *, mondo: Ontology | None = None) -> ConsentCode:
    """Parse one consent code; ``mondo`` defaults to the packaged release (needed for DS only)."""
    term, raw_parameter = _lookup(text.strip())
    parameter = check_parameter(term.shorthand, raw_parameter, mondo)
    return ConsentCode(
        duo_id=term.id,
        shorthand=term.shorthand,
        label=term.label,
        kind=term.kind,
        parameter=parameter.value if parameter else None,
        parameter_label=parameter.label if parameter else None,
    )


def parse_dataset_codes(texts: Iterable[str], *, mondo: Ontology | None = None) -> tuple[ConsentCode, ...]:
    """Parse the codes of one dataset and check that together they make a valid consent."""
    codes = tuple(parse_code(t, mondo=mondo) for t in texts)
    validate_code_set(codes)
    return codes


def validate_code_set(codes: Iterable[ConsentCode]) -> None:
    """Exactly one primary permission (several DS count as one), modifiers optional, no repeats.

    A repeated modifier with different parameters (two TS periods) has no defined meaning, so it is
    rejected instead of guessing whether the codes combine by union or intersection.
    """
    codes = tuple(codes)
    primaries = sorted({c.shorthand for c in codes if c.is_primary}, key=PRIMARY.index)
    if len(primaries) != 1:
        got = " and ".join(primaries) if primaries else "none"
        raise DuoError(
            f"a dataset needs exactly one primary permission ({', '.join(PRIMARY)}; several DS are allowed), got {got}"
        )
    for text, count in Counter(str(c) for c in codes).items():
        if count > 1:
            raise DuoError(f"consent code {text} is listed {count} times")
    for shorthand, count in Counter(c.shorthand for c in codes if c.shorthand != "DS").items():
        if count > 1:
            raise DuoError(f"{shorthand} is listed {count} times with different parameters")


def _lookup(text: str) -> tuple[DuoTerm, str | None]:
    if not text:
        raise DuoError("empty consent code")
    release = duo_release()
    if match := _BY_IRI.match(text):
        term = release.by_iri.get(match[1])
        if term is None:
            raise DuoError(f"unknown DUO class {match[1]!r}")
        return _usable(term), match[2]
    if match := _BY_ID.match(text):
        duo_id = f"DUO:{match[1]}"
        if duo_id in release.obsolete_by_id:
            raise DuoError(_obsolete_message(duo_id))
        term = release.by_id.get(duo_id)
        if term is None:
            raise DuoError(f"unknown DUO id {duo_id!r} (not in DUO release {DUO_VERSION})")
        return _usable(term), match[2]
    if match := _BY_SHORTHAND.match(text):
        shorthand = match[1].upper()
        if shorthand in release.obsolete_by_shorthand:
            raise DuoError(_obsolete_message(release.obsolete_by_shorthand[shorthand].id))
        if shorthand in _NOT_DUO:
            raise DuoError(
                f"{shorthand} ({_NOT_DUO[shorthand]}) is a dbGaP/DUOS code, not a DUO class; DUO has no id for it"
            )
        term = release.by_shorthand.get(shorthand)
        if term is not None:
            return term, match[2]
    raise DuoError(f"unknown consent code {text!r}: not a DUO shorthand, id or IRI")


def _usable(term: DuoTerm) -> DuoTerm:
    if term.kind is Kind.INVESTIGATION:
        raise DuoError(
            f"{term.id} ({term.label}) is a DUO investigation class that describes research types, not a consent code"
        )
    if not term.shorthand:
        raise DuoError(
            f"{term.id} ({term.label}) is a DUO root class, not a consent code; "
            f"use one of its subclasses such as {', '.join(PRIMARY)}"
        )
    return term


def _obsolete_message(duo_id: str) -> str:
    release = duo_release()
    old = release.obsolete_by_id[duo_id]
    name = f"{duo_id} ({old.shorthand + ', ' if old.shorthand else ''}{old.label.removeprefix('obsolete ')})"
    if not old.replaced_by:
        return f"{name} is obsolete in DUO and has no replacement"
    instead = " + ".join(f"{release.by_id[r].shorthand} ({r})" for r in old.replaced_by)
    return f"{name} is obsolete in DUO; use {instead} instead"
