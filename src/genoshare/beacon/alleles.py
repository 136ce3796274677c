"""One allele's counts per dataset, for the clinical variant lookup, asked of the Beacon like any Beacon query.

Nothing here reads the variant index itself: the lookup's counts are two Beacon answers (``g_variants`` at
record level for the allele frequency, ``individuals`` at count level for the carriers), so each passes the
same access decision, disclosure rules (minimum counts, rounding) and membership-inference defences
(budgets, randomised response) as any other query, spends the caller's budget, and is audited the same way.
Each is lowered to what the caller may see; a dataset not consulted says why and what access would help.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity
from genoshare.beacon.errors import AssemblyMismatch
from genoshare.beacon.framework import BY_PATH
from genoshare.beacon.request import BeaconRequest
from genoshare.beacon.service import BeaconService
from genoshare.beacon.variants import canonical_assembly
from genoshare.store.beacon_tables import BeaconGene


class BeaconAlleles:
    def __init__(self, beacon: BeaconService) -> None:
        self.beacon = beacon

    def counts(
        self, identity: Identity | None, assembly: str, contig: str, position: int, ref: str, alt: str
    ) -> list[dict[str, Any]]:
        """Per dataset on ``assembly``: whether it was consulted, the level given, and what that level shows.

        ``position`` is 1-based (VCF); Beacon coordinates are 0-based.
        """
        parameters = {
            "assemblyId": assembly,
            "referenceName": contig,
            "start": [position - 1],
            "referenceBases": ref,
            "alternateBases": alt,
        }
        try:
            variants = self.beacon.query(
                BY_PATH["g_variants"],
                BeaconRequest(parameters=parameters, granularity=Granularity.RECORD, include="ALL", limit=1),
                identity,
            )
            carriers = self.beacon.query(
                BY_PATH["individuals"],
                BeaconRequest(parameters=parameters, granularity=Granularity.COUNT, include="ALL", limit=1),
                identity,
            )
        except AssemblyMismatch:
            return []
        counted = {s["id"]: s for s in carriers.get("response", {}).get("resultSets", [])}
        found = {s["id"]: s for s in variants.get("response", {}).get("resultSets", [])}
        randomised = set(variants["info"].get("randomisedResponse", {}).get("datasets", ())) | set(
            carriers["info"].get("randomisedResponse", {}).get("datasets", ())
        )
        answers = []
        for note in variants["info"]["datasets"]:
            answer: dict[str, Any] = {
                "dataset": note["id"],
                "accessLevel": note["accessLevel"],
                "consulted": note["consulted"],
                "access": note.get("access"),
            }
            if not note["consulted"]:
                answer["reason"] = note.get("reason")
            else:
                answer["granularity"] = note["returnedGranularity"]
                answer["exists"] = note["exists"]
                answer["randomised"] = note["id"] in randomised
                if note["id"] in counted:
                    answer["carriers"] = counted[note["id"]]["resultsCount"]
                records = found.get(note["id"], {}).get("results") or []
                frequencies = [
                    frequency["alleleFrequency"]
                    for record in records
                    for population in record.get("frequencyInPopulations", ())
                    for frequency in population.get("frequencies", ())
                ]
                if frequencies:
                    answer["alleleFrequency"] = frequencies[0]
            if note.get("toGetMore"):
                answer["toGetMore"] = note["toGetMore"]
            answers.append(answer)
        return answers

    def genes(self, assembly: str, contig: str, position: int) -> list[str]:
        """Symbols of the genes in the node's gene table that overlap the 1-based position."""
        wanted = canonical_assembly(assembly)
        names = {contig, contig.removeprefix("chr"), f"chr{contig.removeprefix('chr')}"}
        with self.beacon.database.sessions() as session:
            rows = session.execute(
                select(BeaconGene.symbol, BeaconGene.assembly_id).where(
                    BeaconGene.contig.in_(names), BeaconGene.start < position, BeaconGene.end >= position
                )
            ).all()
        return sorted({symbol for symbol, on in rows if canonical_assembly(on) == wanted})
