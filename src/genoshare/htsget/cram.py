"""CRAM 3.x framing and its CRAI index: containers are the unit a range can cut at.

A CRAM file is a 26-byte file definition, a header container, data containers and a fixed EOF container.
The CRAI index lists one line per slice (``ref_id start span container_offset slice_offset slice_size``,
gzip-compressed text), so the byte range of a container runs from its offset to the next indexed
container (or the EOF container); nothing inside a container has to be read.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from genoshare.htsget.errors import CorruptFile, UnsupportedFormat

#: The EOF container every CRAM 3.x file ends with (CRAM spec 3.1, section 9).
EOF_CONTAINER = bytes.fromhex("0f000000ffffffff0fe0454f4600000000010005bdd94f0001000606010001000100ee63014b")
_FILE_DEFINITION_SIZE = 26
#: Enough for the longest container header: 4 + 5 * 7 (itf8) + 2 * 9 (ltf8) + landmarks + CRC.
_CONTAINER_HEADER_PEEK = 4096
#: CRAI's reference id for slices of unplaced unmapped reads.
UNMAPPED_REF_ID = -1


@dataclass(frozen=True, slots=True)
class CraiEntry:
    ref_id: int
    start: int  # 0-based
    span: int
    container_offset: int


def parse_crai(data: bytes) -> tuple[CraiEntry, ...]:
    try:
        text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        entries = []
        for number, line in enumerate(text.decode("ascii").splitlines(), 1):
            if not line.strip():
                continue
            fields = [int(field) for field in line.split()]
            if len(fields) != 6 or fields[3] < 0 or fields[2] < 0:
                raise CorruptFile(f"CRAI index line {number} is not 6 non-negative offsets: {line!r}")
            ref_id, start1, span, container_offset = fields[:4]
            entries.append(CraiEntry(ref_id, max(start1 - 1, 0), span, container_offset))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise CorruptFile(f"CRAI index does not parse: {exc}") from exc
    return tuple(entries)


def header_end(handle: BinaryIO) -> int:
    """Byte offset just past the header container, read from the file definition and container header."""
    handle.seek(0)
    head = handle.read(_FILE_DEFINITION_SIZE + _CONTAINER_HEADER_PEEK)
    if head[:4] != b"CRAM":
        raise CorruptFile("CRAM file does not start with 'CRAM'")
    if head[4] != 3:
        raise UnsupportedFormat(f"CRAM {head[4]}.{head[5]} is not supported, only 3.x")
    pos = _FILE_DEFINITION_SIZE
    try:
        length = int.from_bytes(head[pos : pos + 4], "little", signed=True)
        pos += 4
        for _ in range(4):  # ref id, start, span, record count
            pos = _skip_itf8(head, pos)
        for _ in range(2):  # record counter, bases
            pos = _skip_ltf8(head, pos)
        pos = _skip_itf8(head, pos)  # block count
        n_landmarks, pos = _itf8(head, pos)
        for _ in range(n_landmarks):
            pos = _skip_itf8(head, pos)
        pos += 4  # CRC32
    except IndexError as exc:
        raise CorruptFile("CRAM header container is truncated") from exc
    if length < 0 or pos > len(head):
        raise CorruptFile("CRAM header container is malformed")
    return pos + length


def _itf8(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first < 0xC0:
        return (first & 0x3F) << 8 | data[pos + 1], pos + 2
    if first < 0xE0:
        return (first & 0x1F) << 16 | data[pos + 1] << 8 | data[pos + 2], pos + 3
    if first < 0xF0:
        return (first & 0x0F) << 24 | int.from_bytes(data[pos + 1 : pos + 4], "big"), pos + 4
    value = (first & 0x0F) << 28 | int.from_bytes(data[pos + 1 : pos + 4], "big") << 4 | data[pos + 4] & 0x0F
    return value, pos + 5


def _skip_itf8(data: bytes, pos: int) -> int:
    return _itf8(data, pos)[1]


def _skip_ltf8(data: bytes, pos: int) -> int:
    leading_ones = 8 - (~data[pos] & 0xFF).bit_length()
    return pos + 1 + leading_ones
