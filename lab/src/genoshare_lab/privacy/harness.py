"""Run the membership-inference attacks against the node's Beacon; write the power/utility frontier.

    python -m genoshare_lab.privacy.harness [--quick | --full | --per-node] [--work-dir ...] [--workers 2]

Two targets answer the same sessions (each attacked target in a user session of its own; a benign user asks
10,000 random segregating sites in one session):

- **the node** (``node_target.NodeBeacon``): the cohort's members ingested into a real node as a controlled
  dataset, each query asked through ``BeaconService.query`` (what ``GET /api/g_variants`` runs) with one
  passport identity per session, so the access decision, granularity, guard and defaults are the node's.
  The headline rows -- no defence (the gates) and the node default -- are measured here.
- **the oracle** (``GuardedBeacon``): ``PrivacyGuard.filter_answer`` over the cohort's carrier bitmaps, about
  4x cheaper per answer, used for the grid of defences. The harness checks, for the two headline defences,
  that the oracle gives answer-for-answer the same results as the node (``agreement`` in the report), and
  ``tests/privacy/test_harness_real_handler.py`` proves it on a small cohort with the node's SQL state.

Defences without per-user state (no budget, no randomised response, no rate limit) answer every session
alike, so both targets are asked once per distinct allele and the answers are reused for every session.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from pyroaring import BitMap

from genoshare.access.granularity import AccessLevel, Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import Decision
from genoshare.access.privacy import (
    NODE_DEFAULTS,
    Caller,
    PrivacyGuard,
    PrivacySettings,
    RateLimited,
    truncated_geometric,
)
from genoshare.access.privacy_state import MemoryPrivacyState
from genoshare.store.models import Dataset
from genoshare_lab.privacy.attacks import (
    A3_STATISTICS,
    DELTAS,
    QueryPlans,
    a3_scores,
    bootstrap,
    plan_queries,
    power_at_fpr,
    power_curve,
    scores,
)
from genoshare_lab.privacy.cohort import AttackCohort, CohortConfig, load_or_simulate
from genoshare_lab.privacy.detection import NEIGHBOURS, RARE_MAX_COUNT, adaptive, detection, detection_table
from genoshare_lab.privacy.masking import greedy_masking, masked_answers
from genoshare_lab.privacy.node_target import NodeBeacon, SessionCoin, SteppingClock, build_node

ISSUER = "https://attackers.example.org"
REPORT_POINTS = (1, 2, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 5000)
#: The goal for the node's default policy (issue 8).
GOAL_POWER, GOAL_RARE_WRONG_NO, GOAL_COMMON_WRONG_NO = 0.10, 0.25, 0.01
#: ... and issue 17's: false "yes" on absent alleles (the variant screen's), where the run measured it.
GOAL_FALSE_YES = 0.10


@dataclass(frozen=True)
class Defence:
    name: str
    settings: PrivacySettings


def _rr(budget: float | None, p: float, k: int, **graded: float) -> Defence:
    """Randomised response on alleles with <= ``k`` copies, with a budget and the graded settings if given."""
    name = f"budget={budget} + rr p={p} k<={k}" if budget is not None else f"rr p={p} k<={k}"
    labels = {"flip_decay": "decay", "false_yes_probability": "false-yes", "spend_count_scale": "spend x"}
    name += "".join(f" {labels[key]}={value}" for key, value in graded.items())
    return Defence(name, PrivacySettings(budget=budget, flip_probability=p, flip_max_count=k, **graded))  # type: ignore[arg-type]


#: The node's default before the graded settings (measured through the node's handler in the earlier run).
PREVIOUS_DEFAULT = PrivacySettings(budget=1.25, flip_probability=0.3, flip_max_count=2, per_minute=600, per_day=20_000)


def defence_grid() -> list[Defence]:
    """Each defence alone over a range of strengths, then budgets combined with randomised response.

    Points the earlier full-size frontiers showed dominated (rr p=0.1/0.2 alone, min_count=3, budget=4,
    budget 1.0/1.5 with p=0.2) were dropped to keep the run in minutes. The graded settings are each tried
    on their own (a flip that decays with the count; a spend priced at half the count) and together with a
    false-"yes" rate above the false-"no" one, the combination the exploration found best (docs/privacy.md).
    """
    grid = [Defence("none", PrivacySettings())]
    grid += [Defence(f"min_count={m}", PrivacySettings(min_allele_count=m)) for m in (2, 5)]
    grid += [Defence(f"budget={b}", PrivacySettings(budget=b)) for b in (0.25, 0.5, 1.0, 2.0)]
    grid.append(_rr(None, 0.3, 5))
    grid += [_rr(b, p, 5) for b, p in ((0.5, 0.2), (1.0, 0.3))]
    grid += [_rr(b, 0.3, 2) for b in (1.0, 1.5)]
    grid.append(Defence("previous default", PREVIOUS_DEFAULT))
    grid.append(_rr(2.5, 0.3, 2, spend_count_scale=0.5))
    grid.append(_rr(1.0, 0.35, 5, flip_decay=0.5))
    grid += [_rr(1.0, p, 5, flip_decay=0.5, false_yes_probability=0.45) for p in (0.25, 0.3)]
    grid.append(_rr(1.0, 0.3, 5, flip_decay=0.5, false_yes_probability=0.49))
    grid.append(_rr(1.25, 0.3, 5, flip_decay=0.4, false_yes_probability=0.45))
    grid += concentrated_grid()
    grid.append(Defence("node default", NODE_DEFAULTS[Granularity.BOOLEAN]))
    return grid


def concentrated_grid() -> list[Defence]:
    """Issue 17's candidates for the goal with false "yes" <= 10 %: noise concentrated on present rare alleles.

    - **concentrated**: absent alleles are affirmed at most 10 % of the time (``false_yes_probability``),
      the noise spent on present singletons (``flip_probability``, decaying with the count), the evidence
      the remaining "yes" answers carry bounded by a small per-member budget;
    - **geometric**: the truncated geometric mechanism on the count (``count_epsilon``; epsilon 2.2 affirms
      an absent allele 10 % of the time), with a budget.
    """
    grid = [_rr(b, p, 5, flip_decay=0.4, false_yes_probability=0.1) for b, p in ((0.5, 0.25), (0.75, 0.25), (1.0, 0.3))]
    grid.append(Defence("budget=0.5 + geometric eps=2.2", PrivacySettings(budget=0.5, count_epsilon=2.2)))
    return grid


class Target(Protocol):
    """Something that answers one user's session of allele queries: the node's handler or the oracle."""

    def session(self, user: str, sites: np.ndarray) -> np.ndarray: ...


class GuardedBeacon:
    """The oracle: the Beacon's allele-level answer path over the cohort, carriers and count into the guard.

    It makes the same ``PrivacyGuard.filter_answer`` calls, in the same order and with the same coin, as
    ``BeaconService`` does for the node (``node_target.NodeBeacon``), without the request handling around
    them; the harness and a test check the two agree answer for answer.
    """

    def __init__(self, cohort: AttackCohort, settings: PrivacySettings, seed: int) -> None:
        self.cohort = cohort
        self.dataset = Dataset(
            id="attack-cohort", title="attack cohort", custodian="harness", access_level=AccessLevel.REGISTERED
        )
        self.dataset.beacon_policy = {}
        defaults = {Granularity.BOOLEAN: settings, Granularity.COUNT: settings, Granularity.RECORD: settings}
        self.coin = SessionCoin(seed)
        self.clock = SteppingClock()
        self.guard = PrivacyGuard(MemoryPrivacyState(), rng=self.coin, clock=self.clock, defaults=defaults)
        self.decision = Decision(self.dataset.id, Granularity.BOOLEAN, "registered researcher, yes/no")
        self._carriers: dict[int, BitMap] = {}

    def session(self, user: str, sites: np.ndarray) -> np.ndarray:
        caller = self.guard.caller(Identity(user, ISSUER))
        self.coin.start_session(user)
        return np.array([self.answer(caller, site) for site in sites.tolist()], dtype=bool)

    def answer(self, caller: Caller, site: int) -> bool:
        """One guarded answer, to whoever ``caller`` is (a session's user, or one of several colluders)."""
        carriers = self._carriers.get(site)
        if carriers is None:
            carriers = self._carriers[site] = BitMap(self.cohort.carriers(site).tolist())
        count = int(self.cohort.beacon_ac[site])
        return self.guard.filter_answer(caller, self.decision, self.dataset, f"site:{site}", carriers, count).exists

    def spent_on(self, user: str, member: int) -> float:
        """The budget ``user`` has spent so far on ``member``."""
        caller = self.guard.caller(Identity(user, ISSUER))
        assert caller.principal is not None
        with self.guard.state.session(caller.principal, self.dataset.id) as state:
            return state.spent(BitMap([member])).get(member, 0.0)


def colluding_answers(
    cohort: AttackCohort, plans: QueryPlans, settings: PrivacySettings, seed: int, queries: int, k: int
) -> tuple[Answers, list[float]]:
    """Every attack session asked by ``k`` accountable identities, each with a budget of its own.

    The fresh-identity model gives each attacked person a new identity: the worst case when identities
    cost nothing. An accountable identity (vetted, linked to its person, ``PrivacyGuard.caller``) is
    scarce; an attacker with ``k`` of them -- colluding researchers, or one person's unlinkable accounts --
    spreads every target's questions over all ``k`` (question ``i`` by identity ``i mod k``), so each target
    meets ``k`` budgets, while every identity's budgets and answer cache carry over from target to target.
    Targets are attacked in turn, members and non-members alternating, A1 and A2 by separate attackers.
    A refusal at a rate limit is waited out (the clock moves on), so few identities take longer; the
    report's ``days`` is how long, at one question a second, each attack took.
    """
    n = cohort.config.n_targets
    order = [t for pair in zip(range(n), range(n, 2 * n), strict=True) for t in pair]
    beacon = GuardedBeacon(cohort, settings, seed)
    asked = []
    days = []
    for attack, plan in (("A1", plans.a1[:, :queries]), ("A2", plans.a2[:, :queries])):
        callers = [beacon.guard.caller(Identity(f"{attack}-colluder-{j}", ISSUER)) for j in range(k)]
        answers = np.zeros(plan.shape, dtype=bool)
        began = beacon.clock.now
        for t in order:
            beacon.coin.start_session(f"{attack}-target-{t}")
            for i, site in enumerate(plan[t].tolist()):
                while True:
                    try:
                        answers[t, i] = beacon.answer(callers[i % k], site)
                        break
                    except RateLimited as limited:
                        beacon.clock.now += limited.retry_after
        asked.append(answers)
        days.append(round((beacon.clock.now - began) / 86_400, 1))
    return Answers(asked[0], asked[1], beacon.session("benign-researcher", plans.benign_session)), days


def budget_at_flag(
    cohort: AttackCohort, plans: QueryPlans, settings: PrivacySettings, seed: int, flags: dict[str, object]
) -> dict[str, object]:
    """How much of the walked member's budget each flagged member session had spent when the flag came.

    The session is asked again on the oracle up to the flag (same user, same coin: the same answers as
    in the run), and the guard's state read: a member who can still pay for a "yes" on a singleton has
    budget left, the steward is told before the attacker has taken all the budget allows.
    """
    if settings.budget is None:
        return {}
    report: dict[str, object] = {}
    n = cohort.config.n_targets
    for attack, plan in (("A1", plans.a1), ("A2", plans.a2)):
        flagged = flags[attack]
        assert isinstance(flagged, dict)
        beacon = GuardedBeacon(cohort, settings, seed)
        spent = []
        for t, at in enumerate(flagged["flagged_at"][:n]):
            if at is not None:
                user = f"{attack}-target-{t}"
                beacon.session(user, plan[t, :at])
                spent.append(beacon.spent_on(user, int(cohort.member_targets[t])))
        left = [s + settings.cost(1) <= settings.budget + 1e-12 for s in spent]
        report[attack] = {
            "flagged_members": len(spent),
            "median_spent": round(float(np.median(spent)), 4) if spent else None,
            "share_with_budget_left": round(float(np.mean(left)), 4) if spent else None,
            "budget": settings.budget,
        }
    return report


@dataclass(frozen=True)
class Answers:
    """Every session's answers under one defence: (targets, queries) per attack, and the benign session."""

    a1: np.ndarray
    a2: np.ndarray
    benign: np.ndarray

    def same_as(self, other: Answers) -> dict[str, float]:
        """Share of identical answers, per session kind (1.0 everywhere when two targets agree)."""
        return {
            name: float(np.mean(getattr(self, name) == getattr(other, name)[:, : getattr(self, name).shape[1]]))
            if name != "benign"
            else float(np.mean(self.benign == other.benign))
            for name in ("a1", "a2", "benign")
        }


def collect(
    target: Target, plans: QueryPlans, settings: PrivacySettings, queries: int, rows: np.ndarray | None = None
) -> Answers:
    """Ask every session's queries, in a fixed order (A1 targets, A2 targets, benign).

    Without per-user state every session gets the same answer for an allele, so each distinct allele is
    asked once (in one session) and the answer reused: 400 sessions x 5,000 queries become ~0.4 M questions.
    With ``rows``, only those targets' attack sessions are asked (and the benign one): a sample to compare
    with another target's full run, session by session (each session's coin is its own, ``SessionCoin``).
    """
    a1, a2 = plans.a1[:, :queries], plans.a2[:, :queries]
    if not settings.stateful:
        benign = plans.benign_session
        distinct = np.unique(np.concatenate([a1.ravel(), a2.ravel(), benign]))
        known = target.session("stateless-reference", distinct)
        return Answers(*(known[np.searchsorted(distinct, plan)] for plan in (a1, a2, benign)))
    asked = np.arange(len(a1)) if rows is None else rows
    answers = [
        np.stack([target.session(f"{attack}-target-{t}", plan[t]) for t in asked.tolist()])
        for attack, plan in (("A1", a1), ("A2", a2))
    ]
    return Answers(answers[0], answers[1], target.session("benign-researcher", plans.benign_session))


def utility(cohort: AttackCohort, plans: QueryPlans, answers: np.ndarray) -> dict[str, float | None]:
    """What the benign researcher got: wrong "no" on present alleles, false "yes" and precision on a screen.

    Wrong "no" is measured on the random present sites, overall, rare and common; on the screen's
    candidates, false "yes" on absent alleles and precision (the share of "yes" answers that are true).

    ``answers``: the benign session's, in ``plans.benign_session`` order. Precision and false "yes" are None
    without a screen (or with no "yes" / no absent allele in it): not measured, not perfect.
    """
    sites = plans.benign
    ac = cohort.beacon_ac[sites]
    rare = ac <= RARE_MAX_COUNT
    common = ac >= 0.01 * 2 * cohort.config.n_members
    wrong = ~answers[: len(sites)]
    screened = answers[len(sites) :]
    present = cohort.beacon_ac[plans.screen] > 0
    yes = int(screened.sum())
    return {
        "wrong_no": float(wrong.mean()),
        "wrong_no_rare": float(wrong[rare].mean()),
        "wrong_no_common": float(wrong[common].mean()),
        "rare_share": float(rare.mean()),
        "common_share": float(common.mean()),
        "screen_queries": len(plans.screen),
        "screen_absent_share": float((~present).mean()) if len(present) else None,
        "false_yes_absent": float(screened[~present].mean()) if (~present).any() else None,
        "precision": float((screened & present).sum() / yes) if yes else None,
        "screen_wrong_no": float((~screened[present]).mean()) if present.any() else None,
    }


def evaluate(
    cohort: AttackCohort, plans: QueryPlans, defence: Defence, answers: Answers, seed: int, target: str
) -> dict[str, object]:
    """Score every target's session under ``defence``; measure benign utility too.

    The best-responding attacker picks the attack, the miss rate ``delta`` and the number of queries that
    maximise power. Picking on the same targets it is scored on overstates power (hundreds of choices,
    hundreds of targets), so the headline is cross-fitted: choose on one half of the targets, measure on
    the other, both ways. The in-sample maximum is reported too, as an upper bound.
    """
    n_targets = cohort.config.n_targets
    queries = answers.a1.shape[1]
    result: dict[str, object] = {
        "defence": defence.name,
        "settings": asdict(defence.settings),
        "queries": queries,
        "target": target,
    }
    points = [q for q in REPORT_POINTS if q <= queries]
    matrices: dict[tuple[str, float], np.ndarray] = {}
    for attack in ("A1", "A2"):
        plan = (plans.a1 if attack == "A1" else plans.a2)[:, :queries]
        attack_answers = answers.a1 if attack == "A1" else answers.a2
        for delta in DELTAS:
            matrices[attack, delta] = scores(attack_answers, plan, cohort, defence.settings, delta)
        report = []
        for q in points:
            # The delta a best-responding attacker would pick at this query count (in-sample).
            powers = {d: power_curve(matrices[attack, d], n_targets, [q])[0] for d in DELTAS}
            delta = max(powers, key=powers.__getitem__)
            column = matrices[attack, delta][:, q - 1]
            power, area = bootstrap(column[:n_targets], column[n_targets:], seed=q)
            report.append({"queries": q, "delta": delta, "power": power.as_dict(), "auc": area.as_dict()})
        classic = power_curve(matrices[attack, DELTAS[0]], n_targets, points)
        result[attack] = {"curve": report, "classic_power": dict(zip(points, map(float, classic), strict=True))}
    result["best_response"] = _best_response(matrices, n_targets, queries)
    result["utility"] = utility(cohort, plans, answers.benign)
    return result


def cache_key(
    cohort: AttackCohort,
    plans: QueryPlans,
    settings: PrivacySettings,
    queries: int,
    seed: int,
    name: str,
    rows: np.ndarray | None = None,
) -> str:
    """Names one measurement: cohort, plans, defence, query budget, coin seed, target kind and sessions asked."""
    parts = [cohort.config.digest(), plans.a1.shape, int(plans.a1[:, :8].sum()), len(plans.benign), queries, seed]
    parts.append(int(plans.screen.sum()))  # the screen's sites are in the benign session's answers
    parts.append("coin per session")  # answers collected with one coin for the whole run are not reused
    if rows is not None:
        parts.append(rows.tolist())
    # Only the fields set away from their defaults: a setting added later leaves earlier measurements valid.
    # A lab subclass's own fields (``accounting.EvidencePriced.pricing``) are always named.
    unset = PrivacySettings()
    changed = {k: v for k, v in asdict(settings).items() if not hasattr(unset, k) or getattr(unset, k) != v}
    return hashlib.sha256(json.dumps([*parts, changed, name], default=str).encode()).hexdigest()[:16]


def measure(
    cohort: AttackCohort,
    plans: QueryPlans,
    defence: Defence,
    queries: int,
    seed: int,
    target: Callable[[], Target],
    name: str,
    cache: Path | None = None,
    rows: np.ndarray | None = None,
) -> tuple[dict[str, object], Answers | None]:
    """Collect the answers of ``target()`` under ``defence`` and score them; the result records the time taken.

    With ``rows`` (a sample of the targets, see ``collect``) the answers are only collected, not scored: they
    are there to be compared with the full run of another target.

    With ``cache``, the answers of the same cohort, plans, defence and target kind are read back instead of
    asked again, and new ones are written as soon as they are in: a run that is interrupted on a busy
    machine resumes where it stopped. Cached answers are scored afresh (seconds, against minutes to ask
    them), so a change to the attackers is never hidden behind a stale score.
    """
    key = cache_key(cohort, plans, defence.settings, queries, seed, name, rows)

    def scored(answers: Answers) -> dict[str, object]:
        if rows is None:
            return evaluate(cohort, plans, defence, answers, seed, name)
        return {"defence": defence.name, "settings": asdict(defence.settings), "queries": queries, "target": name}

    if cache is not None and (cache / f"{key}.json").exists() and (cache / f"{key}.npz").exists():
        asked = json.loads((cache / f"{key}.json").read_text())
        with np.load(cache / f"{key}.npz") as arrays:
            answers = Answers(arrays["a1"], arrays["a2"], arrays["benign"])
        result = scored(answers)
        result["seconds"] = asked["seconds"]  # the time it took to ask them, not to read them back
        result["cached"] = True
        return json.loads(json.dumps(result)), answers
    started = time.monotonic()
    answers = collect(target(), plans, defence.settings, queries, rows)
    result = scored(answers)
    result["seconds"] = round(time.monotonic() - started, 1)
    result = json.loads(json.dumps(result))  # the same shape whether measured now or read from the cache
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache / f"{key}.tmp.npz", a1=answers.a1, a2=answers.a2, benign=answers.benign)
        (cache / f"{key}.tmp.npz").replace(cache / f"{key}.npz")
        (cache / f"{key}.tmp").write_text(json.dumps(result))
        (cache / f"{key}.tmp").replace(cache / f"{key}.json")
    return result, answers


