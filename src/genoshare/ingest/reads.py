"""De-identifies BAM/CRAM files record by record, and drops a withdrawn participant's reads.

A header rewrite alone is not enough: every read carries its read group (``RG:Z``, often the sample
name), its name (often the run, flow cell or sample) and any tag a tool or a person added (``CO:Z``
comments with e-mail addresses have been seen).  So a pseudonymised file is rewritten whole:

- read groups get opaque ids (``<pseudonym>.<n>``), ``SM`` the pseudonym, ``LB``/``PU`` opaque values,
  in the header and in every read; of the other fields only ``PL`` (one of the spec's platforms), ``PI``,
  ``KS``, ``FO`` and ``BC`` (numbers and bases) stay: ``CN`` names a centre, which for a small cohort
  narrows who the people are, ``DT`` is a date (a quasi-identifier), ``DS``/``PM`` are free text, and no
  check can tell a person's name from a centre's or a model's; ``@PG`` ids become opaque too
  (``pg1`` ...), in ``ID``, ``PP`` and the reads' ``PG`` tags;
- read names become a keyed hash of the original (``Pseudonymiser.read_namer``): mates keep one name;
  ``MI`` (a free-form molecule id) is hashed the same way, so reads of one molecule still share one;
- a read keeps only the tags the SAM specification defines, with the type and alphabet it gives them
  (``READ_TAG_FORMS``, ``NUMBER_TAGS``): barcodes and UMIs hold bases, qualities ``!``..``~``, CIGARs and
  ``MD`` their grammar, ``SA``/``OA``/``CC`` the header's reference names.  A defined tag whose value breaks
  its form is refused, not dropped: a tag like ``BC:Z:JOHN DOE`` means someone wrote into it by hand, and
  the steward should look at the file before anything of it is published.  ``CO``, ``CT``, ``FS``, ``PT``
  (free text), every locally defined tag (``X?``, ``Y?``, ``Z?``, lower-case) of any type, and any tag the
  specification does not define are dropped;
- ``@CO`` lines go, ``@PG`` lines keep only ``PN``/``VN`` besides their ids (command lines hold file names),
  ``@SQ`` locations lose the directories of local paths.

CRAM is re-encoded with ``embed_ref=2``: htslib builds the reference from the reads and embeds it, so no
external reference is needed here (``REF_PATH`` stays ``:``, nothing is fetched) nor by the file's
readers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pysam

from genoshare.formats import FileFormat
from genoshare.ingest.deidentify import public_location
from genoshare.ingest.errors import IngestError

SQ_KEPT = frozenset({"SN", "LN", "AH", "AN", "AS", "M5", "SP", "TP", "UR"})
PG_KEPT = frozenset({"PN", "VN"})
_BASES = r"[ACGTUNRYKMSWBDHVacgtunrykmswbdhv.=]+"
_BARCODE = rf"{_BASES}(?:-{_BASES})*"  # fragments joined by hyphens, as the spec recommends
_QUALITY = r"[!-~]+"
_CIGAR = r"\*|(?:[0-9]+[MIDNSHP=X])+"
_ALIGNMENTS = rf"(?:[^,;]+,[0-9]+,[+-],(?:{_CIGAR}),[0-9]+,[0-9]*;)+"
_BASE_FORM = (_BASES, "bases")
_BARCODE_FORM = (_BARCODE, "bases, fragments joined by '-'")
_QUALITY_FORM = (_QUALITY, "quality characters '!'..'~' without spaces")
#: The text tags a read keeps, each with the form (pattern, description) the SAM specification gives it.
READ_TAG_FORMS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("BC", "CR", "OX", "RX"), _BARCODE_FORM),
    **dict.fromkeys(("E2", "R2"), _BASE_FORM),
    # 10x-style cell ids end in "-<well>"; a longer or alphabetic suffix could spell anything.
    "CB": (rf"{_BASES}(?:-[0-9]{{1,4}})?", "bases, optionally '-' and a number"),
    "CS": (r"[ACGTNacgtn][0-3.]*", "a primer base and colours 0-3"),
    **dict.fromkeys(("BQ", "BZ", "CQ", "CY", "OQ", "Q2", "QT", "QX", "U2"), _QUALITY_FORM),
    **dict.fromkeys(("MC", "OC"), (_CIGAR, "a CIGAR string")),
    "MD": (r"[0-9]+(?:(?:[A-Z]|\^[A-Z]+)[0-9]+)*", "the MD grammar"),
    "MM": (r"(?:[ACGTUN][-+](?:[mhfcgebaon]+|[0-9]+)[.?]?(?:,[0-9]+)*;)*", "the MM grammar"),
    **dict.fromkeys(("SA", "OA"), (_ALIGNMENTS, "alignments 'rname,pos,strand,CIGAR,mapQ,NM;'")),
    "CC": (r"[^\s]+", "a reference name"),
}
#: Tags whose reference names must be the header's (anything else there is text the header never showed).
_NAMED_REFERENCES = frozenset({"SA", "OA", "CC"})
#: Numeric tags of the specification: integers, and its only numeric arrays.
NUMBER_TAGS = frozenset(
    {"AM", "AS", "CM", "CP", "FI", "H0", "H1", "H2", "HI", "IH", "MN", "MQ", "NH", "NM", "OP", "PQ", "SM", "TC", "UQ"}
)
ARRAY_TAGS = frozenset({"CG", "FZ", "ML"})
_INTEGER_TYPES = frozenset("cCsSiI")
#: Read-group fields kept besides ID/SM/LB/PU/PG (rewritten), each with its form.
RG_FORMS: dict[str, tuple[str, str]] = {
    "PL": (
        "(?i)CAPILLARY|DNBSEQ|ELEMENT|HELICOS|ILLUMINA|IONTORRENT|LS454|ONT|PACBIO|SINGULAR|SOLID|ULTIMA",
        "one of the SAM specification's platforms",
    ),
    "PI": (r"[0-9]+", "a number"),
    "KS": _BASE_FORM,
    "FO": (rf"\*|{_BASES}", "'*' or bases"),
    "BC": _BARCODE_FORM,
}
#: Read tags whose values the header declares; they are replaced by the header's new values.
DECLARED_TAGS = ("RG", "LB", "PU", "PG")
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
        header, values = _deidentified_header(source, reads.header.to_dict(), names)
        references = frozenset(reads.references)
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
                    elif tag == "MI":
                        read.set_tag(tag, _molecule(str(value), read_name), "Z")
                    elif not _kept(tag, value, kind, references, source, number):
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


def _kept(tag: str, value: Any, kind: str, references: Collection[str], source: Path, number: int) -> bool:
    """Whether a read keeps this tag (module docstring); a defined tag that breaks its form is refused."""
    if tag in NUMBER_TAGS:
        expected, fits = "an integer", kind in _INTEGER_TYPES
    elif tag in ARRAY_TAGS:
        expected, fits = "a numeric array", kind == "B"
    elif tag == "TS":
        expected, fits = "'+' or '-'", kind == "A" and value in ("+", "-")
    elif tag in READ_TAG_FORMS:
        pattern, expected = READ_TAG_FORMS[tag]
        fits = kind == "Z" and re.fullmatch(pattern, str(value)) is not None
        if fits and tag in _NAMED_REFERENCES:
            named = [part.split(",", 1)[0] for part in str(value).split(";") if part]
            fits = all(name in references or (tag == "CC" and name == "=") for name in named)
            expected += " naming the header's references"
    else:
        return False
    if not fits:
        raise IngestError(source, _broken(tag, expected), f"record {number}")
    return True


def _broken(tag: str, expected: str) -> str:
    # The value itself stays out of the message: it may be the very identifier refused.
    return (
        f"tag {tag} does not hold {expected}, as the SAM specification defines it; "
        f"correct it or remove it (samtools view --remove-tag {tag})"
    )


def _molecule(value: str, read_name: Callable[[str], str]) -> str:
    """An opaque ``MI`` value: the keyed hash of the id, keeping a duplex ``/A`` or ``/B`` strand suffix."""
    base, strand = (value[:-2], value[-2:]) if value[-2:] in ("/A", "/B") else (value, "")
    return read_name(base) + strand


def _deidentified_header(
    source: Path, header: dict[str, Any], names: dict[str, str]
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The new header, and for each declared tag the map from old values to new ones."""
    values: dict[str, dict[str, str]] = {tag: {} for tag in DECLARED_TAGS}
    out: dict[str, Any] = {key: header[key] for key in ("HD",) if key in header}
    out["SQ"] = [
        {key: public_location(value) if key == "UR" else value for key, value in line.items() if key in SQ_KEPT}
        for line in header.get("SQ", [])
    ]
    per_owner: Counter[str] = Counter()
    groups: list[dict[str, str]] = []
    for line, group in enumerate(header.get("RG", []), start=1):
        owner = names[group["SM"]] if "SM" in group else "RG"
        per_owner[owner] += 1
        new = {"ID": f"{owner}.{per_owner[owner]}"}
        values["RG"][group["ID"]] = new["ID"]
        if "SM" in group:
            new["SM"] = owner
        for tag in ("LB", "PU", "PG"):
            if tag in group:
                new[tag] = _opaque(values[tag], tag, group[tag])
        for key, (pattern, expected) in RG_FORMS.items():
            if key in group:
                if re.fullmatch(pattern, str(group[key])) is None:
                    problem = f"field {key} does not hold {expected}; correct or remove it (samtools reheader)"
                    raise IngestError(source, problem, f"@RG line {line}")
                new[key] = group[key]
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
