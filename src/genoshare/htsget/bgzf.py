"""Just enough BGZF to cut a file at virtual offsets without decoding its records.

A virtual offset packs ``coffset << 16 | uoffset``: the byte where a compressed block starts and a position
inside its inflated payload.  Index chunks start and end on record boundaries, but those boundaries are
usually in the middle of a block, so a byte range made only of whole blocks would drag in the tail of the
previous record (lines of a ``bgzip``-ed VCF routinely straddle blocks).  The engine therefore re-compresses
the partial edge blocks into small inline blocks, and this module provides the reading, inflating and
re-compressing that requires.

Deflate, inflate and CRC go through ISA-L (``isal``): at level 1 it compresses an edge block about six
times faster than zlib for the same size, and inflates about 1.5 times faster; both were the largest
costs of a ticket.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from isal import isal_zlib

from genoshare.htsget.errors import CorruptFile

#: The 28-byte empty block every BGZF file must end with (SAM spec, section 4.1.2).
EOF_MARKER = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")

_HEADER = struct.Struct("<4BIBBHBBHH")  # ID1 ID2 CM FLG MTIME XFL OS XLEN SI1 SI2 SLEN BSIZE
_HEADER_SIZE = _HEADER.size
#: A BGZF block is at most 64 KiB compressed (BSIZE is 16 bits).
MAX_BLOCK_SIZE = 1 << 16
#: htslib's payload cap; keeps a worst-case (incompressible) block under the 64 KiB BSIZE limit.
_MAX_PAYLOAD = 0xFF00


def split(voffset: int) -> tuple[int, int]:
    return voffset >> 16, voffset & 0xFFFF


def join(coffset: int, uoffset: int) -> int:
    return coffset << 16 | uoffset


def read_block(handle: BinaryIO, coffset: int) -> tuple[int, bytes]:
    """Inflate the block at ``coffset``; returns its compressed size with the payload.

    One read of up to 64 KiB covers any block: over a decrypting reader, each read costs a decryption of
    the segments it touches, so header and body are not read separately.
    """
    handle.seek(coffset)
    data = handle.read(MAX_BLOCK_SIZE)
    if len(data) < _HEADER_SIZE:
        raise CorruptFile(f"truncated BGZF block header at byte {coffset}")
    id1, id2, cm, flg, _mtime, _xfl, _os, xlen, si1, si2, slen, bsize = _HEADER.unpack_from(data)
    if (id1, id2, cm, flg, si1, si2, slen) != (31, 139, 8, 4, 66, 67, 2) or xlen != 6:
        raise CorruptFile(f"no BGZF block at byte {coffset}")
    total = bsize + 1
    if len(data) < total:
        raise CorruptFile(f"truncated BGZF block at byte {coffset}")
    crc, isize = struct.unpack_from("<II", data, total - 8)
    try:
        payload = isal_zlib.decompress(memoryview(data)[_HEADER_SIZE : total - 8], -15)
    except isal_zlib.error as exc:  # type: ignore[misc]  # isal's stub declares error an instance, not a class
        raise CorruptFile(f"BGZF block at byte {coffset} does not inflate: {exc}") from exc
    if len(payload) != isize or isal_zlib.crc32(payload) != crc:
        raise CorruptFile(f"BGZF block at byte {coffset} fails its size or CRC check")
    return total, payload


def iter_blocks(handle: BinaryIO, file_size: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(coffset, compressed_size, payload)`` from the start of the file, lazily."""
    coffset = 0
    while coffset < file_size:
        size, payload = read_block(handle, coffset)
        yield coffset, size, payload
        coffset += size


def compress(payload: bytes) -> bytes:
    """Deflate ``payload`` into as many BGZF blocks as it needs.

    Level 1 because these blocks are built per request: speed matters more than the few bytes saved
    (ISA-L's level 0 is only a fifth faster and its blocks two thirds larger, which base64 inflates again).
    (Run-length-only or Huffman-only deflate wins only on random synthetic reads: on the demo NA12878 BAM
    they are no faster and the inline blocks come out twice as large.)
    """
    out = bytearray()
    for pos in range(0, len(payload), _MAX_PAYLOAD):
        piece = payload[pos : pos + _MAX_PAYLOAD]
        deflater = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
        cdata = deflater.compress(piece) + deflater.flush()
        bsize = _HEADER_SIZE + len(cdata) + 8 - 1
        out += _HEADER.pack(31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, bsize)
        out += cdata
        out += struct.pack("<II", isal_zlib.crc32(piece), len(piece))
    return bytes(out)


def decompress_all(data: bytes) -> bytes:
    """Inflate a whole BGZF (or plain gzip) member chain held in memory, as index files are."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        inflater = zlib.decompressobj(31)
        try:
            out += inflater.decompress(data[pos:])
        except zlib.error as exc:
            raise CorruptFile(f"index does not inflate: {exc}") from exc
        if not inflater.eof:
            raise CorruptFile("index is truncated inside a compressed block")
        pos = len(data) - len(inflater.unused_data)
    return bytes(out)


def ends_with_eof(handle: BinaryIO, size: int) -> bool:
    if size < len(EOF_MARKER):
        return False
    handle.seek(size - len(EOF_MARKER))
    return handle.read(len(EOF_MARKER)) == EOF_MARKER
