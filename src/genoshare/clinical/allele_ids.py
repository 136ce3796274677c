"""GA4GH VRS ids of a dataset's variants, for the Beacon's look-up by VRS id (``genoshare.beacon.vrs``).

Beside ``genoshare.clinical.vrs`` rather than in it: ``ga4gh.vrs`` takes most of a second to load, so it is
imported on the first id computed, not when a server builds its Beacon.
"""

from __future__ import annotations

from genoshare.clinical.reference import ReferenceGenome
from genoshare.clinical.variants import Allele


class ReferenceAlleleIds:
    """GA4GH VRS ids of VCF alleles over one reference genome (``genoshare.beacon.vrs.AlleleIds``)."""

    def __init__(self, reference: ReferenceGenome) -> None:
        self.reference = reference

    @property
    def assembly(self) -> str:
        return self.reference.assembly

    @property
    def source(self) -> str:
        return self.reference.path.name

    def has(self, contig: str) -> bool:
        return contig in self.reference

    def allele_id(self, contig: str, position: int, ref: str, alt: str) -> str:
        from genoshare.clinical.vrs import vrs_allele

        return str(vrs_allele(Allele(self.reference.assembly, contig, position, ref, alt), self.reference)["id"])
