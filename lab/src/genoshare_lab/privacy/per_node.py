"""Issue 17's goal holds per node: the best points measured on several nodes, each tightly enough to judge 0.10.

    python benchmarks/privacy/run.py --per-node [--workers 2]

The frontier's 200 member and 200 non-member targets give a node's power a 95 % interval of about +-0.04
around 0.10, too wide to say whether a node measuring 0.075 is under 0.10. Here the best points of the
frontier (``ROWS``, and the share gate of ``accounting`` if asked) are measured at 450 member and 450
non-member targets (a cohort simulated for it: the same 1,000 members' population, more people), on three
independently built guards -- fresh coins, fresh state, fresh query plans and tie orders (seeds 8, 9,
10) -- on the oracle (answer for answer the node's guard, ``harness``). Only these rows, to keep it to
minutes: each costs about 2.3 frontier rows.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from genoshare.access.privacy import PrivacySettings
from genoshare_lab.privacy.accounting import ShareGate, measure_gated
from genoshare_lab.privacy.attacks import QueryPlans, plan_queries
from genoshare_lab.privacy.cohort import AttackCohort, CohortConfig, load_or_simulate
from genoshare_lab.privacy.flag_gated import FlagGate, measure_flag_gated
from genoshare_lab.privacy.harness import (
    _SHARED,
    FULL,
    GOAL_POWER,
    HarnessConfig,
    _job,
    _share,
    defence_grid,
    meets_goal,
)

#: 450 + 450 targets: a measured 0.075 has a 95 % Wilson upper bound of about 0.10.
CONFIG = replace(FULL, cohort=CohortConfig(n_targets=450), spread_seeds=(9, 10), a3=False, colluders=(), masking=False)
#: The frontier's rows measured per node: the node default, and the best two at false "yes" <= 10 %.
ROWS = ("node default", "budget=0.5 + rr p=0.25 k<=5 decay=0.4 false-yes=0.1", "budget=0.5 + geometric eps=2.2")


def _gated_job(settings: PrivacySettings, gate: ShareGate | FlagGate, seed: int) -> dict[str, object]:
    cohort, config, cache = (_SHARED[k] for k in ("cohort", "config", "cache"))
    assert isinstance(cohort, AttackCohort) and isinstance(config, HarnessConfig)
    plans = plan_queries(cohort, config.max_queries, config.benign_queries, seed, config.screen_queries)
    if isinstance(gate, FlagGate):
        return measure_flag_gated(cohort, plans, settings, gate, config.defended_queries, seed, cache)  # type: ignore[arg-type]
    return measure_gated(cohort, plans, settings, gate, config.defended_queries, seed, cache)  # type: ignore[arg-type]


def run(
    config: HarnessConfig,
    work_dir: Path | None,
    rows: Sequence[str] = ROWS,
    gates: Sequence[tuple[PrivacySettings, ShareGate | FlagGate]] = (),
    workers: int = 2,
) -> dict[str, object]:
    """Each of ``rows`` (frontier defences by name) and ``gates`` at every seed; per seed and together."""
    began = time.monotonic()
    cohort = load_or_simulate(config.cohort, work_dir)
    plans: QueryPlans = plan_queries(
        cohort, config.max_queries, config.benign_queries, config.seed, config.screen_queries
    )
    grid = [d for d in defence_grid() if d.name in rows]
    seeds = (config.seed, *config.spread_seeds)
    cache = None if work_dir is None else work_dir / "cache"
    _SHARED.update(cohort=cohort, plans=plans, config=config, cache=cache)
    try:
        with ProcessPoolExecutor(max(workers, 1), mp_context=multiprocessing.get_context("fork")) as pool:
            futures: dict[tuple[str, int], Future[object]] = {}
            for d in grid:
                for s in seeds:
                    futures[d.name, s] = pool.submit(_job, "oracle", d, config.defended_queries, s)
            for settings, gate in gates:
                for s in seeds:
                    futures[f"{asdict(settings)} {gate.name}", s] = pool.submit(_gated_job, settings, gate, s)
            done = {key: future.result() for key, future in futures.items()}
    finally:
        _SHARED.clear()
    measured: dict[str, list[dict[str, object]]] = {}
    for (name, _), value in done.items():
        result = value[0] if isinstance(value, tuple) else value
        measured.setdefault(name, []).append(result)  # type: ignore[arg-type]
    return {
        "config": asdict(config),
        "seeds": list(seeds),
        "targets": config.cohort.n_targets,
        "rows": [{"defence": results[0]["defence"], "nodes": results} for results in measured.values()],
        "seconds": round(time.monotonic() - began, 1),
    }


def table(report: dict[str, object]) -> str:
    """One line per defence and node: power with its 95 % interval, utility, and whether the goal holds there."""
    seeds = report["seeds"]
    assert isinstance(seeds, list)
    lines = [
        f"{report['targets']} member and {report['targets']} non-member targets per node; goal: power <= "
        f"{GOAL_POWER} (the 95 % upper bound too, to say so with confidence), wrong no <= 25 % rare, "
        "<= 1 % common, false yes <= 10 %.",
        "",
        "| defence | node (seed) | best-response power [95% CI] | wrong no: rare / common | false yes "
        "| precision | goal (measured) | goal (upper bound) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:  # type: ignore[attr-defined]
        for seed, r in zip(seeds, row["nodes"], strict=True):
            best, use = r["best_response"], r["utility"]
            upper = best["high"] <= GOAL_POWER and meets_goal({**r, "best_response": {**best, "power": 0.0}})
            lines.append(
                f"| {row['defence']} | {seed} | {best['power']:.3f} [{best['low']:.3f}, {best['high']:.3f}] "
                f"| {use['wrong_no_rare']:.3f} / {use['wrong_no_common']:.4f} | {_share(use.get('false_yes_absent'))} "
                f"| {_share(use.get('precision'))} | {'yes' if meets_goal(r) else 'no'} | {'yes' if upper else 'no'} |"
            )
    return "\n".join(lines)


def main(work_dir: Path, workers: int, gates: Sequence[tuple[PrivacySettings, ShareGate | FlagGate]] = ()) -> int:
    report = run(CONFIG, work_dir, gates=gates, workers=workers)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "results-per-node.json").write_text(json.dumps(report, indent=1))
    text = table(report)
    (work_dir / "frontier-per-node.md").write_text(text + "\n")
    print(text)
    print(f"{report['seconds']} s; results in {work_dir}")
    return 0
