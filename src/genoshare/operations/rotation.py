"""Key rotation that rewrites no data and stops no running download.

``node-key``: a new Crypt4GH key pair; every stored Crypt4GH file gets a new header for it (the data segments
are not touched: a header is a few hundred bytes, the same length as before), then the old secret key is
deleted. ``ticket-secret``: a new secret signs every ticket from now on; the previous one still opens the tickets it
signed until they expire (``genoshare.access.tickets``). ``visa-key``: a new key signs visas and passports
from now on; the old public key stays in the JWKS until the last grant it signed expires. Running servers
follow both within a second, without a restart, in every worker.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from joserfc.jwk import ECKey
from sqlalchemy import func, select

from genoshare.access.issuer import ALGORITHM, RETIRED_SUFFIX, VisaIssuer
from genoshare.access.tickets import PREVIOUS_SUFFIX
from genoshare.crypt.errors import NotDecryptable
from genoshare.crypt.files import ENCRYPTED_SUFFIX, EncryptedFile, Reencryption
from genoshare.crypt.keys import (
    NEXT,
    PREVIOUS,
    RELOAD_SECONDS,
    KeyPair,
    generate_keypair,
    load_keypair,
    retire_when_stored,
)
from genoshare.errors import NotFound
from genoshare.node import NODE_KEY_NAME, Node
from genoshare.store.models import Grant
from genoshare.store.objects import ObjectStore

TICKET_SECRET = "ticket.secret"  # noqa: S105 - a file name
ISSUER_KEY = "issuer.jwk.json"
DAY = 86_400
#: How long a rotation waits for an ingest still storing files encrypted to the old key before it stops.
WAIT_FOR_WRITERS = 3600.0
#: Where the node keeps Crypt4GH files: data files (with their consent subsets) and request documents.
ENCRYPTED_PREFIXES = ("blobs/", "documents/")


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


@dataclass(frozen=True)
class NodeKeyRotation:
    """What ``rotate_node_key`` did: headers rewritten, headers found already for the new key, the new key."""

    rewritten: int
    already: int
    public_key: bytes


def rotate_node_key(
    keys_dir: Path,
    objects: ObjectStore,
    *,
    pause: float = RELOAD_SECONDS + 0.5,
    wait: float = WAIT_FOR_WRITERS,
    waiting: Callable[[], None] | None = None,
) -> NodeKeyRotation:
    """A new node key; every stored header re-encrypted to it, segments untouched; the old secret key deleted.

    Safe to stop at any point and run again, which carries on where it stopped: until the last step every
    reader tries both keys (``NodeKeys``: ``node.next.*`` beside the node key, then ``node.previous.*`` once the
    new key has taken its place), so a node stopped half-way serves every file. Steps: (1) the new key as
    ``node.next``; (2) each header not yet for it rewritten; (3) the new key becomes ``node``, the old one
    ``node.previous``; (4) once every process that may have encrypted a file to the old key has stored it (an
    ingest stores its batch at the end: ``retire_when_stored`` waits up to ``wait`` seconds, calling
    ``waiting`` if it must, then gives up with ``WritersBusy``, the old key still kept), a second pass for
    files written meanwhile with the old public key; (5) ``node.previous`` deleted: from then on no stored
    header opens with the old key. ``pause`` lets running servers see each change of the key files (they look
    once a second) before the next step relies on it.
    """
    next_name, previous_name = f"{NODE_KEY_NAME}.{NEXT}", f"{NODE_KEY_NAME}.{PREVIOUS}"
    has = {name: (keys_dir / f"{name}.sec").is_file() for name in (next_name, previous_name)}
    if has[next_name]:
        new = load_keypair(keys_dir, next_name)
        old = load_keypair(keys_dir, previous_name if has[previous_name] else NODE_KEY_NAME)
    elif has[previous_name]:
        new, old = load_keypair(keys_dir, NODE_KEY_NAME), load_keypair(keys_dir, previous_name)
    else:
        old = load_keypair(keys_dir, NODE_KEY_NAME)
        (keys_dir / f"{next_name}.pub").unlink(missing_ok=True)  # left by a run stopped as it began
        new = generate_keypair(keys_dir, next_name)
        time.sleep(pause)  # every server tries the new key before a header needs it
    rewritten, already = _rekey_all(objects, old, new)
    if (keys_dir / f"{next_name}.sec").is_file():
        for suffix in (".sec", ".pub"):  # the old key stays readable as node.previous until the last step
            if not has[previous_name]:
                _replace(keys_dir / f"{previous_name}{suffix}", (keys_dir / f"{NODE_KEY_NAME}{suffix}").read_bytes())
        for suffix in (".pub", ".sec"):
            _replace(keys_dir / f"{NODE_KEY_NAME}{suffix}", (keys_dir / f"{next_name}{suffix}").read_bytes())
        for suffix in (".sec", ".pub"):
            (keys_dir / f"{next_name}{suffix}").unlink(missing_ok=True)
        time.sleep(pause)  # every process encrypts new files to the new key from now on
    retire_when_stored(keys_dir, wait, waiting)
    late, _ = _rekey_all(objects, old, new)
    for suffix in (".sec", ".pub"):
        (keys_dir / f"{previous_name}{suffix}").unlink(missing_ok=True)
    return NodeKeyRotation(rewritten + late, already, new.public)


def _rekey_all(objects: ObjectStore, old: KeyPair, new: KeyPair) -> tuple[int, int]:
    """Rewrite every stored header still for ``old``; (rewritten, found already for ``new``)."""
    rewritten = already = 0
    for prefix in ENCRYPTED_PREFIXES:
        for key in objects.keys(prefix):
            if not key.endswith(ENCRYPTED_SUFFIX):
                continue
            try:
                done = _rekey(objects, key, old, new)
            except NotFound:
                continue  # deleted since it was listed (a file removed, a withdrawal's old file): nothing to re-key
            if done:
                rewritten += 1
            else:
                already += 1
    return rewritten, already


def _rekey(objects: ObjectStore, key: str, old: KeyPair, new: KeyPair) -> bool:
    """Give ``key`` a header for ``new`` (and only for it) if it has none; the segments are copied as stored.

    ``NotFound`` if the file is deleted before its copy is in its place: the copy is not stored.
    """
    try:
        EncryptedFile(objects.open(key), new.secret).close()
        return False
    except NotDecryptable:
        pass
    with objects.work_dir("rotate") as work, EncryptedFile(objects.open(key), old.secret) as stored:
        header = stored.stored_header(new.public)
        if len(header) != stored.header_size:
            raise NotDecryptable(f"{key}: its header is not one genoshare wrote ({stored.header_size} bytes)")
        rekeyed = work / "rekeyed.c4gh"
        with rekeyed.open("wb") as out:
            for piece in stored.iter_reencrypted(Reencryption(header, ((stored.header_size, stored.file_size),))):
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        if not objects.replace(rekeyed, key):
            raise NotFound(f"{key} was deleted during its rotation")
    return True
