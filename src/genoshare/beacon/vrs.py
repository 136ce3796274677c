"""``g_variants/{id}`` by GA4GH VRS Allele id (``ga4gh:VA.…``), beside the node's own ``contig:start:ref:alt``.

Beacon v2 looks one variant up by "its (unique) id" (``getOneGenomicVariation``); a clinician often holds a
variant as a VRS id, from ClinVar, gnomAD or another VRS-keyed source. A VRS id is a digest of the allele
normalised against the reference sequence (and of that sequence's refget id), so it cannot be read back
into coordinates: the node computes the VRS id of each variant it holds, as vrs-python does, with the
reference genome the steward configured (``clinical.reference_fasta``), and looks the asked id up among them.

Each dataset's ids are computed the first time a caller who may look its variants up asks (0.35-0.55 ms a
variant), and kept while its index is served. Without a reference, or for variants on an assembly or contig
the reference lacks, the node cannot say whether it holds the allele: that is a one-line error naming what
is missing, never an empty answer.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from genoshare.beacon.catalog import ServedIndex
from genoshare.beacon.errors import EntryNotFound
from genoshare.beacon.variants import VariantQuery, canonical_assembly
from genoshare.errors import GenoshareError
from genoshare.index.serving import VariantRow

_VRS_ALLELE = re.compile(r"ga4gh:VA\.[A-Za-z0-9_-]{32}")
_BASES = re.compile(r"[ACGTN]+")
#: A query that no variant matches (an empty window): a VRS id no dataset here holds.
NOTHING = VariantQuery(overlap=(0, 0))


class VrsUnavailable(GenoshareError):
    """The node cannot say whether it holds a VRS id (no reference sequence): not a "no" (501)."""

    status_code = 501
    code = "NotImplemented"


class AlleleIds(Protocol):
    """VRS ids of VCF-style alleles over one reference genome (``genoshare.clinical.allele_ids``)."""

    @property
    def assembly(self) -> str: ...
    @property
    def source(self) -> str: ...
    def has(self, contig: str) -> bool: ...
    def allele_id(self, contig: str, position: int, ref: str, alt: str) -> str:
        """The ``ga4gh:VA.…`` id of the allele at 1-based ``position``, normalised as vrs-python does."""
        ...


def is_vrs_id(entry_id: str) -> bool:
    return entry_id.startswith("ga4gh:")


@dataclass
class _Computed:
    """One served index's variants by VRS id, and the contigs whose variants have none (no sequence)."""

    ids: dict[str, tuple[str, int, str, str]] = field(default_factory=dict)
    without_sequence: set[str] = field(default_factory=set)


class VrsLookup:
    """The variant of a dataset with a given VRS id, over the configured reference genome."""

    def __init__(self, alleles: AlleleIds | None) -> None:
        self.alleles = alleles
        self._computed: weakref.WeakKeyDictionary[object, _Computed] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def check(self, entry_id: str) -> None:
        """Before any data is read: a malformed id, or a node that cannot look any VRS id up, is an error."""
        if not _VRS_ALLELE.fullmatch(entry_id):
            raise EntryNotFound(
                f"{entry_id!r} is not a GA4GH VRS Allele id (ga4gh:VA. and 32 characters) nor a variant id of "
                "this Beacon (contig:start:ref:alt)"
            )
        if self.alleles is None:
            raise VrsUnavailable(
                "this node cannot look variants up by GA4GH VRS id: computing its variants' VRS ids needs the "
                "reference sequence, and none is configured (clinical.reference_fasta); ask by variantInternalId "
                "(contig:start:ref:alt)"
            )

    def query(self, entry_id: str, dataset_id: str, served: Sequence[ServedIndex]) -> VariantQuery:
        """The dataset's variant with this VRS id, as a query for it; ``NOTHING`` if it holds none.

        An error when the dataset has variants whose VRS ids cannot be computed here and none of the others
        has the id: then the node does not know whether the dataset holds it.
        """
        assert self.alleles is not None
        missing: set[str] = set()
        for index in served:
            computed = self._ids(index)
            if entry_id in computed.ids:
                contig, start, ref, alt = computed.ids[entry_id]
                return VariantQuery(
                    contig=contig, start_min=start, start_max=start, reference_bases=ref, alternate_bases=alt
                )
            missing |= computed.without_sequence
        if missing:
            raise VrsUnavailable(
                f"dataset {dataset_id} has variants on {', '.join(sorted(missing))}, which the reference "
                f"{self.alleles.source} ({self.alleles.assembly}) lacks: their VRS ids cannot be computed, so "
                f"this node cannot say whether the dataset holds {entry_id}; ask by variantInternalId"
            )
        return NOTHING

    def _ids(self, served: ServedIndex) -> _Computed:
        with self._lock:
            computed = self._computed.get(served.source)
            if computed is None:
                computed = self._computed[served.source] = self._compute(served)
            return computed

    def _compute(self, served: ServedIndex) -> _Computed:
        assert self.alleles is not None
        computed = _Computed()
        same_assembly = canonical_assembly(served.row.assembly_id) == canonical_assembly(self.alleles.assembly)
        for row in served.source.search(None).rows():
            if not same_assembly:
                computed.without_sequence.add(f"{row.contig} ({served.row.assembly_id})")
            elif not self.alleles.has(row.contig):
                computed.without_sequence.add(row.contig)
            elif _simple(row):  # symbolic and breakend alleles have no VRS Allele
                vrs = self.alleles.allele_id(row.contig, row.start + 1, row.ref.upper(), row.alt.upper())
                computed.ids.setdefault(vrs, (row.contig, row.start, row.ref, row.alt))
        return computed


def _simple(row: VariantRow) -> bool:
    return bool(_BASES.fullmatch(row.ref.upper())) and bool(_BASES.fullmatch(row.alt.upper()))
