"""Variant records in blocks of numpy genotypes, decoded from the BCF that htslib's bcftools writes.

Indexing is bound by two costs that are not ours: parsing VCF text (htslib: ~30 µs per 1,000-sample record)
and cyvcf2's per-record genotype decoding (~40 µs, one Python-visible array built sample by sample). We hand
the first to a `bcftools view` child, so it runs on another core, and avoid the second: in BCF a record's GT
field is already a (samples x ploidy) integer array that numpy views in place. The child is pysam's bundled
bcftools in a fresh interpreter, so no command-line tool has to be installed; it writes BGZF at level 0
(stored blocks), the one uncompressed layout every htslib version agrees on.

We read only what the index needs, following the BCF 2.2 specification: the fixed record fields, the ID and
allele strings, and the GT field among the FORMAT fields (FILTER and INFO are skipped by length).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cyvcf2
import numpy as np

BLOCK_RECORDS = 1024
_PIPE_READ = 1 << 20
_QUEUED_CHUNKS = 32  # at most ~32 MiB read ahead of the decoder

# The child's stdin is the caller's descriptor: it shares the file offset, so the caller can report progress.
# A region is read from the file's path instead, through its tabix/CSI index (arguments after the program).
_CHILD = (
    "import sys; from pysam import bcftools; "
    "bcftools.view('--no-version', '-Ob', '-l', '0', *sys.argv[1:], catch_stdout=False)"
)

_LENGTHS = struct.Struct("<II")  # l_shared, l_indiv
_FIXED = struct.Struct("<iiifII")  # CHROM, POS, rlen, QUAL, n_allele << 16 | n_info, n_fmt << 24 | n_sample
_FIXED_END = _LENGTHS.size + _FIXED.size
_TYPE_SIZE = (0, 1, 2, 4, 0, 4, 0, 1)  # by BCF type code: missing, int8, int16, int32, -, float, -, char
_INT_TYPES: dict[int, np.dtype[np.signedinteger]] = {1: np.dtype(np.int8), 2: np.dtype("<i2"), 3: np.dtype("<i4")}
# (contig id, start, end, alleles, genotypes as the source encodes them)
_Record = tuple[int, int, int, list[str], np.ndarray]
_IDX = re.compile(r"^##(contig|FILTER|INFO|FORMAT)=<ID=([^,>]+).*,IDX=(\d+)>$")


@dataclass(frozen=True)
class Region:
    """The records of an indexed VCF/BCF whose POS lies in [start, end) (0-based; ``end`` None: to the end).

    Records are taken by where they start, not by overlap, so regions that tile a contig read every record
    exactly once: a distributed build splits a file into such regions.
    """

    path: str
    contig: str
    start: int = 0
    end: int | None = None

    @property
    def spec(self) -> str:
        """The region as bcftools and htslib write it (1-based, inclusive; braces around a name with a colon)."""
        name = f"{{{self.contig}}}" if ":" in self.contig else self.contig  # HLA-A*01:01:01:01
        return f"{name}:{self.start + 1}-{'' if self.end is None else self.end}"

    def holds(self, start: int) -> bool:
        return start >= self.start and (self.end is None or start < self.end)


@dataclass(frozen=True)
class SiteBlock:
    """Consecutive records whose genotypes share one array shape."""

    contig: np.ndarray  # int32 index into `BcfStream.contigs`
    start: np.ndarray  # int64, 0-based
    end: np.ndarray  # int64, exclusive: start + rlen, so END= and symbolic alleles count as htslib does
    ref: list[str]
    alts: list[list[str]]
    # (records, samples, ploidy) allele numbers; negative for missing calls and for the padding of samples
    # with a lower ploidy than the record's widest (ploidy 0 when a record has no GT field).
    genotypes: np.ndarray

    def __len__(self) -> int:
        return len(self.ref)


class BcfError(ValueError):
    """bcftools could not read the input, or wrote something that is not BCF 2."""


class UndeclaredInHeader(BcfError):
    """The input uses a contig, FILTER, INFO or FORMAT id its header does not declare.

    htslib accepts that when reading VCF but refuses to write such a record as BCF (the id has no number in
    the header it already wrote), so these inputs need a reader that grows its header: `Cyvcf2Source`.
    """


def _typed_length(buf: bytes, p: int) -> tuple[int, int, int]:
    """(count, type code, offset of the values) of the typed value whose descriptor byte is at `p`."""
    descriptor = buf[p]
    count, kind = descriptor >> 4, descriptor & 15
    p += 1
    if count == 15:  # the count overflows into a typed integer that follows
        size = _TYPE_SIZE[buf[p] & 15]
        count = int.from_bytes(buf[p + 1 : p + 1 + size], "little", signed=True)
        p += 1 + size
    return count, kind, p


class BcfStream:
    """`bcftools view` of one input descriptor or region, decoded into `SiteBlock`s. Use as a context manager."""

    def __init__(self, source: int | Region) -> None:
        if isinstance(source, Region):
            stdin, args = subprocess.DEVNULL, ["--regions-overlap", "pos", "-r", source.spec, source.path]
        else:
            stdin, args = source, ["-"]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child; see close()
        self._child = subprocess.Popen(  # noqa: S603 - our interpreter and a constant program
            [sys.executable, "-c", _CHILD, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=self._stderr
        )
        assert self._child.stdout is not None
        self._chunks: queue.Queue[bytes | BcfError] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._pump = threading.Thread(target=self._drain, args=(self._child.stdout.fileno(),), daemon=True)
        self._pump.start()
        self._ended = False
        self._buffer = b""
        try:
            self.samples, self.contigs, self._gt_key = self._read_header()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> BcfStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the child if we leave early (an error, unsorted input), and release its pipes."""
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        while self._pump.is_alive():  # unblock a pump waiting for room in the queue
            with contextlib.suppress(queue.Empty):
                self._chunks.get(timeout=0.05)
        assert self._child.stdout is not None
        self._child.stdout.close()
        self._stderr.close()

    def _drain(self, pipe: int) -> None:
        """Read and inflate the child's output in a thread, so bcftools keeps writing while we decode.

        A pipe holds 64 KiB, ~30 records of 1,000 samples: reading it only between decoding passes left
        bcftools blocked most of the time, and the two processes ran in turn instead of side by side.
        `os.read` and zlib release the GIL.
        """
        pending = b""
        try:
            while chunk := os.read(pipe, _PIPE_READ):
                inflated, pending = _inflate_bgzf(pending + chunk)
                if inflated:
                    self._chunks.put(inflated)
            if pending:
                self._chunks.put(BcfError("bcftools output ends within a BGZF block"))
        except (ValueError, zlib.error) as exc:
            self._chunks.put(BcfError(f"bcftools output is not BGZF: {exc}"))
        finally:
            self._chunks.put(b"")

    def _fail(self, what: str) -> BcfError:
        self._child.wait()
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace")
        errors = [line for line in said.splitlines() if line.startswith("[E::")] or said.strip().splitlines()[-1:]
        error = UndeclaredInHeader if "is not defined in the header" in said else BcfError
        return error(f"{what} (bcftools exit {self._child.returncode}: {' '.join(errors) or 'no message'})")

    def _fill(self, need: int) -> bool:
        """Make `self._buffer` hold at least `need` bytes; False at the end of the stream."""
        while len(self._buffer) < need:
            item = b"" if self._ended else self._chunks.get()
            if isinstance(item, BcfError):
                self._ended = True
                if self._child.poll() is None:  # it would block on a pipe nobody reads any more
                    self._child.kill()
                raise self._fail(str(item))
            if not item:
                self._ended = True
                return False
            self._buffer += item
        return True

    def _read_header(self) -> tuple[list[str], list[str], int | None]:
        if not self._fill(9):
            raise self._fail("bcftools wrote no BCF header")
        magic, (text_length,) = self._buffer[:5], struct.unpack_from("<I", self._buffer, 5)
        if magic[:4] != b"BCF\x02":
            raise self._fail(f"bcftools wrote {magic!r}, not BCF 2")
        if not self._fill(9 + text_length):
            raise self._fail("bcftools stopped within the BCF header")
        text = self._buffer[9 : 9 + text_length].rstrip(b"\0").decode()
        self._buffer = self._buffer[9 + text_length :]
        contigs: dict[int, str] = {}
        gt_key = None
        samples: list[str] = []
        for line in text.splitlines():
            if line.startswith("#CHROM"):
                samples = line.split("\t")[9:]
                continue
            match = _IDX.match(line)
            if match is None:
                continue
            kind, name, idx = match.group(1), match.group(2), int(match.group(3))
            if kind == "contig":
                contigs[idx] = name
            elif kind == "FORMAT" and name == "GT":
                gt_key = idx
        names = [contigs.get(i, "") for i in range(max(contigs, default=-1) + 1)]
        return samples, names, gt_key

    def blocks(self) -> Iterator[SiteBlock]:
        """Records in file order, at most `BLOCK_RECORDS` per block; a new block starts when the shape changes."""
        # BCF stores (allele + 1) << 1 | phased, 0 when missing and the type's minimum + 1 as vector end.
        return _group(self._records(), lambda raw: (raw >> 1) - 1)

    def _records(self) -> Iterator[_Record]:
        gt_key = self._gt_key
        more = True
        while more:
            buf = self._buffer
            end = len(buf)
            pos = 0
            while pos + _LENGTHS.size <= end:
                l_shared, l_indiv = _LENGTHS.unpack_from(buf, pos)
                shared_end = pos + _LENGTHS.size + l_shared
                if shared_end + l_indiv > end:
                    break
                chrom, start, rlen, _, allele_info, fmt_sample = _FIXED.unpack_from(buf, pos + _LENGTHS.size)
                count, _, p = _typed_length(buf, pos + _FIXED_END)
                p += count  # ID
                alleles = []
                for _ in range(allele_info >> 16):
                    count, _, p = _typed_length(buf, p)
                    alleles.append(buf[p : p + count].decode())
                    p += count
                n_samples = fmt_sample & 0xFFFFFF
                gt: np.ndarray | None = None
                p = shared_end
                for _ in range(fmt_sample >> 24):
                    key_size = _TYPE_SIZE[buf[p] & 15]
                    key = int.from_bytes(buf[p + 1 : p + 1 + key_size], "little", signed=True)
                    count, kind, p = _typed_length(buf, p + 1 + key_size)
                    if key == gt_key and kind in _INT_TYPES:
                        gt = np.frombuffer(buf, _INT_TYPES[kind], n_samples * count, p).reshape(n_samples, count)
                    p += n_samples * count * _TYPE_SIZE[kind]
                yield chrom, start, start + rlen, alleles, np.empty((n_samples, 0), np.int8) if gt is None else gt
                pos = shared_end + l_indiv
            self._buffer = buf[pos:]
            more = self._fill(len(self._buffer) + 1)
        self._child.wait()
        if self._child.returncode != 0 or self._buffer:
            raise self._fail("bcftools could not read the input" if self._child.returncode else "truncated BCF")


