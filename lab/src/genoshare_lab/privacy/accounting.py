"""Budgets charged by the evidence an answer releases about each carrier (issue 17, lab only).

The node's budget (``PrivacySettings.cost``) charges a "yes" ``-log(1 - e^-c)`` on each of the ``c``
carriers of an allele with ``c`` copies, whatever noise the answer went through: under the truncated
geometric mechanism at epsilon 2.2 a singleton costs 0.46, a doubleton 0.15, an allele with 3 copies 0.05.
At the best point of the issue-17 frontier (geometric 2.2 + budget 0.5) that accounting, not the noise,
is what a benign researcher pays: 41.5 of the 42.8 % wrong "no" on rare alleles are members left out
because their budget was spent (``docs/privacy.md``).

``EvidencePriced`` charges instead what the answer's mechanism says it gives away about the carrier: the
log-ratio of the chance of "yes" with the carrier in the dataset (``c`` copies) and without it (``c - 1``),
``log P(yes | c) / P(yes | c - 1)``, the per-answer privacy loss of differential privacy at this dataset.
Under the geometric mechanism at epsilon 2.2 that is 2.2 nats for a singleton, 0.094 for a doubleton and
0.0099 for 3 copies: a budget of 2.3 pays for one singleton "yes" and then about one doubleton, or two
dozen doubletons. It is a per-instance loss (the attacker is assumed to know every other member), which is
not a bound for an attacker who does not know who else carries an allele: the harness's attackers, who
judge an allele's rarity from their own reference panel, measure whether that matters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from genoshare.access.privacy import Caller, PrivacySettings
from genoshare.access.privacy_state import Answer, Spends
from genoshare_lab.privacy.attacks import DELTAS, QueryPlans, scores
from genoshare_lab.privacy.cohort import AttackCohort
from genoshare_lab.privacy.detection import RARE_MAX_COUNT
from genoshare_lab.privacy.harness import GuardedBeacon, _best_response, cache_key, utility


@dataclass(frozen=True)
class EvidencePriced(PrivacySettings):
    """``PrivacySettings`` whose "yes" costs each carrier the answer's privacy loss at this count."""

    #: Names the accounting, so measurements of the two pricings are cached apart.
    pricing: str = "evidence"

    def yes_chance(self, count: int) -> float:
        """Chance of "yes" on an allele with ``count`` copies, with the noise the settings apply."""
        flip = self.flip_chance(count)
        return 1.0 - flip if count >= self.min_allele_count else flip

    def cost(self, count: int) -> float:
        """``log P(yes | count) / P(yes | count - 1)``; the node's price where "yes" without the carrier is 0."""
        count = max(count, 1)
        without = self.yes_chance(count - 1)
        if without <= 0.0:
            return super().cost(count)
        return max(0.0, math.log(self.yes_chance(count) / without))


# --- a budget charged only when a person's questions concentrate on one member ------------------------------


@dataclass(frozen=True)
class ShareGate:
    """A member's budget applies to a person only while their rare questions concentrate on that member.

    ``hits``: the person's distinct questions on rare alleles (present, at most ``RARE_MAX_COUNT`` copies, the
    attack flag's notion) that the member carries; ``rare``: all their distinct questions on rare alleles.
    While ``hits < allowance + share * rare`` the member is answered about as if no budget were in force:
    included in the count, nothing spent. Past it, the budget applies as the node's does (``PrivacyGuard``).

    Why it could help: a researcher's 13,000-question session asks each member's rare alleles about 8 times
    among 4,000 rare questions (a share of 0.2 %), while a rarest-first walk over one genome asks nearly
    only that member's. What it costs: an attacker who knows the rule pads the walk with decoy questions on
    other rare alleles (``diluted_plan``), buying one free question about the member per ``1 / share``
    rare decoys, so its protection is bounded by how many questions a person may ask.
    """

    share: float
    allowance: int = 0

    @property
    def name(self) -> str:
        return f"share gate {self.share:g}" + (f"+{self.allowance}" if self.allowance else "")


