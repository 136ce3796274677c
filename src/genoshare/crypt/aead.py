"""ChaCha20-Poly1305-IETF segment decryption that lets other threads run meanwhile.

Why this exists: a node streaming decrypted data does two things per byte, decrypt it and hand it to the
socket.  Both ``cryptography``'s ``ChaCha20Poly1305`` and crypt4gh's libsodium extension hold the GIL while
they decrypt, so the event loop cannot send one piece while a worker decrypts the next: the two took turns,
and a stream reached about ``1 / (1/cipher + 1/send)`` (0.48x the HTTP ceiling where the cipher alone does
0.82x).  Here OpenSSL's EVP interface (the same ChaCha20-Poly1305 code ``cryptography`` runs) is called
through ``ctypes``, which releases the GIL for the length of a foreign call: decryption then overlaps
sending, and several segments can be decrypted by several threads at once.  Only the call that decrypts a
segment's 64 KiB releases it; the sub-microsecond ones around it (nonce, tag, finish) keep it, so a thread
re-takes the GIL once per segment rather than four times (each time possibly waiting for the event loop).

Security notes: each segment is authenticated before any of its plaintext is used (``EVP_DecryptFinal_ex``
compares the tag; on failure the output is discarded and the next session key is tried, as before).  The
library is the system's ``libcrypto`` (Python's own ``ssl`` module links it); at import the binding is
checked against ``cryptography`` on a known segment, tampered copies must fail, and if anything about it is
off :func:`decryptor` falls back to ``cryptography`` (correct, only slower to stream).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = ["SegmentDecryptor", "decryptor", "releases_gil"]

NONCE_SIZE = 12
TAG_SIZE = 16
_EVP_CTRL_AEAD_SET_TAG = 0x11


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


class _CryptographyDecryptor:
    """The fallback: OpenSSL through ``cryptography`` (holds the GIL while it works)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._ciphers = [ChaCha20Poly1305(key) for key in keys]

    def decrypt(self, cipher: memoryview, plain: memoryview) -> tuple[int, int | None]:
        produced = 0
        for number, pos in enumerate(range(0, len(cipher), CIPHER_SEGMENT)):
            block = cipher[pos : pos + CIPHER_SEGMENT]
            size = len(block) - NONCE_SIZE - TAG_SIZE
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