class Cyvcf2Source:
    """Records read by cyvcf2 in this process: ~4x slower, for inputs bcftools cannot write as BCF."""

    def __init__(self, source: int | Region) -> None:
        self._region = source if isinstance(source, Region) else None
        if isinstance(source, Region):
            self._reader = cyvcf2.VCF(source.path, lazy=True)
        else:
            os.lseek(source, 0, os.SEEK_SET)
            self._reader = cyvcf2.VCF(source, lazy=True)
        self.samples: list[str] = list(self._reader.samples)
        self.contigs: list[str] = []  # grows as records name contigs the header may not declare

    def __enter__(self) -> Cyvcf2Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()  # htslib does not take ownership of a descriptor it was handed

    def blocks(self) -> Iterator[SiteBlock]:
        """Same blocks as `BcfStream.blocks`, genotypes from cyvcf2's arrays (last column: the phase flag)."""
        return _group(self._records(), lambda calls: calls[..., :-1])

    def _records(self) -> Iterator[_Record]:
        ids: dict[str, int] = {}
        no_calls = np.empty((len(self.samples), 1), np.int16)
        region = self._region
        for variant in self._reader if region is None else self._reader(region.spec):
            if region is not None and not region.holds(variant.start):
                continue  # htslib returns records overlapping the region; one starting before it is not ours
            contig = ids.get(variant.CHROM)
            if contig is None:
                contig = ids[variant.CHROM] = len(self.contigs)
                self.contigs.append(variant.CHROM)
            try:  # `Variant.FORMAT` segfaults in cyvcf2 0.35, so ask for GT and hear that it is absent
                calls = variant.genotype.array()
            except Exception as absent:
                if "couldn't get genotypes" not in str(absent):
                    raise
                calls = no_calls
            yield contig, variant.start, variant.end, [variant.REF, *variant.ALT], calls


