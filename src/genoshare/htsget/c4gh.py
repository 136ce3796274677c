"""htsget over Crypt4GH files: read their plaintext for the range engine, and re-encrypt answers to a client key.

Files are stored encrypted to the node's key.  Two things are needed on top of ``genoshare.crypt.files``:

* ``opener(secret)``: a seekable plaintext view of a stored file, so the range engine can read headers and
  the few BGZF blocks it cuts without a decrypted copy ever touching the disk;
* ``plan_reencryption``: turn an htsget answer (plaintext byte ranges of the file, plus small inline
  blocks the engine built: re-compressed edge blocks) into one Crypt4GH stream for the client.  The header
  is re-written for the client with an edit list; the stored ciphertext segments covering the ranges are
  referenced, never re-encrypted.  Inline blocks are not in the stored file, so they are encrypted into
  fresh segments under a fresh session key added to the header (padded to full segments, the padding cut
  away by the edit list), because Crypt4GH readers frame every segment but the last at 64 KiB.

That framing rule has one consequence: the stored file's short final segment can only be sent last.  The
EOF marker is therefore taken from the stored file's tail (it is there), and when a re-compressed block
must follow data from that final segment, the needed tail bytes (< 64 KiB) go out in a fresh segment too.
Whole files and answers without inline blocks consist of stored segments only.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from crypt4gh import SEGMENT_SIZE, header
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from genoshare.crypt.files import EncryptedFile, PositionalIO
from genoshare.crypt.keys import KEY_SIZE, SecretKeys, parse_public_key

__all__ = ["FreshCipher", "Piece", "Plan", "StoredCipher", "lent_opener", "opener", "plan_reencryption"]

_NONCE_SIZE = 12

#: What an answer is made of, in order: a plaintext range ``(start, end)`` of the stored file, or new bytes.
Piece = tuple[int, int] | bytes


@dataclass(frozen=True, slots=True)
class StoredCipher:
    """Bytes ``[start, end)`` of the stored ``.c4gh`` file (whole segments, sent as they are)."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class FreshCipher:
    """Segments encrypted for this answer under its own session key."""

    data: bytes


@dataclass(frozen=True)
class Plan:
    """``header`` then ``parts`` concatenated is a Crypt4GH stream the recipient decrypts to the answer."""

    header: bytes
    parts: tuple[StoredCipher | FreshCipher, ...]


