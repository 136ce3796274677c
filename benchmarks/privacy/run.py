"""Beacon membership-inference benchmark: the harness at full size, gates asserted (exit 1 if they fail).

    python benchmarks/privacy/run.py [--quick | --full | --per-node] [--workers 2] [--work-dir benchmarks/work/privacy]
    python benchmarks/privacy/run.py --detection [--work-dir benchmarks/work/privacy]

By default the headline rows (no defence and the node default, through the node's handler), the frontier's
anchors and issue 17's candidates, with the spread of the default and the best points at three seeds
(``harness.DEFAULT_ROWS``); ``--full`` every defence with the spread at six seeds; ``--per-node`` the best
points at 450 + 450 targets on three nodes (``per_node``); ``--quick`` a small cohort. Writes results-*.json,
frontier-*.md and frontier-*.png (matplotlib, if installed) to the work directory. Run times on 2 CPUs, and
what could not be measured under load: docs/privacy.md, "Run time".

``--detection``: only the node's attack flag (``genoshare_lab.privacy.detection``) on the default run's
cohort and query plans (same seed), each rule with the budget spent at its flags, then the attacker who
knows the node default's rule; writes detection.json and detection.md. About a minute on an idle machine.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from genoshare_lab.privacy.attacks import plan_queries
from genoshare_lab.privacy.cohort import load_or_simulate
from genoshare_lab.privacy.detection import detection_table
from genoshare_lab.privacy.harness import DEFAULT, main, measure_detection


def detection_only(work_dir: Path) -> int:
    """The detection rows of the default run (``harness.run``'s), without the attacks' power measurements."""
    began = time.monotonic()
    config = DEFAULT
    cohort = load_or_simulate(config.cohort, work_dir)
    plans = plan_queries(cohort, config.max_queries, config.benign_queries, config.seed, config.screen_queries)
    flags, evading = measure_detection(cohort, plans, config)
    table = detection_table(flags, evading)
    work_dir.mkdir(parents=True, exist_ok=True)
    report = {"detection": flags, "adaptive": evading, "seconds": round(time.monotonic() - began, 1)}
    (work_dir / "detection.json").write_text(json.dumps(report, indent=1))
    (work_dir / "detection.md").write_text(table + "\n")
    print(table)
    print(f"\n{report['seconds']} s")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--detection", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/work/privacy"))
    known = parser.parse_known_args()[0]
    if known.detection:
        sys.exit(detection_only(known.work_dir))
    sys.exit(main(sys.argv[1:]))
