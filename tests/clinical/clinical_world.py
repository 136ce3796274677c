"""A node with rare-disease patients for the clinical tests: phenotypes, a gene with rare alleles, consent choices.

Dataset ``rare`` (controlled, GRU + CC: matchmaking allowed unless a participant refuses) and dataset
``research`` (controlled, GRU only: nobody may be matched unless they say yes). Genotypes are written here
as a small VCF on GRCh38 contig 1: ``GENE1`` (1,000-2,000) holds a rare allele only R01 carries and a
common allele everyone carries; ``GENE2`` (5,000-6,000) a rare allele only R02 carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update

from genoshare.beacon.genes import load_genes
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_consent, build_ingestor, build_phenotypes, build_rederiver, init_node
from genoshare.settings import MatchmakerPeer, MatchmakerSettings, Settings
from genoshare.store.models import Participant, utcnow

from processes import free_port

MARFAN = ["HP:0001166", "HP:0001519", "HP:0000545", "HP:0001083", "HP:0002616"]
EPILEPSY = ["HP:0001250", "HP:0001249", "HP:0001252", "HP:0000252"]
RENAL = ["HP:0000107", "HP:0000083", "HP:0000822"]
OTHER = ["HP:0004322", "HP:0000365", "HP:0000486", "HP:0001263"]

#: Sample -> (dataset, HPO features). R04 refuses matchmaking, R05 withdraws, N01 has no choice (GRU only).
PEOPLE: dict[str, tuple[str, list[str]]] = {
    "R01": ("rare", MARFAN[:4]),
    "R02": ("rare", EPILEPSY),
    "R03": ("rare", RENAL),
    "R04": ("rare", MARFAN),
    "R05": ("rare", MARFAN),
    "R06": ("rare", OTHER),
    "R07": ("rare", OTHER[:2] + RENAL[:1]),
    "R08": ("rare", EPILEPSY[:2] + OTHER[2:]),
    "N01": ("research", MARFAN),
    "N02": ("research", OTHER),
}
#: Diagnoses recorded for some: R03 polycystic kidney disease 1 (a subtype of autosomal dominant polycystic
#: kidney disease, MONDO:0004691 = ORPHA:730); R06 Marfan syndrome (MONDO:0007947 = OMIM:154700), under
#: MONDO as the node records diseases.
DIAGNOSES = {"R03": "MONDO:0008263", "R06": "MONDO:0007947"}
PEER_TOKEN = "peer-a-token-" + "0" * 27
PEER_NAME = "Peer A"
CONTACT = "mailto:matchmaking@example.org"
#: The node's steward, by passport subject at the test issuer (``roles.stewards``).
STEWARD = "steward-1"


@dataclass
class ClinicalWorld:
    node: Node
    #: Sample name -> pseudonym.
    pseudonyms: dict[str, str]
    root: Path


def matchmaker_settings(peers: list[MatchmakerPeer] | None = None) -> MatchmakerSettings:
    """This node trusts Peer A's token; singletons in a cohort of 8 (AF 1/16) count as rare here."""
    trusted = MatchmakerPeer(name=PEER_NAME, token_sha256=hashlib.sha256(PEER_TOKEN.encode()).hexdigest())
    return MatchmakerSettings(
        peers=[trusted, *(peers or [])],
        contact_href=CONTACT,
        rare_allele_frequency=0.1,
        min_score=0.05,
        max_results=5,
    )


def down_peer(root: Path) -> MatchmakerPeer:
    """A peer this node would ask, where nothing listens."""
    token = root / "down.token"
    token.write_text("a-token-for-a-peer-that-is-down\n")
    return MatchmakerPeer(name="Down", base_url=f"http://127.0.0.1:{free_port()}/mme", token_file=token)


def _vcf(path: Path, samples: list[str], carriers: dict[tuple[int, str, str], set[str]]) -> None:
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        "##contig=<ID=1,length=100000,assembly=GRCh38>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    for (position, ref, alt), who in sorted(carriers.items()):
        genotypes = ["0/1" if sample in who else "0/0" for sample in samples]
        lines.append("\t".join(["1", str(position), ".", ref, alt, ".", "PASS", ".", "GT", *genotypes]))
    path.write_text("\n".join(lines) + "\n")


def build_world(root: Path, settings: Settings) -> ClinicalWorld:
    node = init_node(settings)
    datasets = DatasetService(node.database)
    datasets.create(NewDataset("rare", "Rare disease cohort", "Dr Custodian, Genetics", "controlled", ["GRU", "CC"]))
    datasets.create(NewDataset("research", "Research cohort", "Research Custodian", "controlled", ["GRU"]))
    rare = [s for s, (d, _) in PEOPLE.items() if d == "rare"]
    research = [s for s, (d, _) in PEOPLE.items() if d == "research"]
    _vcf(
        root / "rare.vcf",
        rare,
        {(1500, "C", "T"): {"R01"}, (1600, "G", "A"): set(rare), (5500, "A", "G"): {"R02"}},
    )
    _vcf(root / "research.vcf", research, {(1500, "C", "T"): {"N01"}})
    gtf = root / "genes.gtf"
    gtf.write_text(
        '1\ttest\tgene\t1001\t2000\t.\t+\t.\tgene_id "ENSG00000000001"; gene_name "GENE1";\n'
        '1\ttest\tgene\t5001\t6000\t.\t+\t.\tgene_id "ENSG00000000002"; gene_name "GENE2";\n'
    )
    load_genes(node.database, gtf, "GRCh38")
    ingestor = build_ingestor(node)
    ingestor.ingest("rare", [root / "rare.vcf"])
    ingestor.ingest("research", [root / "research.vcf"])
    for dataset_id, samples in (("rare", rare), ("research", research)):
        table = root / f"{dataset_id}-individuals.tsv"
        rows = ["individual_id\tsex\tage\tphenotypic_features\tdiseases"]
        rows += [f"{s}\tNCIT:C16576\tP30Y\t{';'.join(PEOPLE[s][1])}\t{DIAGNOSES.get(s, '')}" for s in samples]
        table.write_text("\n".join(rows) + "\n")
        build_phenotypes(node).ingest(dataset_id, [table])
    pseudonyms = {s: ingestor.pseudonymiser.pseudonym(PEOPLE[s][0], s) for s in PEOPLE}
    consent = build_consent(node)
    consent.set_matchmaking(consent.find("rare", pseudonyms["R04"]), False, "participant")
    consent.withdraw(consent.find("rare", pseudonyms["R05"]), "participant")
    # Settled now, not by the server's worker while tests run: rare is 7 people.
    build_rederiver(node).rederive_pending()
    return ClinicalWorld(node, pseudonyms, root)


def reset_choice(world: ClinicalWorld, sample: str) -> None:
    """Back to "not asked" (tests that change a choice put it back)."""
    dataset = PEOPLE[sample][0]
    with world.node.database.session() as session:
        session.execute(
            update(Participant)
            .where(Participant.dataset_id == dataset, Participant.pseudonym == world.pseudonyms[sample])
            .values(matchmaking=None, consent_updated_at=utcnow())
        )