class _GatedSession:
    """The guard's session state for one person, with the gate between the guard and the budget."""

    def __init__(self, gate: ShareGate) -> None:
        self.gate = gate
        self.answers: dict[str, Answer] = {}
        self.spends = Spends()
        self.hits: dict[int, int] = {}
        self.rare = 0
        #: The carriers and count of the question being asked (set by ``GatedBeacon.answer``).
        self.pending: tuple[BitMap, int] | None = None

    def gated(self, members: Iterable[int]) -> BitMap:
        limit = self.gate.allowance + self.gate.share * self.rare
        # ``>=``: with no allowance at all every carrier is gated, as under the node's budget (alleles with
        # more than 5 copies, which count no hits, included).
        return BitMap(m for m in members if self.hits.get(m, 0) >= limit)

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        return None  # the harness asks at one question a second, under any limit measured

    def cached(self, key: str) -> Answer | None:
        known = self.answers.get(key)
        if known is None and self.pending is not None:
            carriers, count = self.pending
            if 0 < count <= RARE_MAX_COUNT:  # a new question: it counts towards the person's shares
                self.rare += 1
                for member in carriers:
                    self.hits[member] = self.hits.get(member, 0) + 1
        self.pending = None
        return known

    def remember(self, key: str, answer: Answer) -> None:
        self.answers[key] = answer

    def exhausted(self, budget: float) -> FrozenBitMap:
        return FrozenBitMap(self.gated(self.spends.exhausted(budget)))

    def spent(self, members: BitMap) -> dict[int, float]:
        return self.spends.of(self.gated(members))

    def spend(self, members: BitMap, amount: float) -> None:
        self.spends.add(self.gated(members), amount)


class _GatedState:
    """``PrivacyState`` for the oracle: one gated session per person; no linking (fresh identities)."""

    def __init__(self, new_session: Callable[[], _GatedSession]) -> None:
        self.new_session = new_session
        self.sessions: dict[tuple[str, str], _GatedSession] = {}

    @contextmanager
    def session(self, principal: str, dataset_id: str) -> Iterator[_GatedSession]:
        key = (principal, dataset_id)
        if key not in self.sessions:
            self.sessions[key] = self.new_session()
        yield self.sessions[key]

    def principal_of(self, account: str) -> str | None:
        return None

    def link(self, account: str, other: str, by: str) -> str:
        raise NotImplementedError("the share gate is measured with one identity per session")


class GatedBeacon(GuardedBeacon):
    """The oracle (the node's ``PrivacyGuard``, same coin and order) with the share gate on its budget.

    ``new_session``: the gated session each person gets (a subclass of the gate's, ``flag_gated``).
    """

    def __init__(
        self,
        cohort: AttackCohort,
        settings: PrivacySettings,
        gate: ShareGate,
        seed: int,
        new_session: Callable[[], _GatedSession] | None = None,
    ) -> None:
        super().__init__(cohort, settings, seed)
        self.state = _GatedState(new_session or (lambda: _GatedSession(gate)))
        self.guard.state = self.state  # type: ignore[assignment]

    def answer(self, caller: Caller, site: int) -> bool:
        assert caller.principal is not None
        with self.state.session(caller.principal, self.dataset.id) as session:
            carriers = self._carriers.get(site)
            if carriers is None:
                carriers = self._carriers[site] = BitMap(self.cohort.carriers(site).tolist())
            session.pending = (carriers, int(self.cohort.beacon_ac[site]))
        return super().answer(caller, site)


