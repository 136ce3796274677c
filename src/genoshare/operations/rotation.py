"""Key rotation that rewrites no data and stops no running download.

``ticket-secret``: a new secret signs every ticket from now on; the previous one still opens the tickets it
signed until they expire (``genoshare.access.tickets``). ``visa-key``: a new key signs visas and passports
from now on; the old public key stays in the JWKS until the last grant it signed expires. Running servers
follow both within a second, without a restart, in every worker.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import UTC
from pathlib import Path

from joserfc.jwk import ECKey
from sqlalchemy import func, select

from genoshare.access.issuer import ALGORITHM, RETIRED_SUFFIX, VisaIssuer
from genoshare.access.tickets import PREVIOUS_SUFFIX
from genoshare.node import Node
from genoshare.store.models import Grant

TICKET_SECRET = "ticket.secret"  # noqa: S105 - a file name
ISSUER_KEY = "issuer.jwk.json"
DAY = 86_400


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


def rotate_visa_key(node: Node) -> str:
    """A new visa-signing key; the old one stays in the JWKS while grants it signed are valid. Its new kid."""
    keys_dir = node.settings.keys_dir
    key_file = keys_dir / ISSUER_KEY
    old = ECKey.import_key(json.loads(key_file.read_text()))
    with node.database.sessions() as session:
        last = session.scalar(select(func.max(Grant.expires_at)).where(Grant.revoked_at.is_(None)))
    now = time.time()
    # Grants are stored as naive UTC times; passports the node signs live an hour, a day covers them.
    keep_until = max(now + DAY, last.replace(tzinfo=UTC).timestamp() if last is not None else 0)
    retired_file = key_file.with_name(key_file.name + RETIRED_SUFFIX)
    retired = json.loads(retired_file.read_text()) if retired_file.is_file() else []
    public = {**old.as_dict(private=False), "use": "sig", "alg": ALGORITHM}
    retired = [entry for entry in retired if entry.get("keep_until", 0) > now]
    retired.append({"key": public, "keep_until": keep_until, "retired_at": now})
    _replace(retired_file, json.dumps(retired, indent=2).encode())
    new = ECKey.generate_key("P-256", auto_kid=True)
    _replace(key_file, json.dumps(new.as_dict(private=True)).encode())
    VisaIssuer.load_or_create(node.settings.public_url, key_file).write_jwks(node.issuer_jwks_file)
    return str(new.kid)
