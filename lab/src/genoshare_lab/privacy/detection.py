"""How the node's attack flag (``genoshare.access.attack_watch``) does on the harness's sessions (issue 17).

The node weighs each question on a rare or absent allele by the evidence a "yes" on it gives about a carrier,
adds that to every carrier's evidence and to the person's total, and counts a hit for every carrier of an
allele with a few dozen copies at most; it flags the person once one member holds ``min_evidence`` and
``min_share`` of the total (plus a prior), or ``min_hits`` and ``min_hit_share`` of the watched questions
(``WatchRule``). The harness runs the node's own rule (``SessionWatch``) over the sessions it asks:

- attack sessions (A1, A2) on member and non-member targets: the share flagged and the question of the flag;
- benign sessions, each judged alone: the benign researcher's random sites and screen cut into sessions,
  one patient's screen at a time (the candidates a clinician asks for one patient: that patient's alleles
  the reference has never seen), in the VCF's order and shuffled, and screens of a region (consecutive sites,
  whose rare alleles share carriers through linkage): false alarms;
- ``SPAN``, the rule that reads positions (``site_position``), the node's default since session 8, beside
  ``WITHOUT_POSITIONS``, the rule before it;
- an adaptive attacker who knows the rule (``adaptive_plan``): it walks rarest first like A2 and asks made-up
  alleles (absent from every dataset) in between, as many as keep both shares under the rule's even if every
  real question were a singleton of the target; ``adaptive`` measures the power it keeps within the queries,
  plain A2's power by questions asked, and a walk kept to one contig against ``SPAN``.

The rule reads no answer, so it flags the same sessions under every defence; what the defence changes is how
much of the walked member's budget is spent when the flag comes (``harness.budget_at_flag``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from genoshare.access.attack_watch import NODE_MIN_SPAN, NODE_SPAN_FREE_HITS, SessionWatch, WatchRule
from genoshare.access.privacy import PrivacySettings
from genoshare_lab.privacy.attacks import DELTAS, QueryPlans, power_at_fpr, scores
from genoshare_lab.privacy.cohort import AttackCohort

#: Alleles with at most this many copies are rare (the node's rule and the harness's utility columns).
RARE_MAX_COUNT = WatchRule().rare_max_count
#: Screens of a region: this many windows of this many consecutive sites the dataset holds.
REGION_WINDOWS, REGION_SITES = 200, (20, 50, 200)


def site_position(cohort: AttackCohort, site: int) -> tuple[str, int]:
    """Where a site lies (contig, base), read from its index: sites are in genome order, contig by contig.

    The cohort keeps no positions, so each contig is taken to hold an equal share of the sites, evenly
    spaced (mutations fall at a uniform rate): exact to within the sites' spacing and the contigs' share.
    """
    config = cohort.config
    per_contig = cohort.n_sites / config.n_contigs
    contig = min(int(site / per_contig), config.n_contigs - 1)
    return str(contig), int((site - contig * per_contig) / per_contig * config.contig_length)


def flagged_at(cohort: AttackCohort, sites: np.ndarray, rule: WatchRule) -> int | None:
    """The 1-based question at which the node's rule flags a session asking ``sites``, or None."""
    watch = SessionWatch(rule)
    ac = cohort.beacon_ac
    for i, site in enumerate(sites.tolist()):
        count = int(ac[site])
        if not rule.counted(count):
            continue  # the carriers of common alleles are not worth reading
        position = site_position(cohort, site) if rule.min_span is not None else None
        if watch.observe(cohort.carriers(site).tolist() if count else [], count, position):
            return i + 1
    return None


def _false_alarms(cohort: AttackCohort, sessions: list[np.ndarray], rule: WatchRule) -> dict[str, float | int]:
    flagged = sum(flagged_at(cohort, s, rule) is not None for s in sessions)
    return {"sessions": len(sessions), "flagged": flagged, "share": round(flagged / len(sessions), 4)}


def rule_summary(rule: WatchRule) -> dict[str, float | None]:
    return {
        "min_evidence": rule.min_evidence,
        "min_share": rule.min_share,
        "prior": rule.prior,
        "watch_max_count": rule.watch_max_count,
        "min_hits": rule.min_hits,
        "min_hit_share": rule.min_hit_share,
        "min_span": rule.min_span,
        "span_free_hits": rule.span_free_hits,
    }


