"""Whether a research purpose is permitted by a dataset's consent codes.

Every code is judged on its own against the purpose (DS codes together), and the dataset's outcome is
the most severe: DENY over NEEDS_REVIEW over PERMIT. Pure: the only input besides the arguments is
the MONDO release, loaded once per process unless one is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable

from genoshare.duo import modifiers, permissions
from genoshare.duo.codes import ConsentCode, validate_code_set
from genoshare.duo.context import Context, Rule
from genoshare.duo.decision import CodeDecision, Finding, MatchResult, Outcome
from genoshare.duo.errors import DuoError
from genoshare.duo.purpose import PurposeCategory, ResearchPurpose
from genoshare.ontology import Ontology, UnknownTerm, get_ontology

__all__ = [
    "CodeDecision",
    "Finding",
    "MatchResult",
    "Outcome",
    "PurposeCategory",
    "ResearchPurpose",
    "match",
]

_RULES: dict[str, Rule] = {**permissions.RULES, **modifiers.RULES}


def match(purpose: ResearchPurpose, codes: Iterable[ConsentCode], *, mondo: Ontology | None = None) -> MatchResult:
    """Judge ``purpose`` against one dataset's codes.

    Raises ``DuoError`` for an invalid code set or a purpose disease missing from the MONDO release,
    because a decision over codes that mean nothing would look authoritative and be wrong.
    """
    codes = tuple(codes)
    validate_code_set(codes)
    mondo = mondo or get_ontology("MONDO")
    for disease in purpose.diseases:
        if disease not in mondo:
            raise DuoError(f"purpose disease: {UnknownTerm(disease, mondo.name, mondo.version)}")
    ctx = Context(purpose=purpose, codes=codes, mondo=mondo)
    decisions = tuple(CodeDecision(code, tuple(_RULES[code.shorthand](code, ctx))) for code in codes)
    expiry = [modifiers.time_limit(code, ctx)[1] for code in codes if code.shorthand == "TS"]
    return MatchResult(decisions=decisions, expires_on=min(expiry, default=None))
