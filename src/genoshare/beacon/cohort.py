"""What matchmaking reads of the Beacon's metadata: each dataset's individuals, and who carries rare alleles in a gene.

The matchmaking service (``genoshare.clinical``) may not import the Beacon, so the composition root hands
it this object, built on the Beacon service's own caches: the same people (re-read within a fraction of a
second of a change) and the same loaded variant indexes, never a second copy of either.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyroaring import BitMap
from sqlalchemy import or_, select

from genoshare.beacon.catalog import Catalog
from genoshare.beacon.people import PeopleCache, Person
from genoshare.beacon.variants import canonical_assembly
from genoshare.index.serving import UNBOUNDED
from genoshare.store.beacon_tables import BeaconGene
from genoshare.store.db import Database


class BeaconCohort:
    def __init__(self, database: Database, people: PeopleCache, catalog: Catalog) -> None:
        self.database = database
        self.people = people
        self.catalog = catalog

    def individuals(self, dataset_id: str) -> tuple[object, Mapping[int, Person]]:
        """Everyone described in the dataset by sample number (consent is the caller's to apply), and a version.

        The version (count and last update of the dataset's individuals) changes whenever they do, and only
        then: a consent change reloads the Beacon's cache but not the people.
        """
        version, people = self.people.versioned(dataset_id)
        return version, people.by_number

    def rare_carriers(self, dataset_id: str, gene: str, max_allele_frequency: float) -> BitMap:
        """Sample numbers of those carrying an allele in ``gene`` (symbol or stable id) at or below the frequency.

        A gene missing from the gene table of an index's assembly matches nobody in that index.
        """
        wanted = gene.strip()
        if not wanted or "\x00" in wanted:
            return BitMap()
        with self.database.sessions() as session:
            loci = session.scalars(
                select(BeaconGene).where(
                    or_(
                        BeaconGene.symbol == wanted,
                        BeaconGene.gene_id == wanted,
                        BeaconGene.gene_id.startswith(f"{wanted}.", autoescape=True),
                    )
                )
            ).all()
        carriers = BitMap()
        for served in self.catalog.indexes(dataset_id):
            assembly = canonical_assembly(served.row.assembly_id)
            for locus in loci:
                if canonical_assembly(locus.assembly_id) != assembly:
                    continue
                result = served.source.search(locus.contig, start=UNBOUNDED, overlap=(locus.start, locus.end))
                rows = result.rows()
                rare = [number for number, row in enumerate(rows) if row.an and row.af <= max_allele_frequency]
                for number in rare:
                    carriers |= result.bitmaps(number, 1)[0]
        return carriers
