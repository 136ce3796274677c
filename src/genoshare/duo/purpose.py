"""What a requester says about the research they want to do, in the terms DUO codes are judged by.

Booleans default to False and mean "not declared": a requirement such as IRB approval that is not
declared becomes a question for a reviewer, while a prohibition (NPU) only bites when declared.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from genoshare.duo.errors import DuoError

MondoId = Annotated[str, StringConstraints(pattern=r"^MONDO:\d{7}$")]


class PurposeCategory(StrEnum):
    """The kind of use, named after the primary permission that would cover exactly that use."""

    #: Use that is not research (DUO's NRES "no restriction on use" is the only code that allows it).
    NRES = "NRES"
    #: Research of any kind, e.g. fundamental biology, social sciences, or methods development alone.
    GRU = "GRU"
    HMB = "HMB"
    DS = "DS"
    POA = "POA"

    def describe(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    PurposeCategory.NRES: "use outside research",
    PurposeCategory.GRU: "general research",
    PurposeCategory.HMB: "health/medical/biomedical research",
    PurposeCategory.DS: "disease-specific research",
    PurposeCategory.POA: "population origins or ancestry research",
}


class ResearchPurpose(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # The DS rule below, said in JSON Schema too, so API clients and fuzzers know it.
        json_schema_extra={
            "if": {"properties": {"primary": {"const": "DS"}}, "required": ["primary"]},
            "then": {"properties": {"diseases": {"minItems": 1}}, "required": ["diseases"]},
        },
    )

    primary: PurposeCategory
    #: MONDO ids the research is about; required for DS.
    diseases: tuple[MondoId, ...] = ()
    #: The requester is a for-profit organisation (NPU, NPUNCU).
    for_profit: bool = False
    #: The use itself is commercial, whoever the requester is (NCU, NPUNCU).
    commercial: bool = False
    methods_development: bool = False
    #: The research studies population origins or ancestry (POA, NPOA, HMB's exclusion).
    population_ancestry: bool = False
    #: Genotype, or genotype and phenotype, research (GSO).
    genetic_study: bool = False
    clinical_care: bool = False
    irb_approval: bool = False
    collaboration_agreed: bool = False
    publication_planned: bool = False
    #: The requester agrees to return derived or enriched data (RTN).
    return_of_results: bool = False
    #: Where the data will be used: a GAZ id or place name, compared with GS.
    location: str | None = None
    #: Research topics (EDAM ids or text), compared with RS.
    topics: tuple[str, ...] = ()
    requester_id: str | None = None
    institution: str | None = None
    project_id: str | None = None
    #: The day the decision is about; TS and MOR are judged on it.
    date: dt.date = Field(default_factory=dt.date.today)
    #: When access started, for a renewal or a check during use; a new request starts TS at ``date``.
    access_granted_on: dt.date | None = None
    publication_date: dt.date | None = None

    @model_validator(mode="after")
    def _ds_names_a_disease(self) -> ResearchPurpose:
        if self.primary is PurposeCategory.DS and not self.diseases:
            raise ValueError("a DS purpose needs at least one MONDO disease id")
        return self

    @property
    def studies_ancestry(self) -> bool:
        return self.primary is PurposeCategory.POA or self.population_ancestry


def parse_category(text: str) -> tuple[PurposeCategory, tuple[str, ...]]:
    """Read ``DS:MONDO:0005148`` or ``HMB`` as written on a command line."""
    head, _, disease = text.strip().partition(":")
    try:
        category = PurposeCategory(head.upper())
    except ValueError:
        names = ", ".join(PurposeCategory)
        raise DuoError(f"unknown purpose category {head!r}; use one of {names}") from None
    if disease and category is not PurposeCategory.DS:
        raise DuoError(f"only a DS purpose takes a disease, got {text!r}")
    return category, (disease,) if disease else ()