def detection(
    cohort: AttackCohort, plans: QueryPlans, queries: int, rule: WatchRule, seed: int = 0
) -> dict[str, object]:
    """Flags on attack sessions (first ``queries`` questions) and false alarms on benign ones."""
    n = cohort.config.n_targets
    report: dict[str, object] = {"rule": rule_summary(rule)}
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
    rng = np.random.default_rng(seed)
    patients = [sites[cohort.panel_ac[sites] == 0] for sites in map(cohort.carried_by_target, range(n, 2 * n))]
    benign["one patient's novel alleles, in the VCF's order"] = _false_alarms(cohort, patients, rule)
    shuffled = [rng.permutation(sites) for sites in patients]
    benign["one patient's novel alleles, shuffled"] = _false_alarms(cohort, shuffled, rule)
    present = np.flatnonzero(cohort.beacon_ac > 0)
    for width in REGION_SITES:
        starts = rng.choice(len(present) - width, size=REGION_WINDOWS, replace=False)
        windows = [present[start : start + width] for start in starts.tolist()]
        benign[f"region of {width} consecutive sites"] = _false_alarms(cohort, windows, rule)
    report["benign"] = benign
    return report


def adaptive_plan(rule: WatchRule, queries: int) -> np.ndarray:
    """Which of ``queries`` questions are real (True) for the attacker who knows the rule; the rest are decoys.

    The attacker cannot see the counts, so it pads as if every real question were a singleton of the target
    (the heaviest a present allele weighs, and a hit): before its ``k``-th real question, enough decoys
    (made-up alleles, absent, each weighing as a singleton and a question) that ``k`` singletons stay under
    ``min_share`` of the total plus the prior, and ``k`` hits under ``min_hit_share`` of the questions. The
    pattern is the same for every target.
    """
    heaviest = rule.weight(1)
    real = np.zeros(queries, dtype=bool)
    decoys = asked = 0
    for i in range(queries):
        # Decoys needed so that the next real question, a singleton, leaves both shares under the rule's.
        by_evidence = ((asked + 1) * heaviest * (1 - rule.min_share) / rule.min_share - rule.prior) / heaviest
        by_hits = (asked + 1) * (1 - rule.min_hit_share) / rule.min_hit_share if asked + 1 >= rule.min_hits else -1
        if decoys > max(by_evidence, by_hits):
            real[i] = True
            asked += 1
        else:
            decoys += 1
    return real


