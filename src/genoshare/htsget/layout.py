"""Where a data file's header stops, where its body stops, and which references its header declares.

This is the only part of the engine that reads the data file itself, once per file (the result is cached):
the first BGZF blocks until the header is complete, the last bytes to see whether an EOF marker is there,
and, for VCF/BCF/CRAM, the header text through pysam to learn reference names and ids.

The file is read through an ``Opener`` (``open`` by default), so a node can hand in a decrypting reader
for files kept Crypt4GH-encrypted at rest; pysam then sees only the header, rebuilt in an anonymous
in-memory file, never a decrypted copy of the data on disk.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pysam

from genoshare.formats import FileFormat
from genoshare.htsget import bgzf, cram
from genoshare.htsget.errors import CorruptFile, NotFound


@dataclass(frozen=True, slots=True)
class FileLayout:
    #: End of the header: a BGZF virtual offset, or a plain byte offset for CRAM.
    header_end: int
    #: Byte offset where the trailing EOF marker/container starts, or the file size if it has none.
    body_end: int
    #: Reference name -> id as the file header numbers them.
    references: dict[str, int]


#: Opens a data file for reading its (plaintext) bytes; must return a seekable binary handle.
Opener = Callable[[Path], BinaryIO]


def open_plain(path: Path) -> BinaryIO:
    return open(path, "rb")


def read_layout(fmt: FileFormat, path: Path, opener: Opener = open_plain) -> FileLayout:
    try:
        with opener(path) as handle:
            size = handle.seek(0, os.SEEK_END)
            if fmt is FileFormat.CRAM:
                header_end = cram.header_end(handle)
                handle.seek(max(size - len(cram.EOF_CONTAINER), 0))
                has_eof = handle.read() == cram.EOF_CONTAINER
                body_end = size - len(cram.EOF_CONTAINER) if has_eof else size
                handle.seek(0)
                header_file = handle.read(header_end) + cram.EOF_CONTAINER
                return FileLayout(header_end, body_end, _pysam_references(fmt, path, header_file))
            header_end, header = _bgzf_header(fmt, handle, size)
            body_end = size - len(bgzf.EOF_MARKER) if bgzf.ends_with_eof(handle, size) else size
    except FileNotFoundError as exc:
        raise NotFound(f"data file {path.name} does not exist") from exc
    if fmt is FileFormat.BAM:
        references = _bam_references(header)
    else:
        references = _pysam_references(fmt, path, bgzf.compress(header) + bgzf.EOF_MARKER)
    return FileLayout(header_end, body_end, references)


def _bgzf_header(fmt: FileFormat, handle: BinaryIO, size: int) -> tuple[int, bytes]:
    """Inflate blocks until the header is whole; returns its end as a virtual offset, and its bytes."""
    measure = {FileFormat.BAM: _bam_header_length, FileFormat.BCF: _bcf_header_length}.get(fmt, _vcf_header_length)
    buffer = bytearray()
    for coffset, block_size, payload in bgzf.iter_blocks(handle, size):
        block_start = len(buffer)
        buffer += payload
        length = measure(buffer, at_end=coffset + block_size >= size)
        if length is None:
            continue
        if length == len(buffer):
            return bgzf.join(coffset + block_size, 0), bytes(buffer)
        return bgzf.join(coffset, length - block_start), bytes(buffer[:length])
    length = measure(buffer, at_end=True)
    if length is None:
        raise CorruptFile(f"{fmt} file ends inside its header")
    return bgzf.join(size, 0), bytes(buffer)


def _bam_header_length(buffer: bytearray, at_end: bool) -> int | None:
    if len(buffer) >= 4 and buffer[:4] != b"BAM\1":
        raise CorruptFile("BAM file does not start with the BAM magic")
    try:
        (l_text,) = struct.unpack_from("<I", buffer, 4)
        pos = 8 + l_text
        (n_ref,) = struct.unpack_from("<I", buffer, pos)
        pos += 4
        for _ in range(n_ref):
            (l_name,) = struct.unpack_from("<I", buffer, pos)
            pos += 4 + l_name + 4
    except struct.error:
        pos = len(buffer) + 1
    if pos <= len(buffer):
        return pos
    if at_end:
        raise CorruptFile("BAM file ends inside its header")
    return None


def _bcf_header_length(buffer: bytearray, at_end: bool) -> int | None:
    if len(buffer) >= 4 and buffer[:4] != b"BCF\2":
        raise CorruptFile("BCF file does not start with the BCF2 magic")
    if len(buffer) >= 9:
        end = 9 + struct.unpack_from("<I", buffer, 5)[0]
        if end <= len(buffer):
            return end
    if at_end:
        raise CorruptFile("BCF file ends inside its header")
    return None


def _vcf_header_length(buffer: bytearray, at_end: bool) -> int | None:
    """The header is every leading line starting with '#'; it ends where the first record line begins."""
    if (len(buffer) >= 2 or at_end) and not buffer.startswith(b"##"):
        raise CorruptFile("VCF file does not start with '##'")
    newline = buffer.find(b"\n")
    while newline != -1:
        if newline + 1 == len(buffer):
            break
        if buffer[newline + 1] != ord("#"):
            return newline + 1
        newline = buffer.find(b"\n", newline + 1)
    return len(buffer) if at_end else None


def _bam_references(header: bytes) -> dict[str, int]:
    (l_text,) = struct.unpack_from("<I", header, 4)
    pos = 12 + l_text
    references: dict[str, int] = {}
    while pos < len(header):
        (l_name,) = struct.unpack_from("<I", header, pos)
        references[header[pos + 4 : pos + 3 + l_name].decode(errors="replace")] = len(references)
        pos += 8 + l_name
    return references


def _pysam_references(fmt: FileFormat, path: Path, header_file: bytes) -> dict[str, int]:
    """Reference ids as htslib assigns them; for BCF only htslib knows (``IDX`` may renumber contigs).

    ``header_file`` is the header alone as a valid (empty) file; htslib reads it from an anonymous memory
    file, because the data file itself may be encrypted at rest.
    """
    fd = os.memfd_create("htsget-header", os.MFD_CLOEXEC)
    # htslib would complain on stderr that the memory file has no index next to it; it needs none.
    verbosity = pysam.set_verbosity(0)
    try:
        os.write(fd, header_file)
        os.lseek(fd, 0, os.SEEK_SET)
        memory_path = f"/proc/self/fd/{fd}"
        if fmt is FileFormat.CRAM:
            with pysam.AlignmentFile(memory_path, "rc") as reads:
                return {name: tid for tid, name in enumerate(reads.references)}
        with pysam.VariantFile(memory_path) as variants:
            return {str(name): contig.id for name, contig in variants.header.contigs.items()}
    except (OSError, ValueError) as exc:
        raise CorruptFile(f"cannot read the {fmt} header of {path.name}: {exc}") from exc
    finally:
        pysam.set_verbosity(verbosity)
        os.close(fd)