class _Plaintext:
    """An ``EncryptedFile``'s plaintext as :class:`Positional` bytes; decrypts only the segments a read touches."""

    def __init__(self, file: EncryptedFile) -> None:
        self._file = file
        self.name = str(file.path)
        self.size = file.plaintext_size

    def readinto(self, into: memoryview, offset: int) -> int:
        data = self._file.read_plaintext(offset, offset + len(into))
        into[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()


class _PlaintextReader(PositionalIO):
    """Seekable, read-only plaintext of an ``EncryptedFile``.

    ``owned``: whether closing the reader closes the file (a reader lent over a file its caller keeps
    open must not).
    """

    def __init__(self, file: EncryptedFile, owned: bool = True) -> None:
        self._plaintext = _Plaintext(file)
        super().__init__(self._plaintext)
        self._owned = owned

    def close(self) -> None:
        if not self.closed and self._owned:
            self._plaintext.close()
        super().close()


def opener(secret_key: SecretKeys) -> Callable[[Path], BinaryIO]:
    """An ``Opener`` for the range engine that reads files encrypted to ``secret_key``."""

    def open_encrypted(path: Path) -> BinaryIO:
        return io.BufferedReader(_PlaintextReader(EncryptedFile(path, secret_key)), SEGMENT_SIZE)

    return open_encrypted


def lent_opener(file: EncryptedFile) -> Callable[[Path], BinaryIO]:
    """An ``Opener`` over a file the caller has open already (a ticket opens its file once, not twice).

    Every path the engine passes must be that file's; closing the handle leaves the file open.
    """

    def open_lent(path: Path) -> BinaryIO:
        if Path(path) != file.path:
            raise ValueError(f"this opener reads {file.path}, not {path}")
        return io.BufferedReader(_PlaintextReader(file, owned=False), SEGMENT_SIZE)

    return open_lent


def plan_reencryption(
    file: EncryptedFile, recipient_public_key: bytes | str, writer_secret: bytes, pieces: Sequence[Piece]
) -> Plan:
    """The Crypt4GH stream for ``recipient_public_key`` whose plaintext is ``pieces`` concatenated."""
    recipient = parse_public_key(recipient_public_key)
    pieces = _keep_short_segment_last(file, [piece for piece in pieces if _length(piece)])
    fresh_key = os.urandom(KEY_SIZE)
    aead = ChaCha20Poly1305(fresh_key)
    parts: list[StoredCipher | FreshCipher] = []
    edits: list[int] = []
    stream = cursor = 0  # plaintext length of the segments sent so far; end of the last kept byte
    last_segment: int | None = None  # the last stored segment sent, while the last part is stored
    previous_end = -1
    for number, piece in enumerate(pieces):
        if isinstance(piece, bytes):
            final = number == len(pieces) - 1
            segments = [piece[at : at + SEGMENT_SIZE] for at in range(0, len(piece), SEGMENT_SIZE)]
            padded = [
                s if final and i == len(segments) - 1 else s.ljust(SEGMENT_SIZE, b"\0") for i, s in enumerate(segments)
            ]
            sealed = b"".join(_seal(aead, plain) for plain in padded)
            _append(parts, FreshCipher(sealed))
            position, stream, last_segment = stream, stream + sum(map(len, padded)), None
        else:
            start, end = piece
            first, last = start // SEGMENT_SIZE, (end - 1) // SEGMENT_SIZE
            if last_segment == first and start >= previous_end:
                position = stream - _segment_length(file, first) + start - first * SEGMENT_SIZE
                first += 1
            else:
                position = stream + start - first * SEGMENT_SIZE
            for index in range(first, last + 1):
                _append(parts, StoredCipher(*_cipher_span(file, index)))
                stream += _segment_length(file, index)
            last_segment, previous_end = last, end
        skip, keep = position - cursor, _length(piece)
        if edits and skip == 0:
            edits[-1] += keep
        else:
            edits += [skip, keep]
        cursor = position + keep
    base = file.reencrypted(recipient, [])  # the stored session keys, for the recipient; no edit list
    packets = list(header.parse(io.BytesIO(base.header)))
    extra = []
    if any(isinstance(part, FreshCipher) for part in parts):
        extra.append(header.make_packet_data_enc(0, fresh_key))
    if edits != [0, stream]:
        extra.append(header.make_packet_data_edit_list(edits))
    writer = [(0, writer_secret, recipient)]
    packets += [sealed for packet in extra for sealed in header.encrypt(packet, writer)]
    return Plan(header=header.serialize(packets), parts=tuple(parts))


def _length(piece: Piece) -> int:
    return len(piece) if isinstance(piece, bytes) else max(piece[1] - piece[0], 0)


def _segment_length(file: EncryptedFile, index: int) -> int:
    return min(SEGMENT_SIZE, file.plaintext_size - index * SEGMENT_SIZE)


def _cipher_span(file: EncryptedFile, index: int) -> tuple[int, int]:
    cipher_segment = SEGMENT_SIZE + _NONCE_SIZE + 16
    start = file.header_size + index * cipher_segment
    return start, min(start + cipher_segment, file.file_size)


def _append(parts: list[StoredCipher | FreshCipher], part: StoredCipher | FreshCipher) -> None:
    last = parts[-1] if parts else None
    if isinstance(last, StoredCipher) and isinstance(part, StoredCipher) and last.end == part.start:
        parts[-1] = StoredCipher(last.start, part.end)
    elif isinstance(last, FreshCipher) and isinstance(part, FreshCipher):
        parts[-1] = FreshCipher(last.data + part.data)
    else:
        parts.append(part)


def _seal(aead: ChaCha20Poly1305, plain: bytes) -> bytes:
    nonce = os.urandom(_NONCE_SIZE)
    return nonce + aead.encrypt(nonce, plain, None)


def _keep_short_segment_last(file: EncryptedFile, pieces: list[Piece]) -> list[Piece]:
    """Move tail bytes into fresh pieces where the stored short final segment would not be sent last.

    Walking backwards: stored pieces may use the final segment while everything after them is stored,
    ascending, and inside that segment (they then share its single copy).
    """
    tail = (file.segment_count - 1) * SEGMENT_SIZE
    if file.plaintext_size % SEGMENT_SIZE == 0 or not pieces:
        return pieces
    out: list[Piece] = []
    shareable, next_start = True, file.plaintext_size
    for piece in reversed(pieces):
        if isinstance(piece, bytes):
            out.append(piece)
            shareable = False
            continue
        start, end = piece
        if end > tail and not (shareable and end <= next_start):
            cut = max(start, tail)
            out.append(b"".join(file.iter_plaintext(cut, end)))
            if start < cut:
                out.append((start, cut))
            shareable = False
            continue
        out.append(piece)
        shareable = shareable and start >= tail and end <= next_start
        next_start = start
    return out[::-1]
