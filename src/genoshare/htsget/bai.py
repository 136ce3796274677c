"""BAI reader: the BAM index, uncompressed, fixed at 14-bit windows and 5 levels (SAM spec section 5.2)."""

from __future__ import annotations

from genoshare.htsget.binning import BinningIndex, Cursor, read_linear_ref

MIN_SHIFT = 14
DEPTH = 5


def parse(data: bytes) -> BinningIndex:
    cursor = Cursor(data, "BAI index")
    cursor.expect(b"BAI\1")
    refs = tuple(read_linear_ref(cursor, DEPTH) for _ in range(cursor.i32()))
    cursor.finish()
    return BinningIndex(min_shift=MIN_SHIFT, depth=DEPTH, refs=refs, names=None)
