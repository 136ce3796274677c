"""Flagging sessions that look like a membership attack, from the answers the node gave (issue 17, must-have 5).

A rarest-first walk over one person's genome (A2) and a likelihood-ratio build-up on one person (A1) both
make the node say "yes" on many rare alleles that one and the same member carries. A benign researcher's
rare "yes" answers are spread over many members. The node knows the carriers of every answer it gives, so
it can count, per session, the rare "yes" answers each member is a carrier of: a session is flagged once
one member carries at least ``min_hits`` of them and at least ``min_share`` of all its rare "yes" answers.

Only the harness measures this rule so far (``flags``; detection rate on attacks, false alarms on benign
sessions, and the query at which the flag is raised next to where the attacker's power peaks); the node
does not yet raise it (no audit entry or metric), see docs/privacy.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genoshare_lab.privacy.cohort import AttackCohort

#: Alleles with at most this many copies are rare (the harness's utility columns use the same bound).
RARE_MAX_COUNT = 5


@dataclass(frozen=True)
class Rule:
    min_hits: int = 8
    min_share: float = 0.5


def flagged_at(cohort: AttackCohort, sites: np.ndarray, answers: np.ndarray, rule: Rule) -> int | None:
    """The 1-based query at which ``rule`` flags the session, or None if it never does."""
    hits = np.zeros(cohort.config.n_members, dtype=np.int32)
    rare_yes = 0
    ac = cohort.beacon_ac
    for i, (site, yes) in enumerate(zip(sites.tolist(), answers.tolist(), strict=True)):
        if not yes or not 0 < ac[site] <= RARE_MAX_COUNT:
            continue
        rare_yes += 1
        carriers = cohort.carriers(site)
        hits[carriers] += 1
        top = int(hits[carriers].max())
        if top >= rule.min_hits and top >= rule.min_share * rare_yes:
            return i + 1
    return None


def detection(
    cohort: AttackCohort,
    attacks: dict[str, tuple[np.ndarray, np.ndarray]],
    benign: tuple[np.ndarray, np.ndarray],
    benign_sessions: int = 10,
    rule: Rule = Rule(),
) -> dict[str, object]:
    """Detection rate per attack on member and non-member targets, and false alarms on benign sessions.

    ``attacks``: name -> (plan, answers), one row per target (members first). The benign researcher's one
    long session is cut into ``benign_sessions`` sessions, each judged alone.
    """
    n = cohort.config.n_targets
    report: dict[str, object] = {"rule": {"min_hits": rule.min_hits, "min_share": rule.min_share}}
    for name, (plan, answers) in attacks.items():
        at = [flagged_at(cohort, plan[t, : answers.shape[1]], answers[t], rule) for t in range(2 * n)]
        members = [q for q in at[:n] if q is not None]
        report[name] = {
            "members_flagged": round(len(members) / n, 4),
            "non_members_flagged": round(sum(q is not None for q in at[n:]) / n, 4),
            "median_query_when_flagged": float(np.median(members)) if members else None,
        }
    sites, answers = benign
    chunks = zip(np.array_split(sites, benign_sessions), np.array_split(answers, benign_sessions), strict=True)
    alarms = [flagged_at(cohort, s, a, rule) is not None for s, a in chunks]
    report["benign_false_alarms"] = round(sum(alarms) / benign_sessions, 4)
    report["benign_sessions"] = benign_sessions
    return report
