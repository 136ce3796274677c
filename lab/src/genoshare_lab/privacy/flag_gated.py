"""The attack flag as part of the defence: a flagged person loses the share gate's free answers (issue 17, lab).

The share gate (``accounting.ShareGate``) spares from the budget the members a person's broad questions
touch, which is what lets a benign researcher keep most rare alleles, but it also answers for free about
members whose share of a walk stays small (the walked member's relatives), and that is where the gate loses
power to the attacker. The node already recognises a walk from its side (``genoshare.access.attack_watch``:
one member holding most of the evidence a person's questions on rare and absent alleles would build up).
Here the two are composed -- the node's own guard, the gate and the node's own rule (``SessionWatch``) -- so
that the free answers end for a person once the rule flags them:

- ``after="budget"``: the node's budget on every carrier from then on (the gate off);
- ``after="stop"``: no carrier of a rare allele counted any more, so every rare allele is answered as an
  absent one is, the mechanism's noise included.

A benign researcher whom the rule never flags keeps the gate's answers; one it flags pays in wrong "no" from
then on. The attacker knows the rule: besides A1 and the gate's diluted walks, the best response includes
the evasive walk (``evasive_attacks``), which asks made-up alleles between its walk questions, as many as
``detection.adaptive_plan`` says keep it under the rule, within the question budget. Its cost is the walk
questions it gives up, so a rule with a small share bounds how far it can walk unflagged.

What the flag cannot take back: when it comes depends on membership (a member's walk is flagged sooner than
a non-member's), so a change of answers at the flag is itself evidence, and a padded walk kept short enough
never meets it. ``docs/privacy.md`` has what was measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from genoshare.access.attack_watch import SessionWatch, WatchRule
from genoshare.access.passports import Identity
from genoshare.access.privacy import PrivacySettings
from genoshare.access.privacy_state import Answer
from genoshare_lab.privacy.accounting import (
    RATIOS,
    GatedBeacon,
    Padded,
    ShareGate,
    _GatedSession,
    asked_or_cached,
    best_response_padded,
    measure_gated,
    padded_attacks,
    settings_name,
)
from genoshare_lab.privacy.attacks import QueryPlans, plan_queries
from genoshare_lab.privacy.cohort import AttackCohort, load_or_simulate
from genoshare_lab.privacy.detection import RARE_MAX_COUNT, adaptive_plan
from genoshare_lab.privacy.harness import FULL, ISSUER, cache_key, utility

#: What a flagged person gets: the node's budget on every carrier, or no carrier of a rare allele counted.
AFTER_FLAG = ("budget", "stop")


@dataclass(frozen=True)
class FlagGate:
    """The share gate until the node's attack rule flags the person, then ``after`` (``AFTER_FLAG``)."""

    gate: ShareGate
    rule: WatchRule = field(default_factory=WatchRule)
    after: str = "stop"

    def __post_init__(self) -> None:
        if self.after not in AFTER_FLAG:
            raise ValueError(f"after must be one of {AFTER_FLAG}, not {self.after!r}")

    @property
    def name(self) -> str:
        return f"{self.gate.name}, flag {self.rule.min_evidence:g} nats share {self.rule.min_share:g} -> {self.after}"


class _FlagGatedSession(_GatedSession):
    """The gate's session, with the node's rule watching the person's new questions."""

    def __init__(self, flag: FlagGate) -> None:
        super().__init__(flag.gate)
        self.flag = flag
        self.watch = SessionWatch(flag.rule)
        #: The carriers and count of the question being answered (``pending`` is cleared once counted).
        self.asking: tuple[BitMap, int] | None = None
        self.questions = 0
        #: The 1-based question after whose answer the rule flagged the person, if it did.
        self.flagged_at: int | None = None

    def gated(self, members: Iterable[int]) -> BitMap:
        return BitMap(members) if self.watch.flagged else super().gated(members)

    def cached(self, key: str) -> Answer | None:
        self.asking = self.pending
        self.questions += 1
        return super().cached(key)

    def exhausted(self, budget: float) -> FrozenBitMap:
        if self.watch.flagged and self.flag.after == "stop" and self.asking is not None:
            carriers, count = self.asking
            if count <= RARE_MAX_COUNT:
                return FrozenBitMap(carriers)  # every carrier left out: answered as an absent allele
        return super().exhausted(budget)

    def remember(self, key: str, answer: Answer) -> None:
        # As on the node, the question is counted after its answer: the flag changes the next ones.
        super().remember(key, answer)
        if self.asking is not None and self.watch.observe(self.asking[0], self.asking[1]):
            self.flagged_at = self.questions


