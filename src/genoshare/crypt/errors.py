"""Exceptions raised by :mod:`genoshare.crypt`.

Callers (DRS, htsget, ingest) map these to HTTP answers, so each class stands for one
thing the caller can act on: a bad key from the client (400), a file this node cannot
open with its key (500, operator problem), or stored data that fails authentication
(500, and an alarm: the bytes at rest were altered). Nothing from libsodium or the
crypt4gh package is allowed to escape untranslated.
"""

from __future__ import annotations


class CryptError(Exception):
    """Root of everything this package raises on purpose."""


class InvalidKey(CryptError, ValueError):
    """A key that is not a usable X25519 key (wrong length, bad encoding, wrong passphrase).

    Also a ``ValueError`` so request-validation code that already catches ``ValueError`` keeps working.
    """


class NotDecryptable(CryptError):
    """The header cannot be opened: not Crypt4GH, corrupt header, or no packet for our key."""


class UnsupportedFormat(CryptError):
    """A valid Crypt4GH v1 header using a feature this node does not serve (e.g. a stored edit list)."""


class CorruptSegment(CryptError):
    """A data segment failed its Poly1305 MAC or is truncated: the ciphertext at rest was altered."""

    def __init__(self, message: str, segment: int) -> None:
        super().__init__(message)
        self.segment = segment
