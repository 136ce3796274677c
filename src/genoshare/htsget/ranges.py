"""htsget's byte-range engine: which pieces of a file make a valid file holding the records of a region.

Public interface::

    FileFormat                        BAM, CRAM, VCF, BCF (``genoshare.formats``)
    DataClass                         HEADER, BODY  (the ticket's per-URL ``class``)
    ByteRange(start, end, data_class) bytes [start, end) of the data file
    InlineBlock(data, data_class)     bytes to send inline as a ``data:`` URI
    Block = ByteRange | InlineBlock
    IndexCache(maxsize=64)            LRU of parsed indexes and file layouts, keyed by path + mtime + size
    Region(reference_name, start=None, end=None)
    header_blocks(fmt, data_path, cache=None, opener=open_plain) -> list[Block]
    region_blocks(fmt, data_path, index_path, reference_name=None, start=None, end=None, cache=None,
                  opener=open_plain) -> list[Block]
    regions_blocks(fmt, data_path, index_path, regions, cache=None, opener=open_plain) -> list[Block]

``opener`` reads the data file's plaintext (``open`` by default); a node storing files encrypted passes a
decrypting reader.  ``regions_blocks`` answers several regions at once (htsget POST): their chunks are
united before cutting, so a record matching two regions is sent once and in file order.

Concatenating the blocks in order gives a valid file: the header, then every record overlapping
``[start, end)`` of ``reference_name`` (0-based, half-open; ``None`` bounds mean the contig's start/end,
``reference_name=None`` the whole file, ``"*"`` the unplaced unmapped reads of BAM/CRAM), possibly with
neighbouring records as the spec allows, then the EOF marker.  Blocks come merged: adjacent ranges are
joined, and the header is always its own blocks so clients may reuse it across tickets.

Only the index decides which records are needed.  The data file is read for its header (once, cached) and,
for BGZF formats, for the at most two blocks where each merged chunk starts or ends mid-block: those edges
are re-compressed into inline blocks so that no partial record leaks in (bgzip-ed VCF lines straddle
blocks), which whole-block ranges would not guarantee; an end block that whole records fill exactly is
sent as stored bytes instead.  The EOF marker is always sent inline.

Errors (``genoshare.htsget.errors``): ``InvalidRange`` for start > end; ``InvalidInput`` for bounds
outside uint32 or given without a reference (or with ``*``); ``NotFound`` for a reference the header does
not declare, ``*`` on variants, or a missing file; ``CorruptFile`` (an ``InvalidInput``) for data or index
files that do not parse.  An empty interval (start == end) overlaps nothing: header and EOF only.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, TypeVar

from genoshare.formats import FileFormat
from genoshare.htsget import bai, bgzf, cram, csi, tbi
from genoshare.htsget.binning import BinningIndex, Chunk
from genoshare.htsget.errors import CorruptFile, InvalidInput, InvalidRange, NotFound
from genoshare.htsget.layout import FileLayout, Opener, open_plain, read_layout

__all__ = [
    "Block",
    "ByteRange",
    "DataClass",
    "IndexCache",
    "InlineBlock",
    "Opener",
    "Region",
    "header_blocks",
    "region_blocks",
    "regions_blocks",
]

UNMAPPED = "*"
_MAX_COORDINATE = 2**32 - 1  # the spec types start/end as 32-bit unsigned
#: Largest gap (compressed bytes) worth sending rather than cutting around: about one typical BAM block.
_MERGE_GAP = 1 << 15
#: What precedes each record's body: BAM's block_size; BCF's l_shared and l_indiv.
_RECORD_PREFIX = {FileFormat.BAM: struct.Struct("<I"), FileFormat.BCF: struct.Struct("<II")}


class DataClass(StrEnum):
    HEADER = "header"
    BODY = "body"


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive
    data_class: DataClass = DataClass.BODY


@dataclass(frozen=True, slots=True)
class InlineBlock:
    data: bytes
    data_class: DataClass = DataClass.BODY


Block = ByteRange | InlineBlock


@dataclass(frozen=True, slots=True)
class Region:
    """One requested interval: 0-based, half-open; None bounds mean the contig's start/end."""

    reference_name: str
    start: int | None = None
    end: int | None = None


