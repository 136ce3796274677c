"""How much of a Beacon count a caller may learn, on top of the granularity ``AccessPolicy`` grants.

A dataset's ``beacon_policy`` may let callers who only get yes/no (anonymous) see counts, rounded and
suppressed below a minimum, because small exact counts are what membership-inference attacks feed on.
Settings (all optional)::

    {"anonymous_counts": true, "min_count": 5, "count_rounding": 10}

- ``anonymous_counts``: give boolean-level callers a rounded count instead of yes/no (default false).
- ``min_count``: a rounded count below this is withheld and the answer falls back to yes/no (default 5).
- ``count_rounding``: counts are rounded to the nearest multiple (default 10); 1 keeps exact counts.

Callers with count or record access get exact counts: the policy already trusts them with the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from genoshare.access.granularity import AccessLevel, Granularity
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS, Decision
from genoshare.errors import InvalidInput

DEFAULT_MIN_COUNT = 5
DEFAULT_ROUNDING = 10


@dataclass(frozen=True)
class DisclosureRule:
    anonymous_counts: bool = False
    min_count: int = DEFAULT_MIN_COUNT
    count_rounding: int = DEFAULT_ROUNDING

    @classmethod
    def from_policy(cls, policy: Mapping[str, object] | None) -> DisclosureRule:
        """Read a dataset's ``beacon_policy``; a malformed setting is a steward's error worth a clear message."""
        policy = policy or {}
        anonymous = policy.get("anonymous_counts", False)
        min_count = policy.get("min_count", DEFAULT_MIN_COUNT)
        rounding = policy.get("count_rounding", DEFAULT_ROUNDING)
        if not isinstance(anonymous, bool):
            raise InvalidInput("beacon_policy.anonymous_counts must be true or false")
        for name, value, least in (("min_count", min_count, 0), ("count_rounding", rounding, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise InvalidInput(f"beacon_policy.{name} must be an integer >= {least}")
        return cls(anonymous, int(min_count), int(rounding))  # type: ignore[call-overload]

    def rounded(self, count: int) -> int:
        step = self.count_rounding
        return int((count + step // 2) // step * step)


@dataclass(frozen=True)
class Disclosure:
    """What one dataset's answer may contain: its granularity, and the count to show at count level."""

    granularity: Granularity
    exists: bool
    count: int | None


def ceiling(decision: Decision, rule: DisclosureRule) -> Granularity:
    """The highest granularity a dataset can answer at for this caller, before looking at any count."""
    if decision.granularity == Granularity.BOOLEAN and rule.anonymous_counts:
        return Granularity.COUNT
    return decision.granularity


def disclose(decision: Decision, rule: DisclosureRule, requested: Granularity, count: int) -> Disclosure:
    """Apply the access decision, the requested granularity and the dataset's rule to one true count."""
    exists = count > 0
    granularity = min(requested, ceiling(decision, rule))
    if granularity <= Granularity.BOOLEAN:
        return Disclosure(Granularity.BOOLEAN, exists, None)
    if decision.granularity >= Granularity.COUNT:
        return Disclosure(granularity, exists, count)
    shown = rule.rounded(count)
    if count and shown < rule.min_count:
        return Disclosure(Granularity.BOOLEAN, exists, None)
    return Disclosure(Granularity.COUNT, exists, shown)


def more_access(access_level: str, dataset_id: str, decision: Decision, anonymous: bool) -> str | None:
    """What would let this caller see more of the dataset, in the words of ``AccessPolicy.granularity``'s rules.

    None when the caller already gets records. Like the decision itself it depends on the caller and the
    dataset's access level only, never on what the dataset holds.
    """
    if decision.granularity >= Granularity.RECORD:
        return None
    grant = (
        f"a {CONTROLLED_ACCESS_GRANTS} visa for {dataset_id} (ask its data access committee: "
        "POST /governance/requests) gives records"
    )
    if decision.granularity >= Granularity.COUNT:
        return grant
    if access_level == AccessLevel.CONTROLLED:
        steps = [f"a {RESEARCHER_STATUS} visa gives counts", grant]
    else:
        steps = [f"a {RESEARCHER_STATUS} visa gives records"]
    if anonymous:
        steps.insert(
            0, "any GA4GH passport from an issuer this node trusts (Authorization: Bearer) gives yes/no on alleles"
        )
    return "; ".join(steps)
