"""Clinical variant lookup: what is known about this variant here, and who else has it.

One variant (``genoshare.clinical.variants``) gives: the gene (from the loaded annotation, else the node's
gene table), its clinical significance from each annotation source the steward loaded, with the source's
release date and review status, and the node's own counts per dataset at the caller's granularity. The
counts come from the Beacon (``genoshare.beacon.alleles``), handed in by the composition root: one path to
the genotypes, with its access decisions and privacy defences, never a second one around them.

With a reference genome configured (``clinical.reference_fasta``), HGVS indels are read and the answer
gives the variant's GA4GH VRS allele (``variant.vrs``, with its computed id), so that it can be matched
with VRS-keyed sources elsewhere.

The portal calls ``ClinicalLookup.lookup`` as the API and the CLI do.
"""

from __future__ import annotations

from typing import Any, Protocol

from genoshare.access.passports import Identity
from genoshare.clinical.annotations import AnnotationStore
from genoshare.clinical.reference import ReferenceGenome
from genoshare.clinical.variants import Allele, parse_allele


class AlleleCounts(Protocol):
    """The node's counts of one allele per dataset (``genoshare.beacon.alleles.BeaconAlleles``)."""

    def counts(
        self, identity: Identity | None, assembly: str, contig: str, position: int, ref: str, alt: str
    ) -> list[dict[str, Any]]: ...

    def genes(self, assembly: str, contig: str, position: int) -> list[str]: ...


class ClinicalLookup:
    def __init__(
        self, annotations: AnnotationStore, alleles: AlleleCounts, reference: ReferenceGenome | None = None
    ) -> None:
        self.annotations = annotations
        self.alleles = alleles
        self.reference = reference

    def lookup(self, variant: str, identity: Identity | None, assembly: str = "GRCh38") -> dict[str, Any]:
        """The lookup's answer for a variant as text (VCF coordinates or HGVS genomic)."""
        allele = parse_allele(variant, assembly, self.reference)
        return self.lookup_allele(allele, identity)

    def lookup_allele(self, allele: Allele, identity: Identity | None) -> dict[str, Any]:
        known = self.annotations.find(allele)
        genes = sorted({a.gene for a in known if a.gene}) or self.alleles.genes(
            allele.assembly, allele.contig, allele.position
        )
        datasets = self.alleles.counts(
            identity, allele.assembly, allele.contig, allele.position, allele.ref, allele.alt
        )
        described: dict[str, Any] = {
            "assembly": allele.assembly,
            "referenceName": allele.contig,
            "position": allele.position,
            "referenceBases": allele.ref,
            "alternateBases": allele.alt,
            "label": allele.label,
        }
        reference = self.reference
        if reference is not None and reference.assembly == allele.assembly and allele.contig in reference:
            from genoshare.clinical.vrs import vrs_allele  # ga4gh.vrs loads in most of a second: only when used

            described["vrs"] = vrs_allele(allele, reference)
        return {
            "variant": described,
            "genes": genes,
            "clinicalSignificance": [annotation.as_dict() for annotation in known],
            "datasets": datasets,
            # Said outright, so that an empty list is never read as "not pathogenic" or "nobody has it".
            "notes": _notes(known, datasets),
        }


def _notes(known: list[Any], datasets: list[dict[str, Any]]) -> list[str]:
    notes = []
    if not known:
        notes.append("no loaded annotation source has this variant: its clinical significance is not known here")
    if not datasets:
        notes.append("no dataset of this node has variant data on this assembly")
    elif not any(d["consulted"] for d in datasets):
        notes.append("no dataset was consulted for you: see each dataset's reason and what access would help")
    return notes