def _best_response(matrices: dict[tuple[str, float], np.ndarray], n_targets: int, queries: int) -> dict[str, object]:
    members = np.arange(n_targets)
    folds = [(members[0::2], members[1::2]), (members[1::2], members[0::2])]
    counts = range(1, queries + 1)

    def curve(key: tuple[str, float], rows: np.ndarray) -> np.ndarray:
        subset = matrices[key][np.concatenate([rows, rows + n_targets])]
        return power_curve(subset, len(rows), counts)

    in_sample = {key: power_curve(matrix, n_targets, counts) for key, matrix in matrices.items()}
    top_key = max(in_sample, key=lambda key: in_sample[key].max())
    top_q = int(np.argmax(in_sample[top_key])) + 1
    held_out, choices = [], []
    for choose, measure in folds:
        curves = {key: curve(key, choose) for key in matrices}
        key = max(curves, key=lambda k: curves[k].max())
        q = int(np.argmax(curves[key])) + 1
        rows = np.concatenate([measure, measure + n_targets])
        column = matrices[key][rows, q - 1]
        held_out.append(power_at_fpr(column[: len(measure)], column[len(measure) :]))
        choices.append({"attack": key[0], "delta": key[1], "queries": q})
    power = float(np.mean(held_out))
    low, high = wilson(power, n_targets)
    return {
        "power": round(power, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "choices": choices,
        "in_sample_max": {
            "power": round(float(in_sample[top_key].max()), 4),
            "attack": top_key[0],
            "delta": top_key[1],
            "queries": top_q,
        },
    }


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion from ``n`` trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def meets_goal(result: dict[str, object]) -> bool:
    """Issue 17's goal: power, wrong "no" on rare and common alleles, and false "yes" where it was measured."""
    best = result["best_response"]
    assert isinstance(best, dict)
    return best["power"] <= GOAL_POWER and _utility_ok(result)


def frontier_table(results: Sequence[dict[str, object]]) -> str:
    lines = [
        "| defence | best-response power [95% CI] | in-sample max (attack, queries) "
        "| wrong no: all | rare (AC<=5) | common (AF>=1%) | false yes: absent | precision of yes | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        best, use = r["best_response"], r["utility"]
        assert isinstance(best, dict) and isinstance(use, dict)
        top = best["in_sample_max"]
        where = " (node handler)" if str(r.get("target", "")).startswith("node") else ""
        lines.append(
            f"| {r['defence']}{where} | {best['power']:.3f} [{best['low']:.3f}, {best['high']:.3f}] "
            f"| {top['power']:.3f} ({top['attack']}, {top['queries']}) | {use['wrong_no']:.3f} "
            f"| {use['wrong_no_rare']:.3f} | {use['wrong_no_common']:.4f} | {_share(use.get('false_yes_absent'))} "
            f"| {_share(use.get('precision'))} | {'yes' if meets_goal(r) else 'no'} |"
        )
    return "\n".join(lines)


def _share(value: object) -> str:
    """A measured share to three places, or "n/m" when the run did not measure it (no screen)."""
    return f"{value:.3f}" if isinstance(value, float) else "n/m"


def plot_frontier(results: Sequence[dict[str, object]], path: Path) -> bool:
    """Power against rare-allele utility loss, one point per defence; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax, right) = plt.subplots(1, 2, figsize=(14, 6), sharey=True)
    for r in results:
        best, use = r["best_response"], r["utility"]
        assert isinstance(best, dict) and isinstance(use, dict)
        colour = "tab:green" if meets_goal(r) else "tab:red"
        ax.scatter(use["wrong_no_rare"], best["power"], color=colour)
        ax.annotate(str(r["defence"]), (use["wrong_no_rare"], best["power"]), fontsize=7)
        if isinstance(use.get("false_yes_absent"), float) and isinstance(use.get("precision"), float):
            right.scatter(use["false_yes_absent"], best["power"], color=colour)
            right.annotate(
                f"{r['defence']} (precision {use['precision']:.2f})",
                (use["false_yes_absent"], best["power"]),
                fontsize=7,
            )
    for axis in (ax, right):
        axis.axhline(GOAL_POWER, linestyle="--", color="grey")
    ax.axvline(GOAL_RARE_WRONG_NO, linestyle="--", color="grey")
    ax.set_xlabel('benign wrong "no" on rare alleles (AC <= 5)')
    ax.set_ylabel("best-response attacker power at 5 % FPR (<= 1,000 queries)")
    right.set_xlabel('false "yes" on absent screen candidates')
    fig.suptitle("Beacon membership inference: defence frontier")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


#: Allele counts at which A3 is measured as the lowest count served exactly (1: every count exact).
A3_THRESHOLDS = (1, 2, 5, 10, 20, 50, 100)
#: A3's query counts; the threshold is chosen over <= ``A3_FRAME`` of them (the issue's <= 1,000 queries),
#: and the larger counts, up to the node's default daily limit of 20,000, say what more queries would do.
A3_POINTS = (100, 300, 1000, 5000, 20_000)
A3_FRAME = 1000
#: Caps on the distinct alleles one person gets exact counts for (the node's ``exact_count_cap``): A3's power
#: after that many *counted* answers, however many sites it asked to get them (rarer ones give no count).
A3_CAPS = (25, 50, 100, 200)


def measure_a3(
    cohort: AttackCohort, plans: QueryPlans, seed: int, thresholds: Sequence[int] = A3_THRESHOLDS
) -> dict[str, object]:
    """Power of A3 (exact counts, Homer et al. 2008) when only counts >= t are served, for each t.

    Two ways to pick the sites: random sites the reference panel knows (Homer's SNP set, the same for every
    target) and the target's own alleles in random order (``plans.a1``); two statistics (``a3_scores``);
    power at 5 % FPR at each of ``A3_POINTS`` queries, the best of the four at each. The threshold chosen
    is the lowest whose best power at every count up to ``A3_FRAME`` is at most ``GOAL_POWER``. Counts
    are deterministic, so A3 needs no coin and no session: the cohort's counts are the node's answers.
    """
    rng = np.random.default_rng(seed)
    known = np.flatnonzero(cohort.panel_ac > 0)
    orders = {
        "random panel sites": rng.permutation(known)[: max(A3_POINTS)],
        "target's alleles": plans.a1,
    }
    rows: list[dict[str, object]] = []
    for t in thresholds:

        def exact(_: str, plan: np.ndarray, statistic: str, t: int = t) -> np.ndarray:
            return a3_scores(cohort, plan, t, statistic)

        rows.append(
            {
                "threshold": t,
                "by_queries": _a3_best(cohort, orders, exact),
                "by_counts": _a3_best(cohort, orders, exact, counted_from=t),
            }
        )
    safe = [
        t
        for t, r in zip(thresholds, rows, strict=True)
        if all(float(v["power"]) <= GOAL_POWER for q, v in r["by_queries"].items() if int(q) <= A3_FRAME)  # type: ignore[attr-defined]
    ]
    # The largest cap whose power, and every smaller cap's, stays within the goal, per threshold.
    caps: dict[str, int | None] = {}
    for r in rows:
        within = [int(k) for k, v in r["by_counts"].items() if float(v["power"]) <= GOAL_POWER]  # type: ignore[attr-defined]
        below = [c for c in A3_CAPS if c not in within]
        ok = [c for c in within if not below or c < min(below)]
        caps[str(r["threshold"])] = max(ok) if ok else None
    return {
        "rows": rows,
        "frame_queries": A3_FRAME,
        "chosen_threshold": min(safe) if safe else None,
        "safe_caps": caps,
    }


def _a3_best(
    cohort: AttackCohort,
    orders: dict[str, np.ndarray],
    scored: Callable[[str, np.ndarray, str], np.ndarray],
    counted_from: int | None = None,
) -> dict[str, dict[str, object]]:
    """A3's best power over site orders and statistics at each of ``A3_POINTS`` queries (Wilson intervals).

    ``counted_from``: at each of ``A3_CAPS`` exact counts instead, counts being served from that many
    copies: under a cap on exact counts the attacker asks sites until the cap is spent.
    """
    n_targets = cohort.config.n_targets
    best: dict[int, dict[str, object]] = {}
    for order, plan in orders.items():
        points = [q for q in A3_POINTS if q <= plan.shape[-1]] if counted_from is None else list(A3_CAPS)
        width = max(points) if counted_from is None else plan.shape[-1]
        for statistic in A3_STATISTICS:
            matrix = scored(order, plan[..., :width], statistic)
            at = points
            if counted_from is not None:
                matrix = _after_counts(cohort, plan[..., :width], matrix, counted_from)
                at = list(range(1, len(points) + 1))
            for q, power in zip(points, power_curve(matrix, n_targets, at), strict=True):
                if q not in best or power > best[q]["power"]:  # type: ignore[operator]
                    low, high = wilson(float(power), n_targets)
                    best[q] = {"power": float(power), "low": low, "high": high, "order": order, "statistic": statistic}
    return {str(q): best[q] for q in sorted(best)}


def _after_counts(cohort: AttackCohort, plan: np.ndarray, scores: np.ndarray, threshold: int) -> np.ndarray:
    """Each target's cumulative score once ``A3_CAPS[i]`` of its answers were counts (column ``i``).

    A target whose order holds fewer counted sites keeps its last score: the attacker ran out of sites.
    """
    counted = cohort.beacon_ac[np.broadcast_to(plan, scores.shape)] >= threshold
    got = np.cumsum(counted, axis=1)
    rows = np.arange(scores.shape[0])
    columns = []
    for cap in A3_CAPS:
        reached = got >= cap
        at = np.where(reached.any(axis=1), reached.argmax(axis=1), scores.shape[1] - 1)
        columns.append(scores[rows, at])
    return np.stack(columns, axis=1)


#: Epsilons at which A3 is measured against counts served through the truncated geometric mechanism.
A3_EPSILONS = (0.5, 1.0, 2.2)


def measure_a3_geometric(
    cohort: AttackCohort, plans: QueryPlans, seed: int, epsilons: Sequence[float] = A3_EPSILONS
) -> dict[str, object]:
    """A3 against every count served with the node's truncated geometric noise (``count_epsilon``).

    Each target's session gets counts of its own, drawn by the node's ``truncated_geometric`` (a session's
    repeats would come from the cache, so fresh noise per session and site is what the node serves); every
    count is served, 0 included. Over ``A3_FRAME`` queries (the goal's frame).
    """
    rng = np.random.default_rng(seed)
    rows = 2 * cohort.config.n_targets
    known = np.flatnonzero(cohort.panel_ac > 0)
    orders = {
        "random panel sites": np.broadcast_to(rng.permutation(known)[:A3_FRAME], (rows, A3_FRAME)),
        "target's alleles": plans.a1[:, :A3_FRAME],
    }
    coin = random.Random(seed)  # noqa: S311 -- a reproducible measurement, not a secret
    measured = []
    for epsilon in epsilons:
        noisy = {}
        for order, plan in orders.items():
            exact = cohort.beacon_ac[plan].ravel().tolist()
            noisy[order] = np.array([truncated_geometric(c, epsilon, coin) for c in exact]).reshape(plan.shape)

        def scored(order: str, plan: np.ndarray, statistic: str, noisy: dict[str, np.ndarray] = noisy) -> np.ndarray:
            return a3_scores(cohort, plan, 0, statistic, counts=noisy[order][:, : plan.shape[-1]])

        measured.append({"epsilon": epsilon, "by_queries": _a3_best(cohort, orders, scored)})
    return {"rows": measured, "frame_queries": A3_FRAME}


def a3_table(a3: dict[str, object]) -> str:
    """A3's best power at each threshold and query count, as docs/privacy.md quotes it."""
    points = [str(q) for q in A3_POINTS]
    lines = [
        "| exact counts from (copies) | " + " | ".join(f"A3 power, {q} queries" for q in points) + " |",
        "|---|" + "---|" * len(points),
    ]
    for r in a3["rows"]:  # type: ignore[attr-defined]
        cells = [r["by_queries"].get(q) for q in points]
        lines.append(
            f"| {r['threshold']} | "
            + " | ".join(f"{c['power']:.3f} [{c['low']:.2f}, {c['high']:.2f}]" if c else "-" for c in cells)
            + " |"
        )
    frame = a3["frame_queries"]
    lines.append(
        f"\nChosen threshold (lowest with power <= {GOAL_POWER} up to {frame} queries): {a3['chosen_threshold']}"
    )
    caps = [str(c) for c in A3_CAPS]
    lines += [
        "",
        "| exact counts from (copies) | " + " | ".join(f"A3 power, cap {c} counts" for c in caps) + " | safe cap |",
        "|---|" + "---|" * (len(caps) + 1),
    ]
    for r in a3["rows"]:  # type: ignore[attr-defined]
        cells = [r["by_counts"][c] for c in caps]
        lines.append(
            f"| {r['threshold']} | "
            + " | ".join(f"{c['power']:.3f} [{c['low']:.2f}, {c['high']:.2f}]" for c in cells)
            + f" | {a3['safe_caps'][str(r['threshold'])]} |"  # type: ignore[index]
        )
    geometric = a3.get("geometric")
    if isinstance(geometric, dict):
        shown = [q for q in points if int(q) <= int(geometric["frame_queries"])]
        lines += [
            "",
            "| every count with geometric noise, epsilon | "
            + " | ".join(f"A3 power, {q} queries" for q in shown)
            + " |",
            "|---|" + "---|" * len(shown),
        ]
        for r in geometric["rows"]:
            cells = [r["by_queries"].get(q) for q in shown]
            lines.append(
                f"| {r['epsilon']} | "
                + " | ".join(f"{c['power']:.3f} [{c['low']:.2f}, {c['high']:.2f}]" if c else "-" for c in cells)
                + " |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class HarnessConfig:
    cohort: CohortConfig = field(default_factory=CohortConfig)
    max_queries: int = 5000
    defended_queries: int = 1000
    benign_queries: int = 10_000
    #: Candidates of a variant screen the benign researcher also asks (``attacks.screen_candidates``).
    screen_queries: int = 3000
    seed: int = 8
    #: Where the node's privacy state lives for the headline sessions (see ``NodeBeacon``).
    node_state: str = "memory"
    #: A1 sessions asked again with the node's SQL state, which must give the same answers as ``node_state``.
    sql_check_sessions: int = 4
    #: For stateful defences, the node's handler answers every ``node_every``-th target's sessions (members
    #: and non-members alike) and the benign session; the oracle answers all, and the two are compared
    #: answer for answer. 1: the node answers every session (4x the run time for the same figures).
    node_every: int = 4
    #: Other seeds (coins and query plans) at which the defences in ``SPREAD`` are measured again on the
    #: oracle: one seed's power moves by +-0.03 from run to run at 200 + 200 targets, as much as the gaps
    #: between neighbouring defences, so a default is chosen on the mean over seeds, not on a lucky draw.
    spread_seeds: tuple[int, ...] = ()
    #: Measure A3 (exact counts, ``measure_a3``) at ``A3_THRESHOLDS``; about a minute at full size.
    a3: bool = True
    #: The node default is also measured against attackers with this many accountable identities
    #: (``colluding_answers``), beside the fresh-identity-per-target model of every other row.
    colluders: tuple[int, ...] = (1, 5, 50)
    #: Also measure the optimisation-based masking of Venkatesaramani et al. (``masking.greedy_masking``):
    #: chosen with the cohort in hand, scored at the run's seed; a lab measurement, not a node setting.
    masking: bool = False
    #: Measure A3 against geometric counts too (``measure_a3_geometric``); the full run's.
    a3_geometric: bool = True
    #: The defences of ``defence_grid`` measured, by name (None: all of them; ``DEFAULT_ROWS``).
    rows: tuple[str, ...] | None = None


QUICK = HarnessConfig(
    cohort=CohortConfig(n_members=250, n_panel=250, n_targets=60, n_contigs=2, contig_length=15_000_000),
    max_queries=5000,
    defended_queries=300,
    benign_queries=3000,
    screen_queries=1500,
    spread_seeds=(9, 10),
    masking=True,
)

FULL = HarnessConfig(spread_seeds=(9, 10, 11, 12, 13), masking=True)

#: What the one command measures by default (``--full``: every row): the headline rows, the anchors of the
#: frontier (a budget alone, randomised response alone) and issue 17's candidates, the spread of the default
#: and the best point over three seeds; about 40 % of the full run's attack jobs.
DEFAULT_ROWS = (
    "none",
    "budget=0.5",
    "budget=1.0",
    "rr p=0.3 k<=5",
    "budget=0.5 + rr p=0.25 k<=5 decay=0.4 false-yes=0.1",
    "budget=1.0 + rr p=0.3 k<=5 decay=0.4 false-yes=0.1",
    "budget=0.5 + geometric eps=2.2",
    "node default",
)
DEFAULT = replace(FULL, spread_seeds=(9, 10), rows=DEFAULT_ROWS, a3_geometric=False)

#: The defences measured through the node's own handler; every other is measured on the oracle.
HEADLINE = ("none", "node default")
#: The defences measured at the other seeds too (``HarnessConfig.spread_seeds``).
SPREAD = (
    "node default",
    "previous default",
    "budget=0.5 + rr p=0.25 k<=5 decay=0.4 false-yes=0.1",
    "budget=0.5 + geometric eps=2.2",
)

#: The frontier's row for the optimisation-based masking (``HarnessConfig.masking``).
MASKING = "greedy masking of members' rare alleles (lab, Venkatesaramani et al.)"

_SHARED: dict[str, object] = {}


def _job(
    kind: str, defence: Defence, queries: int, seed: int | None = None
) -> tuple[dict[str, object], Answers | None]:
    """One defence on the oracle or the node, with the cohort, plans and node in ``_SHARED`` (forked workers).

    ``seed``: another seed than the config's, for the oracle (new query plans and coins; ``spread_seeds``).
    """
    cohort, plans, config, cache = (_SHARED[k] for k in ("cohort", "plans", "config", "cache"))
    assert isinstance(cohort, AttackCohort) and isinstance(plans, QueryPlans) and isinstance(config, HarnessConfig)
    if kind == "collusion":
        assert seed is not None and (cache is None or isinstance(cache, Path))  # seed: the number of identities
        return _colluding(cohort, plans, defence, queries, config.seed, seed, cache)
    if seed is not None and seed != config.seed:
        plans = plan_queries(cohort, config.max_queries, config.benign_queries, seed, config.screen_queries)
    else:
        seed = config.seed
    if kind == "oracle":
        oracle = lambda: GuardedBeacon(cohort, defence.settings, seed)  # noqa: E731
        return measure(cohort, plans, defence, queries, seed, oracle, "oracle", cache)  # type: ignore[arg-type]
    node_dir = _SHARED["node_dir"]
    assert isinstance(node_dir, Path)
    # Each node job asks its own copy of the node: the dataset's policy and privacy tables are per defence.
    own = node_dir.with_name(f"{node_dir.name}-{defence.name.replace(' ', '_')}")
    shutil.rmtree(own, ignore_errors=True)
    shutil.copytree(node_dir, own)
    state = "sql" if not defence.settings.stateful else config.node_state
    rows = None
    if defence.settings.stateful and config.node_every > 1:
        rows = np.arange(0, 2 * cohort.config.n_targets, config.node_every)
    # The node default is whatever the node applies with nothing configured: no dataset policy.
    settings = None if defence.name == "node default" else defence.settings
    beacons: list[NodeBeacon] = []

    def open_node() -> Target:
        beacons.append(NodeBeacon(own, settings, seed, state=state))  # type: ignore[arg-type]
        return beacons[-1]

    try:
        name = f"node ({state} state)"
        result, answers = measure(cohort, plans, defence, queries, seed, open_node, name, cache, rows)  # type: ignore[arg-type]
        if rows is not None:
            result["node_rows"] = rows.tolist()
    finally:
        for beacon in beacons:
            beacon.close()
    if defence.settings.stateful and state != "sql" and config.sql_check_sessions and answers is not None:
        result["sql_state_agreement"] = _sql_check(own, settings, config, plans, answers, rows)
    shutil.rmtree(own, ignore_errors=True)
    return result, answers


def _colluding(
    cohort: AttackCohort, plans: QueryPlans, defence: Defence, queries: int, seed: int, k: int, cache: Path | None
) -> tuple[dict[str, object], Answers | None]:
    """``defence`` against attackers with ``k`` accountable identities (``colluding_answers``), cached."""
    name = f"oracle, {k} colluding identities"
    key = cache_key(cohort, plans, defence.settings, queries, seed, name)
    started = time.monotonic()
    if cache is not None and (cache / f"{key}.npz").exists():
        with np.load(cache / f"{key}.npz") as arrays:
            answers = Answers(arrays["a1"], arrays["a2"], arrays["benign"])
            days = arrays["days"].tolist()
    else:
        answers, days = colluding_answers(cohort, plans, defence.settings, seed, queries, k)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            arrays = {"a1": answers.a1, "a2": answers.a2, "benign": answers.benign, "days": np.array(days)}
            np.savez_compressed(cache / f"{key}.tmp.npz", **arrays)
            (cache / f"{key}.tmp.npz").replace(cache / f"{key}.npz")
    result = evaluate(cohort, plans, defence, answers, seed, name)
    result["colluders"] = k
    result["days"] = dict(zip(("A1", "A2"), days, strict=True))
    result["seconds"] = round(time.monotonic() - started, 1)
    return json.loads(json.dumps(result)), None


def run(
    config: HarnessConfig,
    work_dir: Path | None,
    defences: Sequence[Defence] | None = None,
    *,
    node_root: Path | None = None,
    workers: int = 0,
    node: bool = True,
) -> dict[str, object]:
    """Undefended attacks up to ``max_queries`` (the gates), then each defence up to ``defended_queries``.

    The defences named in ``HEADLINE`` are measured through the node's Beacon handler (built under
    ``node_root``, default ``work_dir``, else a temporary directory) unless ``node`` is False; every defence
    is also run on the oracle, and the report says how far the two agreed. With ``workers``, the jobs (node
    ones first: they are the longest) run in that many forked processes; with 0, one after the other.
    Measurements are cached under ``work_dir/cache``, so an interrupted run resumes.
    """
    began = time.monotonic()
    cohort = load_or_simulate(config.cohort, work_dir)
    plans = plan_queries(cohort, config.max_queries, config.benign_queries, config.seed, config.screen_queries)
    grid = list(defences if defences is not None else defence_grid())
    if config.rows is not None:
        grid = [d for d in grid if d.name in config.rows]
    if grid[0].settings.stateful:
        raise ValueError("the first defence must be stateless (the undefended gates)")

    def budget(i: int) -> int:
        return config.max_queries if i == 0 else config.defended_queries

    timings: dict[str, float] = {}
    cache = None if work_dir is None else work_dir / "cache"
    with contextlib.ExitStack() as stack:
        _SHARED.update(cohort=cohort, plans=plans, config=config, cache=cache)
        stack.callback(_SHARED.clear)
        jobs: list[tuple[str, int, int | None]] = [
            ("node", i, None) for i, d in enumerate(grid) if node and d.name in HEADLINE
        ]
        jobs += [("oracle", i, None) for i in range(len(grid))]
        jobs += [("oracle", i, s) for i, d in enumerate(grid) if d.name in SPREAD for s in config.spread_seeds]
        jobs += [("collusion", i, k) for i, d in enumerate(grid) if d.name == "node default" for k in config.colluders]
        if node:
            root = node_root or work_dir
            if root is None:  # a throwaway node, removed at the end
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="genoshare-attack-node-")))
            started = time.monotonic()
            _SHARED["node_dir"] = build_node(cohort, root)
            timings["node_build_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        if workers > 0:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")))
            futures = [pool.submit(_job, kind, grid[i], budget(i), seed) for kind, i, seed in jobs]
            done = [f.result() for f in futures]
        else:
            done = [_job(kind, grid[i], budget(i), seed) for kind, i, seed in jobs]
        timings["attacks_s"] = round(time.monotonic() - started, 1)
    measured = dict(zip(jobs, done, strict=True))
    results = []
    for i, _ in enumerate(grid):
        result, answers = measured["oracle", i, None]
        colluding = [measured["collusion", i, k][0] for k in config.colluders if ("collusion", i, k) in measured]
        if colluding:
            result["colluding"] = colluding
        if config.spread_seeds and grid[i].name in SPREAD:
            spread = _spread([result] + [measured["oracle", i, s][0] for s in config.spread_seeds])
            spread["seeds"] = [config.seed, *config.spread_seeds]
            result["spread"] = spread
        if ("node", i, None) in measured:
            node_result, node_answers = measured["node", i, None]
            if "node_rows" in node_result:
                # The node answered a sample of the sessions: the figures are the oracle's full run, which
                # gave the same answers as the node's handler on every session both asked.
                rows = np.asarray(node_result["node_rows"])
                if answers is not None:
                    answers = Answers(answers.a1[rows], answers.a2[rows], answers.benign)
                sample = {k: node_result[k] for k in ("target", "seconds", "sql_state_agreement") if k in node_result}
                node_result = {**result, "target": f"{node_result['target']} on {len(rows)} of the targets + oracle"}
                node_result["node_sample"] = sample
                if "sql_state_agreement" in sample:
                    node_result["sql_state_agreement"] = sample["sql_state_agreement"]
            agree = node_answers.same_as(answers) if node_answers is not None and answers is not None else None
            node_result["oracle_agreement"] = agree
            result = node_result
        results.append(result)
    if config.masking:
        started = time.monotonic()
        masked, chosen = greedy_masking(cohort, plans, config.defended_queries, seed=config.seed + 1000)
        answers = Answers(*masked_answers(cohort, plans, masked, config.defended_queries))
        masking = Defence(MASKING, PrivacySettings())
        results.append({**evaluate(cohort, plans, masking, answers, config.seed, "oracle"), "masking": chosen})
        timings["masking_s"] = round(time.monotonic() - started, 1)
    undefended = results[0]
    a1, a2 = undefended["A1"], undefended["A2"]
    assert isinstance(a1, dict) and isinstance(a2, dict)
    gates = {
        "A1_power_at_max_queries": a1["classic_power"][str(config.max_queries)],
        "A2_power_at_30": a2["classic_power"]["30"],
        "measured_on": undefended["target"],
    }
    candidates = [r for r in results[1:] if _utility_ok(r)]
    best = min(candidates, key=lambda r: r["best_response"]["power"]) if candidates else None  # type: ignore[index]
    started = time.monotonic()
    flags, evading = measure_detection(cohort, plans, config)
    timings["detection_s"] = round(time.monotonic() - started, 1)
    if config.a3:
        started = time.monotonic()
        a3 = measure_a3(cohort, plans, config.seed)
        a3["geometric"] = measure_a3_geometric(cohort, plans, config.seed) if config.a3_geometric else None
        timings["a3_s"] = round(time.monotonic() - started, 1)
    timings["total_s"] = round(time.monotonic() - began, 1)
    return {
        "detection": flags,
        "adaptive": evading,
        "a3": a3 if config.a3 else None,
        "config": asdict(config),
        "n_sites": cohort.n_sites,
        "unseen_in_panel_per_target": _unseen(cohort),
        "gates": gates,
        "results": results,
        "best_point": best["defence"] if best else None,
        "goal_met_by": [r["defence"] for r in results if meets_goal(r)],
        "timings": timings,
    }


