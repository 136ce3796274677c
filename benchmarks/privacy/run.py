"""Beacon membership-inference benchmark: the full-size harness, gates asserted (exit 1 if they fail).

    python benchmarks/privacy/run.py [--quick]

Writes results-*.json, frontier-*.md and frontier-*.png (matplotlib, if installed) to benchmarks/work/privacy.
"""

import sys

from genoshare.privacy.harness import main

if __name__ == "__main__":
    sys.exit(main())