CraiIndex = tuple[cram.CraiEntry, ...]
_T = TypeVar("_T")


class IndexCache:
    """Parsed indexes and file layouts, so a region query costs a dict lookup plus the bin walk.

    Entries are keyed by path, modification time and size, so a replaced file is re-read.  Thread-safe,
    as a web server may call the engine from a thread pool.
    """

    def __init__(self, maxsize: int = 64) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[tuple[object, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    def layout(self, fmt: FileFormat, data_path: Path, opener: Opener = open_plain) -> FileLayout:
        return self._get(("layout", fmt), data_path, lambda: read_layout(fmt, data_path, opener))

    def binning_index(self, fmt: FileFormat, index_path: Path) -> BinningIndex:
        return self._get(("binning", fmt), index_path, lambda: _parse_binning_index(fmt, index_path))

    def crai(self, index_path: Path) -> CraiIndex:
        return self._get(("crai",), index_path, lambda: cram.parse_crai(_read_index(index_path)))

    def _get(self, kind: tuple[object, ...], path: Path, load: Callable[[], _T]) -> _T:
        key = (*kind, str(path), *_version(path))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]  # type: ignore[return-value]
        value = load()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return value


def _version(path: Path) -> tuple[int, ...]:
    """What tells a file's versions apart: modification time and size.

    Nothing for an object in an S3 store (named ``s3://bucket/key``): the node's keys are content checksums.
    """
    if path.parts[:1] == ("s3:",):
        return ()
    try:
        stat = os.stat(path)
    except FileNotFoundError as exc:
        raise NotFound(f"{path.name} does not exist") from exc
    return stat.st_mtime_ns, stat.st_size


def header_blocks(
    fmt: FileFormat, data_path: Path | str, cache: IndexCache | None = None, opener: Opener = open_plain
) -> list[Block]:
    """The header alone (htsget ``class=header``): every block of class header.

    No EOF marker: the spec asks for header data only, and the marker is body data.  A complete file is
    what a request without ``class`` returns (header, records, EOF); the header followed by an EOF marker
    is a valid empty one.
    """
    fmt = FileFormat(fmt)
    layout = (cache or IndexCache()).layout(fmt, Path(data_path), opener)
    with opener(Path(data_path)) as handle:
        return _header(fmt, layout, handle)


def region_blocks(
    fmt: FileFormat,
    data_path: Path | str,
    index_path: Path | str,
    reference_name: str | None = None,
    start: int | None = None,
    end: int | None = None,
    cache: IndexCache | None = None,
    opener: Opener = open_plain,
) -> list[Block]:
    if reference_name is None:
        _check_query(FileFormat(fmt), reference_name, start, end)
        return regions_blocks(fmt, data_path, index_path, None, cache, opener)
    return regions_blocks(fmt, data_path, index_path, [Region(reference_name, start, end)], cache, opener)


def regions_blocks(
    fmt: FileFormat,
    data_path: Path | str,
    index_path: Path | str,
    regions: list[Region] | None,
    cache: IndexCache | None = None,
    opener: Opener = open_plain,
) -> list[Block]:
    """Header, every record overlapping any of ``regions`` (None: the whole file), EOF."""
    fmt = FileFormat(fmt)
    for region in regions or ():
        _check_query(fmt, region.reference_name, region.start, region.end)
    cache = cache or IndexCache()
    data_path, index_path = Path(data_path), Path(index_path)
    layout = cache.layout(fmt, data_path, opener)
    with opener(data_path) as handle:
        if fmt is FileFormat.CRAM:
            crai = cache.crai(index_path)
            body = _cram_body(layout, crai, regions)
        else:
            index = cache.binning_index(fmt, index_path)
            targets: list[Region | None] = list(regions) if regions is not None else [None]
            chunks = [chunk for region in targets for chunk in _bgzf_chunks(layout, index, region)]
            body = _cut_chunks(fmt, handle, layout.header_end, chunks)
        return _coalesce([*_header(fmt, layout, handle), *body, _eof(fmt)])


def _check_query(fmt: FileFormat, reference_name: str | None, start: int | None, end: int | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if not 0 <= value <= _MAX_COORDINATE:
            raise InvalidInput(f"{name}={value} is not a 32-bit unsigned integer")
        if reference_name is None or reference_name == UNMAPPED:
            raise InvalidInput(f"{name} needs a referenceName other than '*'")
    if start is not None and end is not None and start > end:
        raise InvalidRange(f"start={start} is greater than end={end}")
    if reference_name == UNMAPPED and not fmt.is_reads:
        raise NotFound("referenceName '*' (unplaced unmapped reads) exists only for reads")


def _header(fmt: FileFormat, layout: FileLayout, handle: BinaryIO) -> list[Block]:
    if fmt is FileFormat.CRAM:
        return [ByteRange(0, layout.header_end, DataClass.HEADER)]
    coffset, uoffset = bgzf.split(layout.header_end)
    blocks: list[Block] = [ByteRange(0, coffset, DataClass.HEADER)] if coffset else []
    if uoffset:
        _, payload = bgzf.read_block(handle, coffset)
        blocks.append(InlineBlock(bgzf.compress(payload[:uoffset]), DataClass.HEADER))
    return blocks


def _eof(fmt: FileFormat) -> InlineBlock:
    return InlineBlock(cram.EOF_CONTAINER if fmt is FileFormat.CRAM else bgzf.EOF_MARKER)


def _resolve(references: dict[str, int], index_names: tuple[str, ...] | None, name: str) -> int | None:
    """The index's id for ``name``; None when the header declares it but the index has no records on it."""
    if index_names is not None and name in index_names:
        return index_names.index(name)
    if name not in references:
        raise NotFound(f"reference {name!r} is not in the file header")
    return None if index_names is not None else references[name]


def _bgzf_chunks(layout: FileLayout, index: BinningIndex, region: Region | None) -> list[Chunk]:
    body_end = bgzf.join(layout.body_end, 0)
    if region is None:
        return [(layout.header_end, body_end)]
    if region.reference_name == UNMAPPED:
        return [(index.last_end, body_end)]
    ref_id = _resolve(layout.references, index.names, region.reference_name)
    if ref_id is None:
        return []
    return index.chunks(ref_id, region.start or 0, index.max_position if region.end is None else region.end)


def _cut_chunks(fmt: FileFormat, handle: BinaryIO, header_end: int, chunks: list[Chunk]) -> list[Block]:
    """Turn virtual-offset chunks into blocks, after merging those that overlap or nearly touch.

    Chunk boundaries are record boundaries, so bridging a gap only adds whole records (which the spec
    allows); bridging gaps up to about one BGZF block saves cutting and re-compressing two edge blocks,
    the dominant cost of a query.
    """
    merged: list[list[int]] = []
    for chunk_start, chunk_end in sorted((max(s, header_end), e) for s, e in chunks):
        if chunk_end <= chunk_start:
            continue
        if merged and (chunk_start >> 16) - (merged[-1][1] >> 16) <= _MERGE_GAP:
            merged[-1][1] = max(merged[-1][1], chunk_end)
        else:
            merged.append([chunk_start, chunk_end])
    blocks: list[Block] = []
    for chunk_start, chunk_end in merged:
        blocks.extend(_cut(fmt, handle, chunk_start, chunk_end))
    return blocks


def _cut(fmt: FileFormat, handle: BinaryIO, start: int, end: int) -> list[Block]:
    start_block, start_within = bgzf.split(start)
    end_block, end_within = bgzf.split(end)
    blocks: list[Block] = []
    if start_within:
        size, payload = bgzf.read_block(handle, start_block)
        if start_block == end_block:
            return [InlineBlock(bgzf.compress(payload[start_within:end_within]))]
        if payload[start_within:]:
            blocks.append(InlineBlock(bgzf.compress(payload[start_within:])))
        start_block += size
    tail: list[Block] = []
    if end_within:
        size, payload = bgzf.read_block(handle, end_block)
        if _ends_on_record(fmt, payload, end_within):
            end_block += size
        else:
            tail.append(InlineBlock(bgzf.compress(payload[:end_within])))
    if start_block < end_block:
        blocks.append(ByteRange(start_block, end_block))
    return blocks + tail


def _ends_on_record(fmt: FileFormat, payload: bytes, pos: int) -> bool:
    """Whether whole records starting at ``pos`` fill the block exactly.

    ``pos`` is a record boundary (a chunk end), so when this holds the block carries no partial record
    and can be sent as stored instead of cut and re-compressed.  Writers built on htslib align records
    to blocks, so this is the usual case and halves the per-chunk cost.
    """
    if fmt is FileFormat.VCF:
        return payload.endswith(b"\n")
    prefix = _RECORD_PREFIX[fmt]
    size = len(payload)
    while pos + prefix.size <= size:
        pos += prefix.size + sum(prefix.unpack_from(payload, pos))
    return pos == size


def _cram_body(layout: FileLayout, crai: CraiIndex, regions: list[Region] | None) -> list[Block]:
    if regions is None:
        return [ByteRange(layout.header_end, layout.body_end)] if layout.header_end < layout.body_end else []
    wanted: set[int] = set()
    for region in regions:
        if region.reference_name == UNMAPPED:
            wanted |= {e.container_offset for e in crai if e.ref_id == cram.UNMAPPED_REF_ID}
            continue
        ref_id = _resolve(layout.references, None, region.reference_name)
        lo, hi = region.start or 0, _MAX_COORDINATE + 1 if region.end is None else region.end
        wanted |= {
            e.container_offset
            for e in crai
            if e.ref_id == ref_id and lo < hi and e.start < hi and e.start + max(e.span, 1) > lo
        }
    if not crai and layout.header_end < layout.body_end:
        raise CorruptFile("CRAI index is empty but the CRAM file has data containers")
    boundaries = sorted({e.container_offset for e in crai} | {layout.body_end})
    blocks: list[Block] = []
    for offset in sorted(wanted):
        if not layout.header_end <= offset < layout.body_end:
            raise CorruptFile(f"CRAI points at byte {offset}, outside the CRAM body")
        blocks.append(ByteRange(offset, boundaries[bisect_right(boundaries, offset)]))
    return blocks


def _coalesce(blocks: list[Block]) -> list[Block]:
    """Join neighbours of one class: touching byte ranges, and consecutive inline blocks."""
    out: list[Block] = []
    for block in blocks:
        last = out[-1] if out else None
        if isinstance(block, ByteRange) and block.start == block.end:
            continue
        if last is None or last.data_class != block.data_class:
            out.append(block)
        elif isinstance(last, ByteRange) and isinstance(block, ByteRange) and last.end == block.start:
            out[-1] = ByteRange(last.start, block.end, last.data_class)
        elif isinstance(last, InlineBlock) and isinstance(block, InlineBlock):
            out[-1] = InlineBlock(last.data + block.data, last.data_class)
        else:
            out.append(block)
    return out


def _read_index(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"index {path.name} does not exist") from exc


def _inflated_magic(data: bytes) -> bytes:
    try:
        return zlib.decompressobj(31).decompress(data, 4)
    except zlib.error:
        return b""


def _parse_binning_index(fmt: FileFormat, path: Path) -> BinningIndex:
    data = _read_index(path)
    if data[:4] == b"BAI\1":
        kind = "BAI"
    else:
        magic = _inflated_magic(data)
        kind = {b"CSI\1": "CSI", b"TBI\1": "TBI"}.get(magic, "")
    allowed = {FileFormat.BAM: ("BAI", "CSI"), FileFormat.VCF: ("TBI", "CSI"), FileFormat.BCF: ("CSI",)}
    if kind not in allowed[fmt]:
        raise CorruptFile(f"{path.name} is not a {' or '.join(allowed[fmt])} index")
    return {"BAI": bai.parse, "CSI": csi.parse, "TBI": tbi.parse}[kind](data)
