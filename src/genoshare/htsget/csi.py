"""CSI reader: the generalised index with a configurable window and depth, and one min offset per bin.

For VCF the auxiliary block is a tabix header naming the references; for BAM and BCF it is empty and
reference ids follow the file's own header.
"""

from __future__ import annotations

from genoshare.htsget import bgzf
from genoshare.htsget.binning import BinningIndex, Chunk, Cursor, RefIndex, meta_bin, read_tabix_meta
from genoshare.htsget.errors import CorruptFile

#: Positions fit in 64 bits, so a tree reaching further can only come from a corrupt file.
_MAX_BITS = 64


def parse(data: bytes) -> BinningIndex:
    cursor = Cursor(bgzf.decompress_all(data), "CSI index")
    cursor.expect(b"CSI\1")
    min_shift, depth, l_aux = cursor.i32(), cursor.i32(), cursor.i32()
    if min_shift + 3 * depth >= _MAX_BITS:
        raise CorruptFile(f"CSI index claims min_shift={min_shift}, depth={depth}")
    aux = cursor.take(l_aux)
    names = read_tabix_meta(Cursor(aux, "CSI aux data")) if l_aux >= 28 else None
    refs = tuple(_read_ref(cursor, depth) for _ in range(cursor.i32()))
    cursor.finish()
    return BinningIndex(min_shift=min_shift, depth=depth, refs=refs, names=names)


def _read_ref(cursor: Cursor, depth: int) -> RefIndex:
    pseudo = meta_bin(depth)
    bins: dict[int, tuple[Chunk, ...]] = {}
    loffsets: dict[int, int] = {}
    last_end = 0
    for _ in range(cursor.i32()):
        b, loffset = cursor.unpack("<IQ")
        chunks = cursor.chunks()
        last_end = max([last_end, *(end for _, end in chunks)])
        if b != pseudo:
            bins[b] = chunks
            loffsets[b] = loffset
    return RefIndex(bins=bins, loffsets=loffsets, linear=(), last_end=last_end)
