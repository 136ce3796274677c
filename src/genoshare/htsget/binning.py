"""The binning index shared by BAI, TBI and CSI, and the region query over it.

All three formats describe, per reference, a hierarchy of bins (UCSC binning scheme, SAM spec section 5)
each holding chunks of virtual offsets, plus a "minimum offset" lower bound (BAI/TBI: a linear index of
16 kbp windows; CSI: one ``loffset`` per bin).  They differ only in framing, so the per-format readers
(``bai``, ``tbi``, ``csi``) fill this one model and the query lives here once.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from genoshare.htsget.errors import CorruptFile

Chunk = tuple[int, int]  # [start, end) as BGZF virtual offsets


@dataclass(frozen=True, slots=True)
class RefIndex:
    bins: dict[int, tuple[Chunk, ...]]
    #: CSI's per-bin minimum offsets; empty for BAI/TBI.
    loffsets: dict[int, int]
    #: BAI/TBI linear index (minimum offset per 2**min_shift window); empty for CSI.
    linear: tuple[int, ...]
    #: Largest chunk end of this reference: where its last record stops.
    last_end: int
    #: Bin start positions, ascending, and beside each the smallest chunk start among bins starting there or
    #: later; filled by ``BinningIndex`` (see ``BinningIndex._past_offset``).
    bin_starts: tuple[int, ...] = field(default=(), compare=False)
    past_offsets: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class BinningIndex:
    min_shift: int
    depth: int
    refs: tuple[RefIndex, ...]
    #: Reference names stored in the index itself (tabix meta); None when ids follow the file header.
    names: tuple[str, ...] | None

    def __post_init__(self) -> None:
        firsts = level_firsts(self.depth)
        for ref in self.refs:
            starts: dict[int, int] = {}
            for b, chunks in ref.bins.items():
                if not chunks:
                    continue
                level = bisect_right(firsts, b) - 1
                begin = (b - firsts[level]) << (self.min_shift + 3 * (self.depth - level))
                first = min(start for start, _ in chunks)
                starts[begin] = min(first, starts.get(begin, first))
            ordered = sorted(starts.items())
            suffix: list[int] = []
            for _, offset in reversed(ordered):
                suffix.append(min(offset, suffix[-1]) if suffix else offset)
            object.__setattr__(ref, "bin_starts", tuple(begin for begin, _ in ordered))
            object.__setattr__(ref, "past_offsets", tuple(reversed(suffix)))

    @property
    def max_position(self) -> int:
        return 1 << (self.min_shift + 3 * self.depth)

    @property
    def last_end(self) -> int:
        """Where the last placed record of the file ends (0 if none): the start of unplaced reads."""
        return max((ref.last_end for ref in self.refs), default=0)

    def chunks(self, ref_id: int, beg: int, end: int) -> list[Chunk]:
        """Chunks that may hold records overlapping ``[beg, end)``, unsorted and unmerged."""
        if ref_id >= len(self.refs):
            return []
        end = min(end, self.max_position)
        if beg >= end:
            return []
        ref = self.refs[ref_id]
        min_off, past = self._min_offset(ref, beg), self._past_offset(ref, end)
        return [
            (start, min(stop, past))
            for b in self._bins(ref, beg, end)
            for start, stop in ref.bins[b]
            if stop > min_off and start < past
        ]

    def _bins(self, ref: RefIndex, beg: int, end: int) -> list[int]:
        """Bins of ``ref`` overlapping the region, walking whichever side is smaller.

        A whole-chromosome query spans ~37k candidate bins while a reference holds a few hundred, and
        the other way round for a small region, so both directions are needed to stay fast.
        """
        firsts = level_firsts(self.depth)
        spans = []
        for level, first in enumerate(firsts[:-1]):
            shift = self.min_shift + 3 * (self.depth - level)
            spans.append((first + (beg >> shift), first + ((end - 1) >> shift)))
        if sum(hi - lo + 1 for lo, hi in spans) <= len(ref.bins):
            return [b for lo, hi in spans for b in range(lo, hi + 1) if b in ref.bins]
        found = []
        for b in ref.bins:
            level = bisect_right(firsts, b) - 1
            if level < len(spans) and spans[level][0] <= b <= spans[level][1]:
                found.append(b)
        return found

    def _past_offset(self, ref: RefIndex, end: int) -> int:
        """A virtual offset from which on every record starts at ``end`` or later (a record boundary).

        Indexed files are sorted by position, and every record of a bin starts inside the bin, so the first
        chunk of any bin starting at ``end`` or later begins a run of records that cannot overlap the region.
        Parent bins hold the reads that cross a window boundary, and their chunks are spread over the bin's
        whole span; without this bound a 10 kbp query keeps chunks from up to the whole reference away,
        each one costing two cut edge blocks.
        """
        at = bisect_left(ref.bin_starts, end)
        return ref.past_offsets[at] if at < len(ref.past_offsets) else 1 << 64

    def _min_offset(self, ref: RefIndex, beg: int) -> int:
        """A virtual offset below which no record overlapping ``beg`` onwards can start."""
        if ref.linear:
            return ref.linear[min(beg >> self.min_shift, len(ref.linear) - 1)]
        b = level_firsts(self.depth)[-2] + (beg >> self.min_shift)
        while b > 0 and b not in ref.loffsets:
            b = (b - 1) >> 3
        return ref.loffsets.get(b, 0)


def level_firsts(depth: int) -> list[int]:
    """First bin number of each level, plus one past the last level (which is also the count of bins)."""
    return [((1 << (3 * level)) - 1) // 7 for level in range(depth + 2)]


def meta_bin(depth: int) -> int:
    """The pseudo-bin htslib uses for per-reference metadata (37450 for BAI)."""
    return level_firsts(depth)[-1] + 1


class Cursor:
    """Little-endian reader over an index held in memory; any overrun becomes ``CorruptFile``."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def unpack(self, fmt: str) -> tuple[int, ...]:
        try:
            values = struct.unpack_from(fmt, self.data, self.pos)
        except struct.error as exc:
            raise CorruptFile(f"{self.what} is truncated at byte {self.pos}") from exc
        self.pos += struct.calcsize(fmt)
        return values

    def i32(self) -> int:
        value = self.unpack("<i")[0]
        if value < 0:
            raise CorruptFile(f"{self.what} has a negative count at byte {self.pos - 4}")
        return value

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CorruptFile(f"{self.what} is truncated at byte {self.pos}")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def expect(self, magic: bytes) -> None:
        if self.take(len(magic)) != magic:
            raise CorruptFile(f"{self.what} does not start with {magic!r}")

    def finish(self) -> None:
        """Only the optional count of unplaced reads (one u64) may follow the references."""
        if len(self.data) - self.pos not in (0, 8):
            raise CorruptFile(f"{self.what} has {len(self.data) - self.pos} unexpected trailing bytes")

    def chunks(self) -> tuple[Chunk, ...]:
        n = self.i32()
        flat = self.unpack(f"<{2 * n}Q")
        return tuple(zip(flat[::2], flat[1::2], strict=True))


def read_linear_ref(cursor: Cursor, depth: int) -> RefIndex:
    """One reference of a BAI or TBI: bins without loffsets, then the linear index."""
    pseudo = meta_bin(depth)
    bins: dict[int, tuple[Chunk, ...]] = {}
    last_end = 0
    for _ in range(cursor.i32()):
        (b,) = cursor.unpack("<I")
        chunks = cursor.chunks()
        last_end = max([last_end, *(end for _, end in chunks)])
        if b != pseudo:
            bins[b] = chunks
    n_intv = cursor.i32()
    linear = cursor.unpack(f"<{n_intv}Q")
    return RefIndex(bins=bins, loffsets={}, linear=linear, last_end=last_end)


def read_tabix_meta(cursor: Cursor) -> tuple[str, ...]:
    """The tabix header shared by TBI and VCF-flavoured CSI aux data; only the names matter here."""
    cursor.unpack("<6i")  # format, col_seq, col_beg, col_end, meta char, skip
    l_nm = cursor.i32()
    raw = cursor.take(l_nm)
    return tuple(name.decode(errors="replace") for name in raw.split(b"\0") if name)