def adaptive(
    cohort: AttackCohort,
    plans: QueryPlans,
    queries: int,
    rule: WatchRule,
    settings: PrivacySettings,
    answer: Callable[[str, np.ndarray], np.ndarray],
    seed: int,
) -> dict[str, object]:
    """The adaptive attacker's power within ``queries`` questions under ``settings``, beside plain A2's.

    ``answer(user, sites)`` asks one session of the defence (the harness's oracle under ``settings``). Power is
    at 5 % FPR at the last question, the best over the miss rates ``DELTAS`` (in-sample: an upper bound).
    Decoys are sites no member carries, drawn afresh per target; their answers carry nothing about the target
    and are not scored. No defence is the truth (present or not), asked of nobody.
    """
    n = cohort.config.n_targets
    real = adaptive_plan(rule, queries)
    k = int(real.sum())
    absent = np.flatnonzero(cohort.beacon_ac == 0)
    rng = np.random.default_rng(seed)
    sessions = np.empty((2 * n, queries), dtype=np.int64)
    for t in range(2 * n):
        sessions[t, real] = plans.a2[t, :k]
        sessions[t, ~real] = rng.choice(absent, size=queries - k, replace=False)
    flagged = [flagged_at(cohort, sessions[t], rule) is not None for t in range(2 * n)]

    def power(answers: np.ndarray, plan: np.ndarray, defence: PrivacySettings, at: int = 0) -> float:
        """At the ``at``-th question (all of them: 0)."""
        return max(
            power_at_fpr(m[:n, at - 1], m[n:, at - 1])
            for m in (scores(answers, plan, cohort, defence, d) for d in DELTAS)
        )

    report: dict[str, object] = {
        "queries": queries,
        "real_questions": k,
        "decoys_per_real_question": round((queries - k) / k, 3) if k else math.inf,
        "members_flagged": round(float(np.mean(flagged[:n])), 4),
        "non_members_flagged": round(float(np.mean(flagged[n:])), 4),
    }
    truth = cohort.beacon_ac[plans.a2[:, :queries]] > 0
    report["no defence"] = {
        "adaptive_power": round(power(truth[:, :k], plans.a2[:, :k], PrivacySettings()), 4),
        "a2_power": round(power(truth, plans.a2[:, :queries], PrivacySettings()), 4),
    }
    asked = np.stack([answer(f"adaptive-target-{t}", sessions[t]) for t in range(2 * n)])
    plain = np.stack([answer(f"A2-again-target-{t}", plans.a2[t, :queries]) for t in range(2 * n)])
    report["defence"] = {
        "adaptive_power": round(power(asked[:, real], plans.a2[:, :k], settings), 4),
        "a2_power": round(power(plain, plans.a2[:, :queries], settings), 4),
        # Where the budget stops paying: more questions (or decoys among them) then cost no power.
        "a2_power_by_questions": {
            q: round(power(plain, plans.a2[:, :queries], settings, q), 4) for q in POWER_AT if q <= queries
        },
    }
    # Against ``SPAN`` (positions): the attacker walks one contig of the target's genome only, rarest first;
    # the question of the flag is reported by ``SPAN``'s hits anywhere.
    span_rule = replace(rule, min_span=SPAN.min_span, span_free_hits=SPAN.span_free_hits)
    contig = [[s for s in plans.a2[t].tolist() if site_position(cohort, s)[0] == "0"] for t in range(2 * n)]
    m = min(queries, *map(len, contig))
    walks = np.array([c[:m] for c in contig], dtype=np.int64)
    one = np.stack([answer(f"one-contig-target-{t}", walks[t]) for t in range(2 * n)])
    span_at = [flagged_at(cohort, walks[t], span_rule) for t in range(n)]
    spans = [at is not None for at in span_at]
    report["one_contig"] = {
        "queries": m,
        "members_flagged_by_span": round(float(np.mean(spans)), 4),
        "median_question_by_span": float(np.median([at for at in span_at if at is not None])) if any(spans) else None,
        "members_flagged_by_default": round(
            float(np.mean([flagged_at(cohort, w, rule) is not None for w in walks[:n]])), 4
        ),
        "no_defence_power": round(power(cohort.beacon_ac[walks] > 0, walks, PrivacySettings()), 4),
        "defence_power": round(power(one, walks, settings), 4),
    }
    return report


#: Questions at which plain A2's power under the defence is reported (``adaptive``).
POWER_AT = (10, 25, 50, 100, 200, 400, 800, 1000)


#: The rule before the hits test: evidence on alleles with at most ``rare_max_count`` copies only.
EVIDENCE_ONLY = WatchRule(watch_max_count=WatchRule.rare_max_count, min_hits=2**31 - 1)
#: The rule that reads positions, the node's default: a member's alleles asked on two contigs or 20 Mb apart
#: (a contig's length here: the coalescent's segments shared by relatives span several Mb), or 25 of them
#: wherever they lie (longer than the runs of a relative's alleles in the patients' screens here).
SPAN = WatchRule(min_span=NODE_MIN_SPAN, span_free_hits=NODE_SPAN_FREE_HITS)
#: The node's rule before it read positions.
WITHOUT_POSITIONS = WatchRule()
#: The node default's rule is measured beside these neighbours (none reads positions): the evidence alone,
#: a hits test that flags sooner, one with a looser share of hits, and the rule without positions.
NEIGHBOURS = (EVIDENCE_ONLY, WatchRule(min_hits=6), WatchRule(min_hit_share=0.8), WITHOUT_POSITIONS)