class _Libcrypto:
    """The few EVP functions needed, with argument types declared; only ``update`` releases the GIL."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        # The same library through a handle whose calls keep the GIL: for the sub-microsecond calls around
        # each segment's decryption, where releasing and re-taking the GIL costs more than the call and makes
        # a thread wait for the event loop three more times per segment.
        held = ctypes.PyDLL(path)
        pointer = ctypes.c_void_p
        self.new = held.EVP_CIPHER_CTX_new
        self.new.restype, self.new.argtypes = pointer, []
        self.free = held.EVP_CIPHER_CTX_free
        self.free.restype, self.free.argtypes = None, [pointer]
        cipher = lib.EVP_chacha20_poly1305
        cipher.restype, cipher.argtypes = pointer, []
        self.cipher = cipher()
        if not self.cipher:
            raise OSError("libcrypto has no ChaCha20-Poly1305")
        self.init = held.EVP_DecryptInit_ex
        self.init.restype, self.init.argtypes = ctypes.c_int, [pointer, pointer, pointer, pointer, pointer]
        self.update = lib.EVP_DecryptUpdate
        self.update.restype = ctypes.c_int
        self.update.argtypes = [pointer, pointer, pointer, pointer, ctypes.c_int]
        self.ctrl = held.EVP_CIPHER_CTX_ctrl
        self.ctrl.restype, self.ctrl.argtypes = ctypes.c_int, [pointer, ctypes.c_int, ctypes.c_int, pointer]
        self.final = held.EVP_DecryptFinal_ex
        self.final.restype, self.final.argtypes = ctypes.c_int, [pointer, pointer, pointer]


class _LibcryptoDecryptor:
    """OpenSSL through ctypes: the GIL is released while each segment is decrypted and authenticated."""

    def __init__(self, lib: _Libcrypto, keys: Sequence[bytes]) -> None:
        self._lib = lib
        self._keys = [ctypes.create_string_buffer(bytes(key), len(key)) for key in keys]

    def decrypt(self, cipher: memoryview, plain: memoryview) -> tuple[int, int | None]:
        if cipher.readonly or plain.readonly:
            raise TypeError("libcrypto decrypts between writable buffers")
        lib = self._lib
        cipher_array = (ctypes.c_char * len(cipher)).from_buffer(cipher)
        plain_array = (ctypes.c_char * len(plain)).from_buffer(plain) if len(plain) else None
        cipher_at = ctypes.addressof(cipher_array)
        plain_at = ctypes.addressof(plain_array) if plain_array is not None else 0
        written = ctypes.c_int(0)
        written_at = ctypes.byref(written)
        # One context per key, keyed once: re-selecting the cipher and key for every segment costs OpenSSL 3
        # a provider lookup each time; after that only the nonce changes.
        contexts: list[int] = []
        produced = 0
        try:
            for key in self._keys:
                ctx = lib.new()
                if not ctx:
                    raise MemoryError("EVP_CIPHER_CTX_new failed")
                contexts.append(ctx)
                if not lib.init(ctx, lib.cipher, None, key, None):
                    raise OSError("EVP_DecryptInit_ex failed")
            for number, pos in enumerate(range(0, len(cipher), CIPHER_SEGMENT)):
                size = min(CIPHER_SEGMENT, len(cipher) - pos) - NONCE_SIZE - TAG_SIZE
                if size < 0 or produced + size > len(plain):
                    return produced, number
                segment_at, out_at = cipher_at + pos, plain_at + produced
                for ctx in contexts:
                    if not lib.init(ctx, None, None, None, segment_at):
                        raise OSError("EVP_DecryptInit_ex failed")
                    if size and not lib.update(ctx, out_at, written_at, segment_at + NONCE_SIZE, size):
                        continue
                    if not lib.ctrl(ctx, _EVP_CTRL_AEAD_SET_TAG, TAG_SIZE, segment_at + NONCE_SIZE + size):
                        raise OSError("EVP_CTRL_AEAD_SET_TAG failed")
                    if lib.final(ctx, out_at + size if size else None, written_at) == 1:
                        break
                else:
                    return produced, number
                produced += size
            return produced, None
        finally:
            for ctx in contexts:
                lib.free(ctx)
            del cipher_array, plain_array


def _load() -> _Libcrypto | None:
    if os.environ.get("GENOSHARE_AEAD") == "cryptography":
        return None
    path = ctypes.util.find_library("crypto")
    if path is None:
        return None
    try:
        lib = _Libcrypto(path)
    except (OSError, AttributeError):
        return None
    return lib if _self_test(lib) else None


def _self_test(lib: _Libcrypto) -> bool:
    """The binding decrypts what ``cryptography`` encrypts, and refuses a flipped bit or a wrong key."""
    key, nonce = os.urandom(32), os.urandom(NONCE_SIZE)
    message = os.urandom(1000)
    sealed = bytearray(nonce + ChaCha20Poly1305(key).encrypt(nonce, message, None))
    out = bytearray(len(message))
    good = _LibcryptoDecryptor(lib, [os.urandom(32), key])
    if good.decrypt(memoryview(sealed), memoryview(out)) != (len(message), None) or bytes(out) != message:
        return False
    if _LibcryptoDecryptor(lib, [os.urandom(32)]).decrypt(memoryview(sealed), memoryview(out))[1] != 0:
        return False
    for at in (0, NONCE_SIZE + 10, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[at] ^= 1
        if good.decrypt(memoryview(tampered), memoryview(out))[1] != 0:
            return False
    return True


_LIB = _load()


def releases_gil() -> bool:
    """Whether segments are decrypted through the GIL-releasing binding (else through ``cryptography``)."""
    return _LIB is not None


def decryptor(keys: Sequence[bytes], release_gil: bool = True) -> SegmentDecryptor:
    """A decryptor trying ``keys`` in turn on each segment; thread-safe (no state is shared between calls).

    ``release_gil=False`` asks for ``cryptography``'s binding: its bundled OpenSSL decrypts 20-30 % faster
    per core than the system libcrypto here, so it is the better choice where nothing else would run
    meanwhile (a ticket's few edge blocks, a batch job reading a file front to back).
    """
    if release_gil and _LIB is not None:
        return _LibcryptoDecryptor(_LIB, keys)
    return _CryptographyDecryptor(keys)
