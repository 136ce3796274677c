"""Visa ``conditions`` as GA4GH Passport 1.2.1 defines them: an OR of ANDs of clauses over other visas.

A clause names a visa ``type`` and at least one of the visa object's string claims (``value``, ``source``,
``by``), each as ``const:``, ``pattern:`` or ``split_pattern:`` and a match value; all of a clause's claims
must match one and the same visa of the passport that has no ``conditions`` of its own and that this node
accepted. A clause this module cannot judge (unknown prefix or claim, a timestamp, a nested condition)
makes the whole ``conditions`` unmet: the spec requires refusing what cannot be confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

#: The visa object claims a clause may test (the standard string claims besides ``type``).
MATCHABLE = ("value", "source", "by")
MATCH_TYPES = ("const", "pattern", "split_pattern")


class ConditionError(ValueError):
    """The conditions are malformed or use a form this node does not evaluate."""


class Matchable(Protocol):
    """A visa as conditions see it (``genoshare.access.passports.Visa``)."""

    @property
    def type(self) -> str: ...
    @property
    def expires(self) -> int: ...


def glob(pattern: str, text: str) -> bool:
    """Full-string match where ``?`` is any one character and ``*`` any run (no escapes), in O(len²) at worst.

    Not a regular expression: a pattern like ``*a*a*a*b`` must not backtrack exponentially.
    """
    p = t = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] in ("?", text[t]) and pattern[p] != "*":
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _claim_matches(expected: str, actual: str | None) -> bool:
    if actual is None or actual == "":
        return False
    prefix, _, operand = expected.partition(":")
    if prefix == "const":
        return actual == operand
    if prefix == "pattern":
        return glob(operand, actual)
    return any(glob(operand, part) for part in actual.split(";"))  # split_pattern


def _checked_clause(clause: object) -> Mapping[str, str]:
    if not isinstance(clause, dict) or not isinstance(clause.get("type"), str):
        raise ConditionError("a condition clause must be an object with a 'type'")
    claims = {key: value for key, value in clause.items() if key != "type"}
    if not claims:
        raise ConditionError("a condition clause must name at least one claim besides 'type'")
    for key, value in claims.items():
        if key not in MATCHABLE:
            raise ConditionError(f"condition clause claim {key!r} is not one this node evaluates")
        if not isinstance(value, str):
            raise ConditionError(f"condition clause claim {key!r} is not a string")
        prefix, colon, _ = value.partition(":")
        if not colon or prefix not in MATCH_TYPES:
            raise ConditionError(f"condition {key!r} match type {prefix!r} is not supported")
    return clause


def _checked(conditions: object) -> list[list[Mapping[str, str]]]:
    if not isinstance(conditions, list) or not all(isinstance(group, list) for group in conditions):
        raise ConditionError("'conditions' must be a list of lists of clauses")
    groups = [[_checked_clause(clause) for clause in group] for group in conditions]
    if any(not group for group in groups):
        raise ConditionError("'conditions' has an empty clause list")
    return groups


def _visa_claim(visa: Matchable, key: str) -> str | None:
    value: Any = getattr(visa, key, None)
    return value if isinstance(value, str) else None


def met_until(conditions: object, visas: Iterable[Matchable]) -> int | None:
    """Until when ``conditions`` hold on ``visas`` (the passport's accepted visas without conditions), or None.

    The answer is the latest expiry over the alternatives that match, each the earliest expiry over its
    clauses, each the latest over the visas that match it: the Passport spec's "minimum expiry across all
    visas relied on". An empty ``conditions`` list holds forever. Raises ``ConditionError`` if malformed.
    """
    groups = _checked(conditions)
    if not groups:
        return 2**63
    candidates = list(visas)
    best: int | None = None
    for group in groups:
        until: int | None = 2**63
        for clause in group:
            matches = [
                visa.expires
                for visa in candidates
                if visa.type == clause["type"]
                and all(_claim_matches(clause[key], _visa_claim(visa, key)) for key in clause if key != "type")
            ]
            until = min(until, max(matches)) if matches and until is not None else None
            if until is None:
                break
        if until is not None:
            best = until if best is None else max(best, until)
    return best
