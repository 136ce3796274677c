"""How the node's attack flag (``genoshare.access.attack_watch``) does on the harness's sessions (issue 17).

The node counts, per person and dataset, the questions on rare alleles that each member carries, whatever
the answers were, and flags the person once one member carries ``min_hits`` of them and ``min_share`` of
all (``WatchRule``). The harness runs the node's own rule (``SessionWatch``) over the sessions it asks:

- attack sessions (A1, A2) on member and non-member targets: the share flagged and the question of the flag;
- benign sessions, each judged alone: the benign researcher's random sites and screen cut into sessions,
  one patient's screen at a time (the candidates a clinician asks for one patient: that patient's alleles
  the reference has never seen), and screens of a region (consecutive sites, whose rare alleles share
  carriers through linkage): false alarms.

The rule reads no answer, so it flags the same sessions under every defence; what the defence changes is
how much of the walked member's budget is spent when the flag comes (``harness.budget_at_flag``).
"""

from __future__ import annotations

import numpy as np

from genoshare.access.attack_watch import SessionWatch, WatchRule
from genoshare_lab.privacy.attacks import QueryPlans
from genoshare_lab.privacy.cohort import AttackCohort

#: Alleles with at most this many copies are rare (the node's rule and the harness's utility columns).
RARE_MAX_COUNT = WatchRule().rare_max_count
#: Screens of a region: this many windows of this many consecutive sites the dataset holds.
REGION_WINDOWS, REGION_SITES = 200, (20, 50, 200)


def flagged_at(cohort: AttackCohort, sites: np.ndarray, rule: WatchRule) -> int | None:
    """The 1-based question at which the node's rule flags a session asking ``sites``, or None."""
    watch = SessionWatch(rule)
    ac = cohort.beacon_ac
    for i, site in enumerate(sites.tolist()):
        count = int(ac[site])
        # Only rare alleles are counted: the carriers of the others are not worth reading.
        if rule.rare(count) and watch.observe(cohort.carriers(site).tolist(), count):
            return i + 1
    return None


def _false_alarms(cohort: AttackCohort, sessions: list[np.ndarray], rule: WatchRule) -> dict[str, float | int]:
    flagged = sum(flagged_at(cohort, s, rule) is not None for s in sessions)
    return {"sessions": len(sessions), "flagged": flagged, "share": round(flagged / len(sessions), 4)}


def detection(
    cohort: AttackCohort, plans: QueryPlans, queries: int, rule: WatchRule, seed: int = 0
) -> dict[str, object]:
    """Flags on attack sessions (first ``queries`` questions) and false alarms on benign ones."""
    n = cohort.config.n_targets
    report: dict[str, object] = {"rule": {"min_hits": rule.min_hits, "min_share": rule.min_share}}
    for name, plan in (("A1", plans.a1), ("A2", plans.a2)):
        at = [flagged_at(cohort, plan[t, :queries], rule) for t in range(2 * n)]
        members = [q for q in at[:n] if q is not None]
        report[name] = {
            "members_flagged": round(len(members) / n, 4),
            "non_members_flagged": round(sum(q is not None for q in at[n:]) / n, 4),
            "median_query_when_flagged": float(np.median(members)) if members else None,
            "flagged_at": at,
        }
    benign: dict[str, object] = {}
    for parts in (10, 40):
        benign[f"random sites and screen, {parts} sessions"] = _false_alarms(
            cohort, list(np.array_split(plans.benign_session, parts)), rule
        )
    patients = [cohort.carried_by_target(t) for t in range(n, 2 * n)]
    benign["one patient's novel alleles"] = _false_alarms(
        cohort, [sites[cohort.panel_ac[sites] == 0] for sites in patients], rule
    )
    present = np.flatnonzero(cohort.beacon_ac > 0)
    rng = np.random.default_rng(seed)
    for width in REGION_SITES:
        starts = rng.choice(len(present) - width, size=REGION_WINDOWS, replace=False)
        windows = [present[start : start + width] for start in starts.tolist()]
        benign[f"region of {width} consecutive sites"] = _false_alarms(cohort, windows, rule)
    report["benign"] = benign
    return report