def measure_detection(
    cohort: AttackCohort, plans: QueryPlans, config: HarnessConfig
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The node's attack flag (``access.attack_watch``), by the node default's rule and its neighbours.

    Each rule comes with the budget left at its flags, then the attacker who knows the default's rule and
    keeps under it with decoys, on the default's oracle. The flag reads no answer, so it flags the same
    sessions under every defence; the budget left at the flag is the default's.
    """
    default = NODE_DEFAULTS[Granularity.BOOLEAN]
    assert default.watch_rule is not None
    flags: list[dict[str, object]] = []
    for rule in (default.watch_rule, *NEIGHBOURS):
        flagged = detection(cohort, plans, config.defended_queries, rule)
        flagged["budget_at_flag"] = budget_at_flag(cohort, plans, default, config.seed, flagged)
        flagged["node_default"] = rule == default.watch_rule
        flags.append(flagged)
    oracle = GuardedBeacon(cohort, default, config.seed)
    evading = adaptive(cohort, plans, config.defended_queries, default.watch_rule, default, oracle.session, config.seed)
    return flags, evading


def _sql_check(
    node_dir: Path,
    settings: PrivacySettings | None,
    config: HarnessConfig,
    plans: QueryPlans,
    answers: Answers,
    rows: np.ndarray | None,
) -> float:
    """The first A1 sessions asked again with the node's SQL state: the share of answers that came out equal.

    Same seed, same sessions, so the coin falls the same way: any difference is the state.
    ``rows``: the targets whose sessions ``answers`` holds (None: all).
    """
    beacon = NodeBeacon(node_dir, settings, config.seed, state="sql")
    try:
        k = config.sql_check_sessions
        targets = (np.arange(len(plans.a1)) if rows is None else rows)[:k].tolist()
        plan = plans.a1[:, : answers.a1.shape[1]]
        again = np.stack([beacon.session(f"A1-target-{t}", plan[t]) for t in targets])
    finally:
        beacon.close()
    return float(np.mean(again == answers.a1[:k]))


def _spread(results: Sequence[dict[str, object]]) -> dict[str, object]:
    """Best-response power and rare-allele wrong "no" of one defence over several seeds: each, mean, sd."""
    power = [float(r["best_response"]["power"]) for r in results]  # type: ignore[index]
    high = [float(r["best_response"]["high"]) for r in results]  # type: ignore[index]
    rare = [float(r["utility"]["wrong_no_rare"]) for r in results]  # type: ignore[index]
    false_yes = [r["utility"].get("false_yes_absent") for r in results]  # type: ignore[attr-defined]
    return {
        "power": power,
        "power_high": high,
        "power_mean": round(float(np.mean(power)), 4),
        "power_sd": round(float(np.std(power, ddof=1)), 4),
        "wrong_no_rare": rare,
        "wrong_no_rare_mean": round(float(np.mean(rare)), 4),
        "false_yes": false_yes,
    }


def spread_table(results: Sequence[dict[str, object]]) -> str:
    """The defences measured at several seeds: power and rare wrong "no" at each, and their mean."""
    lines = [
        "| defence | seeds | best-response power at each seed [95% upper] | mean (sd) | rare wrong no, mean "
        "| false yes at each seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        spread = r.get("spread")
        if not isinstance(spread, dict):
            continue
        highs = spread.get("power_high") or [None] * len(spread["power"])
        each = ", ".join(
            f"{p:.3f}" + (f" [{h:.2f}]" if h is not None else "") for p, h in zip(spread["power"], highs, strict=True)
        )
        false_yes = ", ".join(_share(f) for f in spread.get("false_yes") or [])
        lines.append(
            f"| {r['defence']} | {', '.join(map(str, spread['seeds']))} | {each} "
            f"| {spread['power_mean']:.3f} ({spread['power_sd']:.3f}) | {spread['wrong_no_rare_mean']:.3f} "
            f"| {false_yes or '-'} |"
        )
    return "\n".join(lines)


def collusion_table(results: Sequence[dict[str, object]]) -> str:
    """The defences measured against ``k`` accountable identities, beside their fresh-identity row."""
    lines = [
        "| defence | attacker's identities | best-response power [95% CI] | in-sample max (attack, queries) "
        "| days per attack (A1, A2) at 1 question/s |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        colluding = r.get("colluding")
        if not isinstance(colluding, list):
            continue
        rows = [("a fresh one per target", r), *((f"{c['colluders']}, shared by all targets", c) for c in colluding)]
        for label, row in rows:
            best = row["best_response"]
            assert isinstance(best, dict)
            top = best["in_sample_max"]
            days = row.get("days")
            took = f"{days['A1']}, {days['A2']}" if isinstance(days, dict) else "-"
            lines.append(
                f"| {r['defence']} | {label} | {best['power']:.3f} [{best['low']:.3f}, {best['high']:.3f}] "
                f"| {top['power']:.3f} ({top['attack']}, {top['queries']}) | {took} |"
            )
    return "\n".join(lines)


def _utility_ok(result: dict[str, object]) -> bool:
    use = result["utility"]
    assert isinstance(use, dict)
    false_yes = use.get("false_yes_absent")
    return (
        use["wrong_no_rare"] <= GOAL_RARE_WRONG_NO
        and use["wrong_no_common"] <= GOAL_COMMON_WRONG_NO
        and (false_yes is None or false_yes <= GOAL_FALSE_YES)
    )


def _unseen(cohort: AttackCohort) -> dict[str, float]:
    counts = [
        int((cohort.panel_ac[cohort.carried_by_target(t)] == 0).sum()) for t in range(2 * cohort.config.n_targets)
    ]
    return {"mean": float(np.mean(counts)), "min": float(np.min(counts))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/work/privacy"))
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a reduced cohort (the test's size)")
    size.add_argument("--full", action="store_true", help="every defence of the frontier, the spread at six seeds")
    size.add_argument(
        "--per-node", action="store_true", help="the best points at 450 + 450 targets on three nodes (per_node)"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for the attack jobs (0: inline)")
    args = parser.parse_args(argv)
    if args.per_node:
        from genoshare_lab.privacy import per_node  # it builds on this module

        return per_node.main(args.work_dir, args.workers)
    config = QUICK if args.quick else FULL if args.full else DEFAULT
    report = run(config, args.work_dir, workers=args.workers)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    stem = "quick" if args.quick else "full" if args.full else "default"
    (args.work_dir / f"results-{stem}.json").write_text(json.dumps(report, indent=1))
    table = frontier_table(report["results"])  # type: ignore[arg-type]
    if config.spread_seeds:
        table += "\n\n" + spread_table(report["results"])  # type: ignore[arg-type]
    if report["a3"] is not None:
        table += "\n\n" + a3_table(report["a3"])  # type: ignore[arg-type]
    table += "\n\n" + collusion_table(report["results"])  # type: ignore[arg-type]
    table += "\n\n" + detection_table(report["detection"], report["adaptive"])  # type: ignore[arg-type]
    (args.work_dir / f"frontier-{stem}.md").write_text(table + "\n")
    plotted = plot_frontier(report["results"], args.work_dir / f"frontier-{stem}.png")  # type: ignore[arg-type]
    print(table)
    keys = ("gates", "unseen_in_panel_per_target", "best_point", "goal_met_by", "timings")
    print(json.dumps({k: report[k] for k in keys}))
    for r in report["results"]:  # type: ignore[attr-defined]
        if "oracle_agreement" in r:
            print(
                f"{r['defence']}: {r['target']}; same answers as the oracle: {r['oracle_agreement']}"
                f"{'; SQL state: ' + str(r['sql_state_agreement']) if 'sql_state_agreement' in r else ''}"
            )
    print(f"plot: {'written' if plotted else 'skipped (no matplotlib)'}; results in {args.work_dir}")
    gates = report["gates"]
    assert isinstance(gates, dict)
    return 0 if gates["A1_power_at_max_queries"] >= 0.7 and gates["A2_power_at_30"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