class FlagGatedBeacon(GatedBeacon):
    """The oracle with the share gate on its budget, and the node's attack rule ending the gate per person."""

    def __init__(self, cohort: AttackCohort, settings: PrivacySettings, flag: FlagGate, seed: int) -> None:
        super().__init__(cohort, settings, flag.gate, seed, new_session=lambda: _FlagGatedSession(flag))

    def flagged_at(self, user: str) -> int | None:
        """The question after which ``user``'s session was flagged (None: never, or never asked)."""
        caller = self.guard.caller(Identity(user, ISSUER))
        assert caller.principal is not None
        with self.state.session(caller.principal, self.dataset.id) as session:
            assert isinstance(session, _FlagGatedSession)
            return session.flagged_at


def evasive_attacks(
    cohort: AttackCohort, plans: QueryPlans, rule: WatchRule, queries: int, seed: int
) -> dict[str, Padded]:
    """The rarest-first walk of an attacker who knows ``rule`` and keeps under it (``detection.adaptive_plan``).

    It cannot see the counts, so it pads as if every walk question were a singleton of its target, with
    made-up alleles no member carries (each weighing as a singleton in the rule, and not a rare question
    for the gate), drawn afresh per target. A second version pads half as much, betting that its walk
    questions weigh less than singletons: more walk questions, at the risk of the flag.
    """
    n = cohort.config.n_targets
    absent = np.flatnonzero(cohort.beacon_ac == 0)
    rng = np.random.default_rng([seed, 17])
    attacks: dict[str, Padded] = {}
    for label, assumed in (
        ("evasive", rule),
        ("evasive, half the decoys", replace(rule, min_share=2 * rule.min_share / (1 + rule.min_share))),
    ):
        on_walk = adaptive_plan(assumed, queries)
        steps = int(on_walk.sum())
        sessions = np.empty((2 * n, queries), dtype=np.int64)
        for t in range(2 * n):
            sessions[t, on_walk] = plans.a2[t, :steps]
            sessions[t, ~on_walk] = rng.choice(absent, size=queries - steps, replace=False)
        attacks[label] = (sessions, on_walk)
    return attacks


def measure_flag_gated(
    cohort: AttackCohort,
    plans: QueryPlans,
    settings: PrivacySettings,
    flag: FlagGate,
    queries: int,
    seed: int,
    cache: Path | None = None,
    ratios: Sequence[int] = RATIOS,
) -> dict[str, object]:
    """The flag-gated defence against A1, the gate's diluted walks and the evasive walks; the benign session.

    Every session is a fresh identity. The best response is cross-fitted as the frontier's over every attack,
    miss rate and length (decoys counted, <= ``queries``). Also reported: the share of each attack's member
    and non-member sessions flagged (and at which question), and whether and when the benign session was.
    """
    # The whole rule names the answers cached: the node's rule gains fields as it is improved.
    name = f"oracle, {flag!r}, ratios {list(ratios)}, evasive"
    key = cache_key(cohort, plans, settings, queries, seed, name)
    attacks = padded_attacks(cohort, plans, queries, seed, ratios)
    attacks.update(evasive_attacks(cohort, plans, flag.rule, queries, seed))

    def ask() -> dict[str, np.ndarray]:
        beacon = FlagGatedBeacon(cohort, settings, flag, seed)
        arrays: dict[str, np.ndarray] = {}
        for attack, (sessions, _) in attacks.items():
            users = [f"{attack}-target-{t}" for t in range(len(sessions))]
            arrays[attack] = np.stack([beacon.session(u, s) for u, s in zip(users, sessions, strict=True)])
            arrays[f"flagged at: {attack}"] = np.array([beacon.flagged_at(u) or 0 for u in users])
        arrays["benign"] = beacon.session("benign-researcher", plans.benign_session)
        arrays["flagged at: benign"] = np.array([beacon.flagged_at("benign-researcher") or 0])
        return arrays

    arrays = asked_or_cached(None if cache is None else cache / f"{key}.npz", ask)
    n = cohort.config.n_targets
    flags: dict[str, object] = {}
    for attack in attacks:
        at = arrays[f"flagged at: {attack}"]
        members = at[:n][at[:n] > 0]
        flags[attack] = {
            "members_flagged": round(float(np.mean(at[:n] > 0)), 4),
            "non_members_flagged": round(float(np.mean(at[n:] > 0)), 4),
            "median_question_when_flagged": float(np.median(members)) if len(members) else None,
            "walk_questions": int(attacks[attack][1].sum()),
        }
    benign_at = int(arrays["flagged at: benign"][0])
    result = {
        "defence": f"{settings_name(settings)} + {flag.name}",
        "settings": {**asdict(settings), "share": flag.gate.share, "rule": asdict(flag.rule), "after": flag.after},
        "queries": queries,
        "target": "oracle with the share gate ended by the attack flag (lab)",
        "best_response": best_response_padded(cohort, settings, attacks, arrays),
        "utility": utility(cohort, plans, arrays["benign"]),
        "flags": flags,
        "benign_flagged_at": benign_at or None,
    }
    return json.loads(json.dumps(result))


