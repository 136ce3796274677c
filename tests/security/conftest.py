"""The red-team suite: every attack goes through a real server process (``genoshare serve``) on loopback."""

from __future__ import annotations

from processes import serve

__all__ = ["serve"]
