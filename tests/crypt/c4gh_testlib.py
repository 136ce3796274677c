"""Helpers shared by the crypt tests (a plain module: tests/ is not a package)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import crypt4gh.lib
from crypt4gh import sodium

from genoshare.crypt import KeyPair
from genoshare.crypt.files import SEGMENT_SIZE

DATA = Path(__file__).resolve().parents[2] / "src" / "genoshare" / "demo" / "data" / "htsget"

# Spans the interesting shapes: several full segments plus a short tail.
PLAIN_SIZE = 5 * SEGMENT_SIZE + 12_345


class Sample(NamedTuple):
    """Plaintext and its encrypted file; short repr so hypothesis reports stay readable."""

    plain: bytes
    path: Path

    def __repr__(self) -> str:
        return f"Sample({len(self.plain)} bytes, {self.path.name})"


def c4gh_decrypt(data: bytes, secret: bytes) -> bytes:
    """Decrypt with the reference implementation, never with our own code."""
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, secret, None)], io.BytesIO(data), out)
    return out.getvalue()


def fresh_keys() -> KeyPair:
    secret = os.urandom(32)
    return KeyPair(public=sodium.derive_pk(secret), secret=secret)