#: The share gate's point that meets every utility goal (``docs/privacy.md``), measured alone and flag-gated.
SETTINGS = PrivacySettings(budget=0.4, count_epsilon=2.4)
GATE = ShareGate(share=0.003)
#: The node's rule as it is, and two with a small share (a padded walk fits few walk questions in 1,000).
POINTS = tuple(
    FlagGate(GATE, rule, after)
    for rule, after in (
        (WatchRule(), "stop"),
        (WatchRule(min_evidence=4.0, min_share=0.03), "stop"),
        (WatchRule(min_evidence=2.0, min_share=0.02), "stop"),
        (WatchRule(min_evidence=4.0, min_share=0.03), "budget"),
        (WatchRule(min_evidence=2.0, min_share=0.02), "budget"),
    )
)

_SHARED: dict[str, object] = {}


def _job(point: FlagGate | None) -> dict[str, object]:
    cohort, plans, seed, cache = (_SHARED[k] for k in ("cohort", "plans", "seed", "cache"))
    assert isinstance(cohort, AttackCohort) and isinstance(plans, QueryPlans) and isinstance(seed, int)
    assert cache is None or isinstance(cache, Path)
    queries = FULL.defended_queries
    if point is None:
        return measure_gated(cohort, plans, SETTINGS, GATE, queries, seed, cache)
    return measure_flag_gated(cohort, plans, SETTINGS, point, queries, seed, cache)


def table(results: Sequence[dict[str, object]]) -> str:
    """Power, utility, the best response's choices, and who the rule flagged (plain and evasive walks, benign)."""
    lines = [
        "| defence | power [95% CI] | best response (the two folds) | wrong no: rare / common | false yes "
        "| A2 walks flagged: members / non-members | evasive walk questions | benign flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        best, use = r["best_response"], r["utility"]
        assert isinstance(best, dict) and isinstance(use, dict)
        choices = "; ".join(f"{c['attack']}, {c['queries']}" for c in best["choices"])
        flags = r.get("flags")
        flagged, evasive, benign = "-", "-", "-"
        if isinstance(flags, dict):
            plain = flags["A2 with 0 decoys"]
            flagged = f"{plain['members_flagged']:.0%} / {plain['non_members_flagged']:.0%}"
            evasive = str(flags["evasive"]["walk_questions"])
            benign = "no" if r["benign_flagged_at"] is None else f"at question {r['benign_flagged_at']}"
        lines.append(
            f"| {r['defence']} | {best['power']:.3f} [{best['low']:.3f}, {best['high']:.3f}] | {choices} "
            f"| {use['wrong_no_rare']:.3f} / {use['wrong_no_common']:.4f} | {use['false_yes_absent']:.3f} "
            f"| {flagged} | {evasive} | {benign} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The gate alone and ``POINTS`` on the oracle at full size (N = 1,000, 200 + 200 targets), one seed."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/work/privacy"))
    parser.add_argument("--seed", type=int, default=FULL.seed)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    cohort = load_or_simulate(FULL.cohort, args.work_dir)
    plans = plan_queries(cohort, FULL.max_queries, FULL.benign_queries, args.seed, FULL.screen_queries)
    _SHARED.update(cohort=cohort, plans=plans, seed=args.seed, cache=args.work_dir / "cache")
    try:
        with ProcessPoolExecutor(max(args.workers, 1), mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_job, (None, *POINTS)))
    finally:
        _SHARED.clear()
    text = table(results)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / f"flag-gated-seed{args.seed}.json").write_text(json.dumps(results, indent=1))
    (args.work_dir / f"flag-gated-seed{args.seed}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
