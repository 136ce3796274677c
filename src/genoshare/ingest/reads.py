"""De-identifies BAM/CRAM files record by record, and drops a withdrawn participant's reads.

A header rewrite alone is not enough: every read carries its read group (``RG:Z``, often the sample
name), its name (often the run, flow cell or sample) and any tag a tool or a person added (``CO:Z``
comments with e-mail addresses have been seen).  So a pseudonymised file is rewritten whole:

- read groups get opaque ids (``<pseudonym>.<n>``), ``SM`` the pseudonym, ``LB``/``PU`` opaque values,
  in the header and in every read; ``DS`` and unknown fields are dropped; ``@PG`` ids become opaque too
  (``pg1`` ...), in ``ID``, ``PP`` and the reads' ``PG`` tags;
- read names become a keyed hash of the original (``Pseudonymiser.read_namer``): mates keep one name;
- of the tags that can hold text (``Z``, ``H``, ``B``), only those the SAM specification defines as
  sequences, qualities, CIGARs, barcodes or alignments are kept; ``CO``, ``CT`` and every tool's own
  ``X?``/``Y?``/``Z?``/lower-case text tag are dropped; numbers and single characters are kept;
- ``@CO`` lines go, ``@PG`` lines keep only ``PN``/``VN`` besides their ids (command lines hold file names),
  ``@SQ`` locations lose the directories of local paths.

CRAM is re-encoded with ``embed_ref=2``: htslib builds the reference from the reads and embeds it, so no
external reference is needed here (``REF_PATH`` stays ``:``, nothing is fetched) nor by the file's
readers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pysam

from genoshare.formats import FileFormat
from genoshare.ingest.deidentify import public_location
from genoshare.ingest.errors import IngestError

SQ_KEPT = frozenset({"SN", "LN", "AH", "AN", "AS", "M5", "SP", "TP", "UR"})
RG_KEPT = frozenset({"PL", "PM", "PI", "KS", "FO", "CN", "DT", "BC"})
PG_KEPT = frozenset({"PN", "VN"})
#: Read tags able to hold text that are kept: the SAM specification's structured ones.
TEXT_TAGS_KEPT = frozenset(
    {
        *("BC", "BQ", "BZ", "CB", "CC", "CG", "CQ", "CR", "CS", "CY", "E2", "FS", "FZ", "MC", "MD", "MI", "ML"),
        *("MM", "OA", "OC", "OQ", "OX", "Q2", "QT", "QX", "R2", "RX", "SA", "U2"),
    }
)
#: Read tags whose values the header declares; they are replaced by the header's new values.
DECLARED_TAGS = ("RG", "LB", "PU", "PG")
_TEXT_TYPES = frozenset("ZHB")
_REPORT_EVERY = 100_000
_UNDECLARED = "its RG tag names a read group the header does not declare; add the @RG line"
_UNATTRIBUTED = (
    "a read without an RG tag, in a file of several samples, belongs to no one sample; "
    "tag every read (samtools addreplacerg)"
)


def deidentify_reads(
    source: Path,
    target: Path,
    fmt: FileFormat,
    names: dict[str, str],
    read_name: Callable[[str], str],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write ``source`` to ``target`` with its header and every record de-identified (module docstring).

    ``progress`` gets (bytes read, total bytes) now and then: a whole genome takes hours.
    """
    size = source.stat().st_size
    with pysam.AlignmentFile(str(source), require_index=False, check_sq=False) as reads:
        header, values = _deidentified_header(reads.header.to_dict(), names)
        several = len(set(names)) > 1
        with _writer(target, fmt, header) as out:
            for number, read in enumerate(reads.fetch(until_eof=True), start=1):
                if read.query_name is not None:
                    read.query_name = read_name(read.query_name)
                for tag, value, kind in read.get_tags(with_value_type=True):
                    if tag in values:
                        # An undeclared LB/PU/PG value may be anything; an undeclared RG is nobody's read.
                        new = values[tag].get(str(value))
                        if new is None and tag == "RG":
                            raise IngestError(source, _UNDECLARED, f"record {number}")
                        read.set_tag(tag, new, "Z")
                    elif kind in _TEXT_TYPES and tag not in TEXT_TAGS_KEPT:
                        read.set_tag(tag, None)
                if several and not read.has_tag("RG"):
                    raise IngestError(source, _UNATTRIBUTED, f"record {number}")
                out.write(read)
                # CRAM offsets are container offsets, not BGZF virtual ones: it reports at the end only.
                if progress and fmt is FileFormat.BAM and number % _REPORT_EVERY == 0:
                    progress(reads.tell() >> 16, size)
    if progress:
        progress(size, size)


def keep_samples(source: Path, target: Path, fmt: FileFormat, keep: Collection[str]) -> int:
    """Write the reads of the read groups whose ``SM`` is in ``keep``; returns how many were written.

    The other read groups leave the header too (their ``SM`` is a withdrawn person's pseudonym); reads
    without a read group cannot be attributed to anyone still consenting, so they go as well.
    """
    with pysam.AlignmentFile(str(source), require_index=False, check_sq=False) as reads:
        header = reads.header.to_dict()
        groups = [group for group in header.pop("RG", []) if group.get("SM") in keep]
        if groups:
            header["RG"] = groups
        kept = {group["ID"] for group in groups}
        written = 0
        with _writer(target, fmt, header) as out:
            for read in reads.fetch(until_eof=True):
                if read.has_tag("RG") and read.get_tag("RG") in kept:
                    out.write(read)
                    written += 1
    return written


def _deidentified_header(
    header: dict[str, Any], names: dict[str, str]
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The new header, and for each declared tag the map from old values to new ones."""
    values: dict[str, dict[str, str]] = {tag: {} for tag in DECLARED_TAGS}
    out: dict[str, Any] = {key: header[key] for key in ("HD",) if key in header}
    out["SQ"] = [
        {key: public_location(value) if key == "UR" else value for key, value in line.items() if key in SQ_KEPT}
        for line in header.get("SQ", [])
    ]
    per_owner: Counter[str] = Counter()
    groups = []
    for group in header.get("RG", []):
        owner = names[group["SM"]] if "SM" in group else "RG"
        per_owner[owner] += 1
        new = {"ID": f"{owner}.{per_owner[owner]}"}
        values["RG"][group["ID"]] = new["ID"]
        if "SM" in group:
            new["SM"] = owner
        for tag in ("LB", "PU", "PG"):
            if tag in group:
                new[tag] = _opaque(values[tag], tag, group[tag])
        new.update({key: value for key, value in group.items() if key in RG_KEPT})
        groups.append(new)
    if groups:
        out["RG"] = groups
    programs = []
    for line in header.get("PG", []):
        program = {key: _opaque(values["PG"], "PG", line[key]) for key in ("ID", "PP") if key in line}
        programs.append(program | {key: value for key, value in line.items() if key in PG_KEPT})
    if programs:
        out["PG"] = programs
    return out, values


def _opaque(known: dict[str, str], tag: str, value: str) -> str:
    """The new value standing for ``value``: the same one each time it recurs, ``lb1``, ``lb2`` ..."""
    return known.setdefault(value, f"{tag.lower()}{len(known) + 1}")


def _writer(target: Path, fmt: FileFormat, header: dict[str, Any]) -> pysam.AlignmentFile:
    if fmt is FileFormat.CRAM:
        return pysam.AlignmentFile(str(target), "wc", header=header, format_options=["embed_ref=2"])
    return pysam.AlignmentFile(str(target), "wb", header=header)
