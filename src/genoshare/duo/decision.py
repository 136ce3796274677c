"""Outcomes of matching, per consent code and for the whole dataset."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from genoshare.duo.codes import ConsentCode


class Outcome(StrEnum):
    PERMIT = "PERMIT"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    DENY = "DENY"


# Any single DENY must block access; any open question must reach a human before access is granted.
_SEVERITY = {Outcome.PERMIT: 0, Outcome.NEEDS_REVIEW: 1, Outcome.DENY: 2}


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=_SEVERITY.__getitem__, default=Outcome.PERMIT)


@dataclass(frozen=True)
class Finding:
    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class CodeDecision:
    code: ConsentCode
    findings: tuple[Finding, ...]

    @property
    def outcome(self) -> Outcome:
        return worst(f.outcome for f in self.findings)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.reason for f in self.findings)


@dataclass(frozen=True)
class MatchResult:
    decisions: tuple[CodeDecision, ...]
    #: The day a TS time limit ends access, if the dataset has one.
    expires_on: dt.date | None = None

    @property
    def outcome(self) -> Outcome:
        return worst(d.outcome for d in self.decisions)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(r for d in self.decisions for r in d.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "codes": [
                {
                    "code": str(d.code),
                    "id": d.code.duo_id,
                    "label": d.code.label,
                    "outcome": d.outcome.value,
                    "reasons": list(d.reasons),
                }
                for d in self.decisions
            ],
        }
