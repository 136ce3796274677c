"""The Beacon network's tests validate answers with the Beacon suite's schema helpers (``tests/beacon``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "beacon"))
