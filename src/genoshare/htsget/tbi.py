"""TBI reader: tabix's index, a BGZF-compressed BAI body behind a header that names the references."""

from __future__ import annotations

from genoshare.htsget import bgzf
from genoshare.htsget.bai import DEPTH, MIN_SHIFT
from genoshare.htsget.binning import BinningIndex, Cursor, read_linear_ref, read_tabix_meta


def parse(data: bytes) -> BinningIndex:
    cursor = Cursor(bgzf.decompress_all(data), "TBI index")
    cursor.expect(b"TBI\1")
    n_ref = cursor.i32()
    names = read_tabix_meta(cursor)
    refs = tuple(read_linear_ref(cursor, DEPTH) for _ in range(n_ref))
    cursor.finish()
    return BinningIndex(min_shift=MIN_SHIFT, depth=DEPTH, refs=refs, names=names)
