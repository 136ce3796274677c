"""Crypt4GH at rest: the node's keys, encrypted files, random-access reads, header re-encryption.

Public interface::

    KeyPair(public: bytes, secret: bytes)                       # raw 32-byte X25519 keys
    generate_keypair(dir: Path, name="node") -> KeyPair         # writes <name>.pub/.sec (sec: 0600)
    load_keypair(dir: Path, name="node") -> KeyPair
    NodeKeys(dir: Path, name="node")                            # .public, .secret, .secrets(): follows a rotation
    parse_public_key(value: str | bytes) -> bytes               # PEM .pub text, its base64, base64 key, raw
    encrypt_file(src: Path, dst: Path, keys: KeyPair) -> None   # to keys.public, streaming, atomic

    EncryptedFile(path: Path, secret_key: bytes | NodeKeys)     # header decrypted once; context manager
        .plaintext_size, .header_size, .file_size, .segment_count
        .iter_plaintext(start=0, end=None, chunk_size=1 << 20) -> Iterator[bytes]
        .read_plaintext(start, end) -> bytes                    # one batch; small random reads
        .plaintext_view(start, end) -> memoryview               # fresh buffer, GIL released while decrypting
        .reencrypted(recipient_public_key, ranges=None) -> Reencryption
        .iter_reencrypted(reencryption, chunk_size=1 << 20) -> Iterator[bytes]
        .stored_header(public_key) -> bytes                     # same session keys for another node key
    Reencryption(header: bytes, data_ranges: tuple[tuple[int, int], ...])   # .size

Ranges are half-open plaintext byte ranges ``[start, end)``; an ``end`` past the file is clamped,
a negative or inverted range raises ``ValueError``. ``data_ranges`` are half-open offsets into the
stored file. Errors: :mod:`genoshare.crypt.errors` (``CryptError`` > ``InvalidKey``,
``NotDecryptable``, ``UnsupportedFormat``, ``CorruptSegment``).

Importing this package caps the ``crypt4gh`` logger at INFO: at DEBUG that package logs secret
and session keys in hex, and a node-wide ``--log-level debug`` must not put them in the logs.
"""

import logging

from genoshare.crypt.errors import CorruptSegment, CryptError, InvalidKey, NotDecryptable, UnsupportedFormat
from genoshare.crypt.files import EncryptedFile, Reencryption, encrypt_file
from genoshare.crypt.keys import KeyPair, NodeKeys, generate_keypair, load_keypair, parse_public_key

_crypt4gh_log = logging.getLogger("crypt4gh")
if _crypt4gh_log.getEffectiveLevel() < logging.INFO:
    _crypt4gh_log.setLevel(logging.INFO)

__all__ = [
    "CorruptSegment",
    "CryptError",
    "EncryptedFile",
    "InvalidKey",
    "KeyPair",
    "NodeKeys",
    "NotDecryptable",
    "Reencryption",
    "UnsupportedFormat",
    "encrypt_file",
    "generate_keypair",
    "load_keypair",
    "parse_public_key",
]