def decoys(cohort: AttackCohort, target: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Questions an attacker pads a walk with: alleles its reference panel has 1-4 copies of, not the target's.

    They are likely present and rare in the Beacon (so they count towards the person's rare questions) and
    carried by other members (so no one member's share grows).
    """
    pool = np.flatnonzero((cohort.panel_ac >= 1) & (cohort.panel_ac <= 4))
    pool = np.setdiff1d(pool, cohort.carried_by_target(target), assume_unique=True)
    return rng.choice(pool, size=size, replace=False)


def diluted_plan(cohort: AttackCohort, walks: np.ndarray, ratio: int, queries: int, seed: int) -> np.ndarray:
    """Each target's rarest-first walk (``walks``, A2) with ``ratio`` decoys before every walk question."""
    rng = np.random.default_rng([seed, ratio])
    plan = np.zeros((len(walks), queries), dtype=np.int64)
    walk_at = np.arange(queries) % (ratio + 1) == ratio
    steps = int(walk_at.sum())
    for target in range(len(walks)):
        plan[target, walk_at] = walks[target, :steps]
        plan[target, ~walk_at] = decoys(cohort, target, queries - steps, rng)
    return plan


def walk_positions(ratio: int, queries: int) -> np.ndarray:
    """For each question count 1..queries, how many of them were walk questions (0 before the first)."""
    return np.cumsum(np.arange(queries) % (ratio + 1) == ratio)


#: Decoys per walk question the diluting attacker tries (0: the plain rarest-first walk, A2).
RATIOS = (0, 3, 9, 24)

#: An attack's sessions (targets x questions) and which of the questions are its walk's (scored); the rest
#: are decoys, asked to change what the defence sees and not scored.
Padded = tuple[np.ndarray, np.ndarray]


def padded_attacks(
    cohort: AttackCohort, plans: QueryPlans, queries: int, seed: int, ratios: Sequence[int]
) -> dict[str, Padded]:
    """A1 (every question scored) and the rarest-first walk diluted at each of ``ratios`` (``diluted_plan``)."""
    attacks: dict[str, Padded] = {"A1": (plans.a1[:, :queries], np.ones(queries, dtype=bool))}
    for r in ratios:
        on_walk = np.arange(queries) % (r + 1) == r
        attacks[f"A2 with {r} decoys"] = (diluted_plan(cohort, plans.a2[:, :queries], r, queries, seed), on_walk)
    return attacks


def asked_or_cached(stored: Path | None, ask: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``ask()`` returns, read back from ``stored`` if a run asked them before (written when in)."""
    if stored is not None and stored.exists():
        with np.load(stored) as arrays:
            return {k: arrays[k] for k in arrays.files}
    answers = ask()
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(stored.with_suffix(".tmp.npz"), **answers)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
        stored.with_suffix(".tmp.npz").replace(stored)
    return answers


def best_response_padded(
    cohort: AttackCohort, settings: PrivacySettings, attacks: dict[str, Padded], answers: dict[str, np.ndarray]
) -> dict[str, object]:
    """The cross-fitted best response (``harness._best_response``) over ``attacks``, scored on walk questions.

    After q questions an attack's score is its walk's after the walk questions among them (0 before any), so
    the attacker's choice of length counts its decoys against the question budget.
    """
    n = cohort.config.n_targets
    queries = next(iter(attacks.values()))[0].shape[1]
    matrices: dict[tuple[str, float], np.ndarray] = {}
    for attack, (sessions, on_walk) in attacks.items():
        for delta in DELTAS:
            walked = scores(answers[attack][:, on_walk], sessions[:, on_walk], cohort, settings, delta)
            padded = np.concatenate([np.zeros((2 * n, 1)), walked], axis=1)
            matrices[attack, delta] = padded[:, np.cumsum(on_walk)]
    return _best_response(matrices, n, queries)


def measure_gated(
    cohort: AttackCohort,
    plans: QueryPlans,
    settings: PrivacySettings,
    gate: ShareGate,
    queries: int,
    seed: int,
    cache: Path | None = None,
    ratios: Sequence[int] = RATIOS,
) -> dict[str, object]:
    """The share gate under ``settings``, against A1 and the rarest-first walk diluted at each of ``ratios``.

    Every session is a fresh identity (as in the frontier). The best-responding attacker picks the attack,
    the dilution, the miss rate and the number of questions (decoys included, <= ``queries``), cross-fitted
    as the frontier's (``harness._best_response``); a diluted walk is scored on its walk questions only.
    """
    name = f"oracle, {gate.name}, ratios {list(ratios)}"
    key = cache_key(cohort, plans, settings, queries, seed, name)
    attacks = padded_attacks(cohort, plans, queries, seed, ratios)

    def ask() -> dict[str, np.ndarray]:
        beacon = GatedBeacon(cohort, settings, gate, seed)
        answers = {
            attack: np.stack([beacon.session(f"{attack}-target-{t}", s) for t, s in enumerate(sessions)])
            for attack, (sessions, _) in attacks.items()
        }
        answers["benign"] = beacon.session("benign-researcher", plans.benign_session)
        return answers

    answers = asked_or_cached(None if cache is None else cache / f"{key}.npz", ask)
    result = {
        "defence": f"{settings_name(settings)} + {gate.name}",
        "settings": {**asdict(settings), "share": gate.share, "allowance": gate.allowance},
        "queries": queries,
        "target": "oracle with the share gate (lab)",
        "best_response": best_response_padded(cohort, settings, attacks, answers),
        "utility": utility(cohort, plans, answers["benign"]),
    }
    return json.loads(json.dumps(result))


def settings_name(settings: PrivacySettings) -> str:
    noise = f"geometric eps={settings.count_epsilon}" if settings.count_epsilon is not None else "no noise"
    return f"budget={settings.budget} + {noise}"
