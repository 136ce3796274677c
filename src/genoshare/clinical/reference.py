"""A reference genome the steward configures (``clinical.reference_fasta``): bases, and GA4GH ids of alleles.

Two things need the reference sequence itself. An HGVS deletion, insertion or duplication becomes a VCF
record only with the base before it, and only after shifting it as far left as the sequence allows
(VCF's convention, HGVS shifts right), so that the node finds the record its VCFs hold. And a GA4GH VRS
allele id is a digest over the refget id of the sequence (itself a digest of the whole chromosome) and
the allele, normalised against the sequence: ``genoshare.clinical.vrs`` has ``ga4gh.vrs`` compute it over
this reference.

The FASTA is read with pysam (``.fai`` beside it, made by ``samtools faidx`` or by pysam on first use; a
bgzipped FASTA also needs its ``.gzi``). Contigs are matched whatever their naming (``chr1`` or ``1``,
``chrM`` or ``MT``). A chromosome's refget id is computed the first time it is needed (a second or two
for a large chromosome) and kept for the process.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pysam

from genoshare.clinical.variants import normalise_contig
from genoshare.errors import InvalidInput

#: Bases read at a time when digesting a chromosome.
_CHUNK = 8 * 1024 * 1024


class ReferenceGenome:
    """One assembly's sequences, from a FASTA file."""

    def __init__(self, path: Path, assembly: str) -> None:
        try:
            self._fasta = pysam.FastaFile(str(path))
        except (OSError, ValueError) as error:
            raise InvalidInput(f"cannot read the reference FASTA {path}: {error}") from None
        self.path = path
        self.assembly = assembly
        self._names = {normalise_contig(name): name for name in self._fasta.references}
        self._lock = threading.Lock()  # a pysam handle is not safe to share between threads
        self._digests: dict[str, str] = {}

    def __contains__(self, contig: object) -> bool:
        return isinstance(contig, str) and normalise_contig(contig) in self._names

    def length(self, contig: str) -> int:
        return int(self._fasta.get_reference_length(self._name(contig)))

    def bases(self, contig: str, start: int, end: int) -> str:
        """The sequence from 0-based ``start`` to ``end`` (exclusive), upper case."""
        if start < 0 or end > self.length(contig) or start > end:
            raise InvalidInput(f"{start + 1}-{end} is outside {contig} ({self.length(contig)} bases) in the reference")
        with self._lock:
            return str(self._fasta.fetch(self._name(contig), start, end)).upper()

    def refget(self, contig: str) -> str:
        """The GA4GH refget id of a contig (``SQ.`` + sha512t24u of its upper-case sequence)."""
        name = self._name(contig)
        if name not in self._digests:
            digest = hashlib.sha512()
            length = self.length(contig)
            for start in range(0, length, _CHUNK):
                digest.update(self.bases(contig, start, min(start + _CHUNK, length)).encode("ascii"))
            self._digests[name] = "SQ." + base64.urlsafe_b64encode(digest.digest()[:24]).decode("ascii")
        return self._digests[name]

    def contig_of(self, refget: str) -> str:
        """The contig whose refget id this is (``SQ.…`` or ``ga4gh:SQ.…``); KeyError if none here."""
        wanted = refget.removeprefix("ga4gh:")
        for contig in self._names:
            if self.refget(contig) == wanted:
                return contig
        raise KeyError(refget)

    def _name(self, contig: str) -> str:
        name = self._names.get(normalise_contig(contig))
        if name is None:
            raise InvalidInput(f"contig {contig} is not in the reference {self.path.name} ({self.assembly})")
        return name