def _group(records: Iterator[_Record], decode: Callable[[np.ndarray], np.ndarray]) -> Iterator[SiteBlock]:
    builder: _BlockBuilder | None = None
    for contig, start, end, alleles, gt in records:
        if builder is not None and not builder.fits(gt):
            yield builder.block(decode)
            builder = None
        if builder is None:
            builder = _BlockBuilder(gt)
        builder.add(contig, start, end, alleles, gt)
        if builder.full:
            yield builder.block(decode)
            builder = None
    if builder is not None:
        yield builder.block(decode)


def _inflate_bgzf(data: bytes) -> tuple[bytes, bytes]:
    """The inflated content of the complete BGZF blocks at the start of `data`, and the bytes left over.

    A block is a gzip member whose BC extra subfield holds its size less one (SAM/BAM specification, 4.1).
    Raw inflate skips the CRC: the bytes come straight from our own child.
    """
    out = []
    p = 0
    while len(data) - p >= 12:
        if data[p : p + 4] != b"\x1f\x8b\x08\x04":
            raise ValueError(f"no BGZF block header at offset {p}")
        extra_end = p + 12 + int.from_bytes(data[p + 10 : p + 12], "little")
        if extra_end > len(data):
            break
        size = None
        q = p + 12
        while q + 4 <= extra_end:
            sub_length = int.from_bytes(data[q + 2 : q + 4], "little")
            if data[q : q + 2] == b"BC":
                size = int.from_bytes(data[q + 4 : q + 6], "little") + 1
            q += 4 + sub_length
        if size is None:
            raise ValueError(f"BGZF block at offset {p} has no BC size")
        if p + size > len(data):
            break
        out.append(zlib.decompress(data[extra_end : p + size - 8], -15))
        p += size
    return b"".join(out), data[p:]


