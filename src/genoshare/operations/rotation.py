"""Key rotation that rewrites no data and stops no running download.

``ticket-secret``: a new secret signs every ticket from now on; the previous one still opens the tickets it
signed until they expire (``genoshare.access.tickets``). Running servers follow the change within a second,
without a restart, in every worker.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from genoshare.access.tickets import PREVIOUS_SUFFIX

TICKET_SECRET = "ticket.secret"  # noqa: S105 - a file name


def _replace(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` in one step (a reader sees the old file or the new one), for this user."""
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, path)


def rotate_ticket_secret(keys_dir: Path) -> None:
    current = keys_dir / TICKET_SECRET
    # The previous secret first: a server that sees the new one finds the old one beside it.
    _replace(current.with_name(current.name + PREVIOUS_SUFFIX), current.read_bytes())
    _replace(current, secrets.token_bytes(32))
