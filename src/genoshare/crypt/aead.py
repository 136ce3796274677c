"""ChaCha20-Poly1305-IETF segment decryption that lets other threads run meanwhile.

A node streaming decrypted data does two things per byte: decrypt it and hand it to the socket.  When the
cipher held the GIL, the event loop could not send one piece while a worker decrypted the next, and a stream
reached about ``1 / (1/cipher + 1/send)``.  ``cryptography``'s ``ChaCha20Poly1305.decrypt_into`` releases the
GIL from release 50 on (pyproject.toml's lower bound): decryption overlaps sending, and several segments
decrypt on several threads at once.  (Before, the node called libcrypto through ``ctypes`` for that; the
bundled OpenSSL of ``cryptography`` is also faster per core than the system's.)

Each segment is authenticated before any of its plaintext is used: ``decrypt_into`` checks the tag and
raises ``InvalidTag`` on a mismatch, and the next session key is tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = ["SegmentDecryptor", "decryptor"]

NONCE_SIZE = 12
TAG_SIZE = 16

#: A stored segment: 12-byte nonce, up to 64 KiB of ciphertext, 16-byte tag.
SEGMENT = 65536
CIPHER_SEGMENT = SEGMENT + NONCE_SIZE + TAG_SIZE


class SegmentDecryptor(Protocol):
    def decrypt(self, cipher: memoryview, plain: memoryview) -> tuple[int, int | None]:
        """Decrypt consecutive stored segments of ``cipher`` into ``plain`` (writable buffers both).

        Returns the plaintext length produced and, if a segment opened with none of the keys, its number
        within ``cipher`` (decryption stops there).
        """
        ...


class _Decryptor:
    def __init__(self, keys: Sequence[bytes]) -> None:
        self._ciphers = [ChaCha20Poly1305(key) for key in keys]

    def decrypt(self, cipher: memoryview, plain: memoryview) -> tuple[int, int | None]:
        produced = 0
        for number, pos in enumerate(range(0, len(cipher), CIPHER_SEGMENT)):
            block = cipher[pos : pos + CIPHER_SEGMENT]
            size = len(block) - NONCE_SIZE - TAG_SIZE
            if size < 0 or produced + size > len(plain):
                return produced, number
            out = plain[produced : produced + size]
            for aead in self._ciphers:
                try:
                    aead.decrypt_into(block[:NONCE_SIZE], block[NONCE_SIZE:], None, out)
                    break
                except (InvalidTag, ValueError):
                    continue
            else:
                return produced, number
            produced += size
        return produced, None


def decryptor(keys: Sequence[bytes]) -> SegmentDecryptor:
    """A decryptor trying ``keys`` in turn on each segment; thread-safe (no state is shared between calls)."""
    return _Decryptor(keys)
