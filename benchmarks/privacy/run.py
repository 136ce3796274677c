"""Beacon membership-inference benchmark: the full-size harness, gates asserted (exit 1 if they fail).

    python benchmarks/privacy/run.py [--quick] [--workers 2] [--work-dir benchmarks/work/privacy]

Writes results-*.json, frontier-*.md and frontier-*.png (matplotlib, if installed) to benchmarks/work/privacy.
On 2 CPUs: about 9 minutes from nothing (the node build, ~1 minute, is cached after), `--quick` about 1 minute;
re-running with every measurement cached re-scores the answers in about 1.5 minutes (docs/privacy.md).
"""

import sys

from genoshare_lab.privacy.harness import main

if __name__ == "__main__":
    sys.exit(main())