class _BlockBuilder:
    def __init__(self, like: np.ndarray) -> None:
        self._gt = np.empty((BLOCK_RECORDS, *like.shape), like.dtype)
        self._contig: list[int] = []
        self._start: list[int] = []
        self._end: list[int] = []
        self._ref: list[str] = []
        self._alts: list[list[str]] = []

    @property
    def full(self) -> bool:
        return len(self._ref) == BLOCK_RECORDS

    def fits(self, gt: np.ndarray) -> bool:
        return gt.shape == self._gt.shape[1:] and gt.dtype == self._gt.dtype

    def add(self, contig: int, start: int, end: int, alleles: list[str], gt: np.ndarray) -> None:
        self._gt[len(self._ref)] = gt
        self._contig.append(contig)
        self._start.append(start)
        self._end.append(end)
        self._ref.append(alleles[0] if alleles else "")
        self._alts.append(alleles[1:])

    def block(self, decode: Callable[[np.ndarray], np.ndarray]) -> SiteBlock:
        return SiteBlock(
            contig=np.array(self._contig, np.int32),
            start=np.array(self._start, np.int64),
            end=np.array(self._end, np.int64),
            ref=self._ref,
            alts=self._alts,
            genotypes=decode(self._gt[: len(self._ref)]),
        )
