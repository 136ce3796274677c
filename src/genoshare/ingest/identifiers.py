"""Finds direct identifiers in header text and metadata values, with bounded work per line.

Every pattern runs in linear time: each one starts only at a token boundary (a look-behind) and its
repetitions are bounded, so a long line costs one pass per pattern, not one pass per start position (the
former e-mail pattern backtracked quadratically: a 200 MiB header line ran for minutes).  Lines longer than
:data:`MAX_HEADER_LINE` are refused before any pattern sees them; :func:`check_raw_header` does this while
streaming the file, before htslib loads the header into memory.

The patterns find what has a shape (e-mail, phone, national and record numbers, postal addresses) or a
label (``Patient: John Smith``, ``Dr. Jane Doe``, ``DOB``).  Free text without either cannot be judged
here; pseudonymised datasets therefore store only the header lines of a known-safe set (see
``genoshare.ingest.deidentify`` and ``genoshare.ingest.reads``).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

from genoshare.formats import FileFormat
from genoshare.ingest.errors import IngestError

#: Longest header line accepted.  VEP ``CSQ`` descriptions and GATK command lines run to a few KiB; the
#: ``#CHROM`` line of a VCF, which grows with the number of samples, is exempt.
MAX_HEADER_LINE = 1 << 20
#: Largest header accepted (the text htslib would hold in memory).
MAX_HEADER_BYTES = 256 << 20

_TITLE = r"[A-Z][a-z'-]{1,30}"
_STREET = (
    r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way|Court|Ct|Place|Pl|Terrace|Close|"
    r"Crescent|Square|Sq|Highway|Hwy|Parkway|Pkwy|Gardens|Grove|Mews|Row|Walk"
)

#: Direct identifiers that must never reach a stored header or record; a match stops the ingest.
IDENTIFIER_PATTERNS: dict[str, re.Pattern[str]] = {
    "an e-mail address": re.compile(
        r"(?<![\w.%+-])[\w.%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z])"
    ),
    "a US social security number": re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"),
    "an NHS number": re.compile(r"(?<!\d)\d{3} \d{3} \d{4}(?!\d)"),
    "a phone number": re.compile(
        r"(?<![\w+.-])(?:"
        # international: +44 20 7946 0958, +1-617-555-0100
        r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,4}"
        # North American: (617) 555-0100, 617-555-0100, 617.555.0100
        r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}([.-])\d{3}\1\d{4}"
        # national with a trunk 0: 020 7946 0958, 07700 900123
        r"|0\d{2,4} \d{3,4}(?: \d{3,4})?"
        r")(?![\w.-])"
        r"|(?i:\b(?:phone|tel|telephone|mobile|cell|fax)\b)\W{0,3}\+?\(?\d"
    ),
    "a postal address": re.compile(
        rf"\b\d{{1,5}}[A-Za-z]?,? (?:{_TITLE} ){{1,4}}(?:{_STREET})\b"
        # UK postcode: SW1A 1AA, NW1 6XE
        r"|\b[A-Z]{1,2}\d[A-Z\d]? \d[ABD-HJLNP-UW-Z]{2}\b"
        # US city, state and ZIP: Boston, MA 02115
        r"|, ?[A-Z]{2} \d{5}(?:-\d{4})?\b"
        r"|(?i:\b(?:address|street|postcode|post code|zip ?code)\b) ?[:=]"
    ),
    "a medical record number": re.compile(
        r"(?i:\b(?:mrn|medical[ _-]?record(?:[ _-]?(?:number|no|num|id))?|hospital[ _-]?(?:number|no|id)|"
        r"patient[ _-]?(?:id|number|no)|chi[ _-]?number)\b)\W{0,3}[A-Za-z]{0,4}-?\d"
    ),
    "a person's name": re.compile(
        rf"\b(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Sir|Dame)\.? {_TITLE}"
        r"|(?i:\b(?:patient|name|full[ _-]?name|first[ _-]?name|last[ _-]?name|surname|given[ _-]?name|"
        r"family[ _-]?name|proband|donor|physician|doctor|clinician|consultant|referred by)\b)"
        rf" ?[:=] ?\"?{_TITLE}(?:,? {_TITLE}){{1,3}}"
    ),
    "a date of birth": re.compile(
        r"(?i)\b(?:date[ _-]?of[ _-]?birth|dob|birth[ _-]?date)\b|(?i:\bborn\b) ?(?:on )?[:=]? ?\d"
    ),
}


def find_identifier(text: str) -> str | None:
    """The kind of the first direct identifier in ``text`` (the value itself is never returned)."""
    for kind, pattern in IDENTIFIER_PATTERNS.items():
        if pattern.search(text):
            return kind
    return None


def check_for_identifiers(path: Path, header: str) -> None:
    """Refuse a file whose parsed header holds a direct identifier or a line too long to judge.

    The message names the line and the kind of identifier, never the value.
    """
    for number, line in enumerate(header.splitlines(), start=1):
        if len(line) > MAX_HEADER_LINE and not line.startswith("#CHROM"):
            raise IngestError(path, _too_long(number))
        kind = find_identifier(line)
        if kind is not None:
            raise IngestError(path, f"header line {number} holds {kind}; remove it before ingest")


def check_raw_header(source: Path, fmt: FileFormat, shown_as: Path) -> None:
    """Refuse a direct identifier, a line too long to judge or a huge header, before htslib parses it.

    Each line is read as the file holds it (line numbers are the file's), with bounded reads.  VCF, BCF
    and BAM only: a CRAM header sits in a container only htslib reads, so CRAM headers are checked once
    parsed, by :func:`check_for_identifiers`.  ``shown_as`` is the file's name in messages.
    """
    try:
        with gzip.open(source, "rb") as stream:
            if fmt is FileFormat.VCF:
                _check_lines(shown_as, stream, None)
                return
            magic = stream.read(4)
            if fmt is FileFormat.BCF:
                stream.read(1)
            (length,) = struct.unpack("<I", stream.read(4))
            if length > MAX_HEADER_BYTES:
                raise IngestError(shown_as, _TOO_BIG)
            if magic in (b"BAM\1", b"BCF\2"):
                _check_lines(shown_as, stream, length)
    except (OSError, EOFError, struct.error, zlib.error):
        return  # not readable as BGZF: the validation that follows says what is wrong


def _check_lines(path: Path, stream: gzip.GzipFile, length: int | None) -> None:
    """Read header lines, each with a bounded read, and check each.

    ``length`` is the header's size in bytes; None for VCF, whose header ends at the first line that does
    not start with ``#``.
    """
    number, total = 0, 0
    while length is None or total < length:
        limit = MAX_HEADER_LINE + 1 if length is None else min(MAX_HEADER_LINE + 1, length - total)
        line = stream.readline(limit)
        if not line or (length is None and not line.startswith(b"#")):
            return
        number, total = number + 1, total + len(line)
        # The #CHROM line grows with the number of samples: only the header's size bounds it.
        while line.startswith(b"#CHROM") and not line.endswith(b"\n") and total <= MAX_HEADER_BYTES:
            more = stream.readline(MAX_HEADER_LINE)
            if not more:
                break
            line, total = line + more, total + len(more)
        if total > MAX_HEADER_BYTES:
            raise IngestError(path, _TOO_BIG)
        if len(line) > MAX_HEADER_LINE and not line.startswith(b"#CHROM"):
            raise IngestError(path, _too_long(number))
        kind = find_identifier(line.decode("utf-8", "replace").rstrip("\r\n\0"))
        if kind is not None:
            raise IngestError(path, f"header line {number} holds {kind}; remove it before ingest")


_TOO_BIG = f"the header is more than {MAX_HEADER_BYTES} bytes; refused"


def _too_long(number: int) -> str:
    return (
        f"header line {number} is longer than {MAX_HEADER_LINE} bytes, too long to check for identifiers; "
        "shorten or remove it before ingest"
    )
