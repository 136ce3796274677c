"""Beacon membership-inference benchmark: the harness at full size, gates asserted (exit 1 if they fail).

    python benchmarks/privacy/run.py [--quick | --full | --per-node] [--workers 2] [--work-dir benchmarks/work/privacy]

By default the headline rows (no defence and the node default, through the node's handler), the frontier's
anchors and issue 17's candidates, with the spread of the default and the best points at three seeds
(``harness.DEFAULT_ROWS``); ``--full`` every defence with the spread at six seeds; ``--per-node`` the best
points at 450 + 450 targets on three nodes (``per_node``); ``--quick`` a small cohort. Writes results-*.json,
frontier-*.md and frontier-*.png (matplotlib, if installed) to the work directory. Run times on 2 CPUs, and
what could not be measured under load: docs/privacy.md, "Run time".
"""

import sys

from genoshare_lab.privacy.harness import main

if __name__ == "__main__":
    sys.exit(main())
