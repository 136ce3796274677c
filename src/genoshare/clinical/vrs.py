"""GA4GH VRS allele ids of variants, computed by ``ga4gh.vrs`` over the configured reference genome.

``ga4gh.vrs`` reads sequences through a data proxy a caller may supply; ``FastaDataProxy`` is one over the
reference FASTA (``genoshare.clinical.reference``) instead of SeqRepo or a refget server, which the node
does not hold. Imported only when a reference is configured: ``ga4gh.vrs`` takes most of a second to load.
"""

from __future__ import annotations

from typing import Any

from ga4gh.core import ga4gh_identify
from ga4gh.vrs import models, normalize
from ga4gh.vrs.dataproxy import _DataProxy

from genoshare.clinical.reference import ReferenceGenome
from genoshare.clinical.variants import Allele
from genoshare.errors import InvalidInput


class FastaDataProxy(_DataProxy):
    """The sequences ``ga4gh.vrs`` asks for, from the reference FASTA (refget ids only)."""

    def __init__(self, reference: ReferenceGenome) -> None:
        self.reference = reference

    def get_sequence(self, identifier: str, start: int | None = None, end: int | None = None) -> str:
        contig = self.reference.contig_of(identifier)
        return self.reference.bases(contig, start or 0, self.reference.length(contig) if end is None else end)

    def get_metadata(self, identifier: str) -> dict[str, Any]:
        contig = self.reference.contig_of(identifier)
        refget = self.reference.refget(contig)
        return {
            "length": self.reference.length(contig),
            "aliases": [f"ga4gh:{refget}", f"{self.reference.assembly}:{contig}"],
        }


def vrs_allele(allele: Allele, reference: ReferenceGenome) -> dict[str, Any]:
    """The allele as a normalised GA4GH VRS 2 Allele, with its computed ``id`` (``ga4gh:VA.…``)."""
    if allele.assembly != reference.assembly:
        raise InvalidInput(f"the configured reference is {reference.assembly}, not {allele.assembly}")
    start = allele.position - 1
    location = models.SequenceLocation(
        sequenceReference=models.SequenceReference(refgetAccession=reference.refget(allele.contig)),
        start=start,
        end=start + len(allele.ref),
    )
    vrs = models.Allele(location=location, state=models.LiteralSequenceExpression(sequence=allele.alt))
    vrs = normalize(vrs, FastaDataProxy(reference))
    vrs.id = ga4gh_identify(vrs)
    return vrs.model_dump(exclude_none=True, mode="json")