def detection_table(flags: list[dict[str, object]], adaptive_report: dict[str, object] | None = None) -> str:
    """The node's attack flag on attack and benign sessions (``detection``), one column per rule measured."""
    heads = []
    for f in flags:
        rule = f["rule"]
        assert isinstance(rule, dict)
        default = " (node default)" if f["node_default"] else ""
        hits = (
            f"; {rule['min_hits']:g} hits, share {rule['min_hit_share']:g} (<= {rule['watch_max_count']:g} copies)"
            if rule["min_hits"] < 2**31 - 1
            else "; no hits test"
        )
        span = (
            f"; positions {rule['min_span'] / 1e6:g} Mb apart, or {rule['span_free_hits']} hits anywhere"
            if rule.get("min_span")
            else ""
        )
        heads.append(f"{rule['min_evidence']:g} nats, share {rule['min_share']:g}{hits}{span}{default}")
    lines = [
        "Rule: flag a person once the questions on rare or absent alleles (<= 5 copies), each weighing what a "
        '"yes" on it is worth (0.46 nats for a singleton or an absent allele), give one member at least this '
        "evidence and this share of the person's total (+ 0.15); or once one member carries the alleles of at "
        "least this many of the person's questions on alleles with few copies (absent ones included) and this "
        "share of them; answers are not read.",
        "",
        "| sessions | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(flags),
    ]
    for attack in ("A1", "A2"):
        for who, key in (("member", "members_flagged"), ("non-member", "non_members_flagged")):
            cells = []
            for f in flags:
                found = f[attack]
                assert isinstance(found, dict)
                median = found["median_query_when_flagged"]
                at = f" (median question {median:g})" if who == "member" and median is not None else ""
                cells.append(f"{found[key]:.1%}{at}")
            lines.append(f"| {attack} on {who} targets | " + " | ".join(cells) + " |")
    first = flags[0]["benign"]
    assert isinstance(first, dict)
    for name in first:
        cells = []
        for f in flags:
            alarms = f["benign"][name]  # type: ignore[index]
            cells.append(f"{alarms['flagged']} of {alarms['sessions']} ({alarms['share']:.1%})")
        lines.append(f"| benign: {name} | " + " | ".join(cells) + " |")
    for attack in ("A1", "A2"):
        cells = []
        for f in flags:
            at = f["budget_at_flag"][attack]  # type: ignore[index]
            if not at["flagged_members"]:
                cells.append("-")
                continue
            cells.append(f"{at['median_spent']:.2f} of {at['budget']}; {at['share_with_budget_left']:.0%} can pay more")
        lines.append(f"| {attack} member walks: budget spent at the flag (median) | " + " | ".join(cells) + " |")
    if adaptive_report is not None:
        a = adaptive_report
        plain, defended = a["no defence"], a["defence"]
        assert isinstance(plain, dict) and isinstance(defended, dict)
        lines += [
            "",
            f"Adaptive attacker (knows the node default's rule): {a['real_questions']} real rarest-first questions "
            f"in {a['queries']}, {a['decoys_per_real_question']} made-up decoys per real one; flagged: "
            f"{a['members_flagged']:.1%} of member targets, {a['non_members_flagged']:.1%} of non-members.",
            "",
            "| defence | adaptive attacker's power at 5 % FPR | plain A2's, same queries |",
            "|---|---|---|",
            f"| none | {plain['adaptive_power']:.3f} | {plain['a2_power']:.3f} |",
            f"| node default | {defended['adaptive_power']:.3f} | {defended['a2_power']:.3f} |",
            "",
            "Plain A2 under the node default, power at 5 % FPR by questions asked: "
            + ", ".join(f"{q}: {p:.3f}" for q, p in defended["a2_power_by_questions"].items()),
        ]
        one = a.get("one_contig")
        if isinstance(one, dict):
            lines += [
                "",
                f"Attacker who knows the positions rule ({(SPAN.min_span or 0) / 1e6:g} Mb): walks one contig "
                "rarest first, "
                f"{one['queries']} questions; flagged by it {one['members_flagged_by_span']:.1%} of member targets "
                f"(median question {one['median_question_by_span']}) "
                f"(by the node default {one['members_flagged_by_default']:.1%}); power at 5 % FPR "
                f"{one['no_defence_power']:.3f} without a defence, {one['defence_power']:.3f} under the node default.",
            ]
    return "\n".join(lines)
