"""What every consent-code rule sees: the purpose, the dataset's whole code set, and MONDO."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genoshare.duo.codes import ConsentCode
from genoshare.duo.decision import Finding, Outcome
from genoshare.duo.purpose import ResearchPurpose
from genoshare.ontology import Ontology


@dataclass(frozen=True)
class Context:
    purpose: ResearchPurpose
    codes: tuple[ConsentCode, ...]
    mondo: Ontology

    def has(self, shorthand: str) -> bool:
        return any(c.shorthand == shorthand for c in self.codes)

    def disease(self, term_id: str) -> str:
        return f"{term_id} ({self.mondo.label(term_id)})"


Rule = Callable[[ConsentCode, Context], list[Finding]]


def permit(reason: str) -> Finding:
    return Finding(Outcome.PERMIT, f"permitted: {reason}")


def deny(reason: str) -> Finding:
    return Finding(Outcome.DENY, f"denied: {reason}")


def review(reason: str) -> Finding:
    """``reason`` starts with "requires ..." and says what the requester must attach or agree to."""
    return Finding(Outcome.NEEDS_REVIEW, reason)
