"""Ingest on Spark: the same cohort through both engines gives the same Beacon, answer for answer.

Three nodes share one pseudonym secret and ingest one two-contig cohort into a controlled dataset: one with
the embedded index build, one with ``--engine spark`` (local mode, two workers, a few regions per contig
so rows are cut at region boundaries), and one on Spark with its objects and index in S3 (a real moto
server process). Every allele's sequence query, windows tiling both contigs, every variant type and every
granularity are asked through the HTTP API with a grant, and each answer must be the embedded node's JSON;
sequence answers are also checked against pysam reading the VCF. One JVM per module.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pysam
import pytest
from fastapi.testclient import TestClient
from pysam import bcftools

from genoshare.access.issuer import VisaIssuer
from genoshare.api.app import create_app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.index.build import build_variant_index
from genoshare.index.schema import MANIFEST
from genoshare.index.serving import VariantIndex
from genoshare.index.spark import SparkIndexBuilder, plan_regions, spark_session
from genoshare.node import PSEUDONYM_KEY_FILE, Node, build_ingestor, init_node
from genoshare_lab.synth import generate_cohort
from objects_s3 import S3Server

from processes import run_cli
from support import Passports, bearer, trusting_settings

N_PEOPLE = 24
LENGTH = 40_000
CONTIGS = {"20": 500, "21": 200}  # records per contig
RECORDS_PER_TASK = 180  # contig 20 in three regions, 21 in two
WINDOW = 4_000


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark-cohort")
    parts = [
        str(generate_cohort(root / contig, N_PEOPLE, LENGTH, seed=5 + i, n_variants=n, contig=contig).vcf_path)
        for i, (contig, n) in enumerate(CONTIGS.items())
    ]
    path = root / "cohort.vcf.gz"
    bcftools.concat("--no-version", "-Oz", "-o", str(path), *parts, catch_stdout=False)
    bcftools.index("--tbi", str(path), catch_stdout=False)
    return path


def _node(root: Path, issuer: VisaIssuer, secret: bytes | None, **objects: Any) -> Node:
    root.mkdir()
    spark = {"master": "local[2]", "records_per_task": RECORDS_PER_TASK}
    node = init_node(trusting_settings(root, issuer, spark=spark, **objects))
    if secret is not None:  # the same pseudonyms in every node, so their answers can be compared whole
        (node.settings.keys_dir / PSEUDONYM_KEY_FILE).write_bytes(secret)
    DatasetService(node.database).create(NewDataset("cohort", "Cohort", "Test Institute", "controlled", ["GRU"]))
    return node


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer, cohort: Path, spark: Any, s3: S3Server
) -> Iterator[dict[str, Any]]:
    """Clients of three nodes: embedded ingest; Spark; Spark with objects and index in S3 (moto)."""
    root = tmp_path_factory.mktemp("spark-nodes")
    embedded = _node(root / "embedded", issuer, None)
    build_ingestor(embedded, "embedded").ingest("cohort", [cohort])
    secret = (embedded.settings.keys_dir / PSEUDONYM_KEY_FILE).read_bytes()
    on_spark = _node(root / "spark", issuer, secret)
    build_ingestor(on_spark, "spark").ingest("cohort", [cohort])
    on_s3 = _node(root / "s3", issuer, secret, objects_url=f"s3://{s3.new_bucket()}/node", s3=s3.settings())
    build_ingestor(on_s3, "spark").ingest("cohort", [cohort])
    with (
        TestClient(create_app(embedded)) as a,
        TestClient(create_app(on_spark)) as b,
        TestClient(create_app(on_s3)) as c,
    ):
        yield {"embedded": a, "spark": b, "spark_s3": c, "spark_dir": on_spark.settings.data_dir, "s3": on_s3}
    for node in (embedded, on_spark, on_s3):
        node.close()


def _oracle(vcf: Path) -> dict[tuple[str, int, str, str], int]:
    """(contig, 0-based start, ref, alt) -> carriers, from pysam reading the source VCF."""
    found = {}
    with pysam.VariantFile(str(vcf)) as reader:
        for record in reader:
            for number, alt in enumerate(record.alts or (), start=1):
                carriers = sum(1 for s in record.samples.values() if number in (s["GT"] or ()))
                found[(record.chrom, record.start, record.ref, alt)] = carriers
    return found


def _ask(nodes: dict[str, Any], headers: dict[str, str], body: dict[str, Any], on_s3: bool = True) -> dict[str, Any]:
    """The same POST to the nodes; every answer must be the embedded node's JSON."""
    names = ["embedded", "spark", "spark_s3"] if on_s3 else ["embedded", "spark"]
    answers = [nodes[name].post("/api/g_variants", json=body, headers=headers) for name in names]
    for name, answer in zip(names, answers, strict=True):
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json() == answers[0].json(), (name, json.dumps(body))
    return dict(answers[0].json())


def _query(parameters: dict[str, Any], granularity: str = "record") -> dict[str, Any]:
    return {
        "meta": {"apiVersion": "v2.0.0", "requestedGranularity": granularity},
        "query": {"requestParameters": parameters, "pagination": {"skip": 0, "limit": 0}},
    }


def _cohort_results(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return next(rs["results"] for rs in answer["response"]["resultSets"] if rs["id"] == "cohort")


def test_the_spark_index_is_partitioned_by_contig_and_position(nodes: dict[str, Any], cohort: Path) -> None:
    [index_dir] = (nodes["spark_dir"] / "beacon" / "cohort").iterdir()
    manifest = json.loads((index_dir / MANIFEST).read_text())
    planned = plan_regions(cohort, RECORDS_PER_TASK)
    assert [(r.contig, r.start) for r in planned][:1] == [("20", 0)]
    assert len(planned) == 5
    assert [p.split("/", 1)[1] for p in manifest["parts"]] == [
        f"contig={r.contig}/pos={r.start:012d}.arrow" for r in planned
    ]
    assert manifest["n_records"] == sum(CONTIGS.values())
    assert not (index_dir / "variants.arrow").exists()
    stored = [key for key in nodes["s3"].objects.keys("beacon/") if key.endswith((".arrow", MANIFEST))]
    in_bucket = sorted(key.split("/", 4)[4] for key in stored if key.endswith(".arrow"))
    assert in_bucket == sorted(part.split("/", 1)[1] for part in manifest["parts"])  # the same parts, its own token
    assert any(key.endswith(MANIFEST) for key in stored)


def test_every_beacon_answer_is_the_same_on_both_engines(
    nodes: dict[str, Any], cohort: Path, issuer: VisaIssuer
) -> None:
    granted = bearer(Passports(issuer).with_grant("cohort"))
    oracle = _oracle(cohort)
    assert len(oracle) >= sum(CONTIGS.values())
    for number, ((contig, start, ref, alt), carriers) in enumerate(oracle.items()):
        answer = _ask(
            nodes,
            granted,
            _query({"referenceName": contig, "start": [start], "referenceBases": ref, "alternateBases": alt}),
            on_s3=number % 10 == 0,  # the S3 node (ranged GETs from an emulator) for every tenth allele
        )
        results = _cohort_results(answer) if carriers else []
        assert [len(r["caseLevelData"]) for r in results] == ([carriers] if carriers else [])
    for contig in CONTIGS:
        for lo in range(0, LENGTH, WINDOW):  # windows whose edges fall inside the Spark regions and between
            _ask(nodes, granted, _query({"referenceName": contig, "start": [lo], "end": [lo + WINDOW]}))
        whole = _ask(nodes, granted, _query({"referenceName": contig, "start": [0], "end": [LENGTH]}))
        expected = {k for k, n in oracle.items() if k[0] == contig and n}
        assert len(_cohort_results(whole)) == len(expected)
        for kind in ("SNP", "INDEL", "DEL", "INS", "MNP"):
            parameters = {"referenceName": contig, "start": [0], "end": [LENGTH], "variantType": kind}
            for granularity in ("record", "count", "boolean"):
                _ask(nodes, granted, _query(parameters, granularity))
        bracket = {"referenceName": contig, "start": [0, 20_000], "end": [1, 30_000]}
        _ask(nodes, granted, _query(bracket))
    _ask(nodes, {}, _query({"referenceName": "20", "start": [0], "end": [LENGTH]}, "boolean"))


def test_sample_names_never_reach_the_spark_index(nodes: dict[str, Any]) -> None:
    names = [f"GS{i + 1:05d}".encode() for i in range(N_PEOPLE)]
    written = [p for p in (nodes["spark_dir"] / "beacon").rglob("*") if p.is_file()]
    assert any(p.suffix == ".arrow" for p in written)
    for path in written:
        data = path.read_bytes()
        assert not any(name in data for name in names), path
    for path in (nodes["spark_dir"] / "objects").rglob("*.c4gh"):
        assert path.read_bytes().startswith(b"crypt4gh")


_AWKWARD_HEADER = '##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
_AWKWARD_RECORDS = [
    ("chr1", 10, "ACGTACGTAC", "A", "0/1", "0/0"),  # a deletion over the cut at 16: read once, not twice
    ("chr1", 20, "C", "T,G", "1/2", "0/1"),
    ("HLA-A*01:01:01:01", 5, "A", "C", "1/1", "0/1"),  # a colon in the name: bcftools needs {braces}
    ("HLA-A*01:01:01:01", 50, "G", "T", "0/0", "./."),
]


@pytest.mark.parametrize("declared", [True, False], ids=["contigs-declared", "contigs-undeclared"])
def test_awkward_contigs_give_the_embedded_rows(tmp_path: Path, spark: Any, declared: bool) -> None:
    """Names with colons, and (for indexes of files ingested before validation refused them) contigs the
    header does not declare, which bcftools cannot write as BCF: each region then falls back to cyvcf2."""
    contigs = "##contig=<ID=chr1,length=1000>\n##contig=<ID=HLA-A*01:01:01:01,length=3503>\n" if declared else ""
    lines = [
        "\t".join([c, str(pos), ".", ref, alt, ".", ".", ".", "GT", a, b])
        for c, pos, ref, alt, a, b in _AWKWARD_RECORDS
    ]
    plain = tmp_path / "awkward.vcf"
    plain.write_text(
        _AWKWARD_HEADER
        + contigs
        + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
        + "\n".join(lines)
        + "\n"
    )
    vcf = tmp_path / "awkward.vcf.gz"
    pysam.tabix_compress(str(plain), str(vcf))
    pysam.tabix_index(str(vcf), preset="vcf")
    numbers = {"A": 7, "B": 3}
    build_variant_index(vcf, tmp_path / "embedded", numbers)
    summary = SparkIndexBuilder(lambda: spark, 1)(vcf, tmp_path / "spark", numbers)
    assert len(plan_regions(vcf, 1)) == 4
    assert summary.contigs == ("chr1", "HLA-A*01:01:01:01")
    expected, got = (_rows(tmp_path / name) for name in ("embedded", "spark"))
    assert got.equals(expected)
    assert got.num_rows == 5 and got.column("contig").to_pylist().count("HLA-A*01:01:01:01") == 2


def _rows(index_dir: Path) -> pa.Table:
    files = (
        [index_dir / part for part in json.loads((index_dir / MANIFEST).read_text())["parts"]]
        if (index_dir / MANIFEST).exists()
        else [index_dir / "variants.arrow"]
    )
    return pa.concat_tables(ipc.open_file(f).read_all() for f in files)


def test_a_malformed_record_fails_the_build_and_publishes_nothing(tmp_path: Path, cohort: Path, spark: Any) -> None:
    """A record cut after REF (tabix indexes it: it reads only CHROM and POS) stops the build in one line."""
    text = pysam.BGZFile(str(cohort)).read().decode().splitlines(keepends=True)
    records = [line for line in text if not line.startswith("#")]
    records[650] = "\t".join(records[650].split("\t")[:4]) + "\n"  # on contig 21: CHROM POS ID REF, no more
    plain = tmp_path / "broken.vcf"
    plain.write_text("".join([line for line in text if line.startswith("#")] + records))
    bad = tmp_path / "broken.vcf.gz"
    pysam.tabix_compress(str(plain), str(bad))
    pysam.tabix_index(str(bad), preset="vcf")
    out = tmp_path / "index"
    with pytest.raises(ValueError) as raised:
        SparkIndexBuilder(lambda: spark, RECORDS_PER_TASK)(bad, out, {f"GS{i + 1:05d}": i for i in range(N_PEOPLE)})
    assert "\n" not in str(raised.value) and "broken.vcf.gz" in str(raised.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_failed_tasks_leave_no_parts_and_no_manifest(tmp_path: Path, cohort: Path, spark: Any) -> None:
    """Every task fails (a sample without a number): one line naming a region, and nothing left to serve."""
    numbers = {f"GS{i + 1:05d}": i for i in range(N_PEOPLE - 1)}
    out = tmp_path / "index"
    with pytest.raises(ValueError) as raised:
        SparkIndexBuilder(lambda: spark, RECORDS_PER_TASK)(cohort, out, numbers)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("5 of 5 regions failed, first 20:1-")
    assert "no sample number" in message
    assert list(out.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        VariantIndex({"cohort": out})


def test_a_malformed_vcf_is_one_line_and_nothing_is_published(tmp_path: Path, issuer: VisaIssuer) -> None:
    node = _node(tmp_path / "cli", issuer, None)
    node.close()
    bad = tmp_path / "bad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\nchr1\tten\n")
    run = run_cli("ingest", "cohort", str(bad), "-d", str(node.settings.data_dir), "--engine", "spark")
    assert run.returncode != 0
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "bad.vcf" in run.stderr and "Traceback" not in run.stderr
    assert DatasetService(Node.open(node.settings).database).objects("cohort") == []
    assert not (node.settings.data_dir / "beacon").exists()


def test_spark_that_cannot_start_is_one_line_naming_the_way_back(
    tmp_path: Path, issuer: VisaIssuer, cohort: Path
) -> None:
    """No Java: the files are published (as on any index failure) and the message says how to index them.

    The file comes without its index, as stewards' files often do: htslib must not add a line about that.
    """
    node = _node(tmp_path / "nojava", issuer, None)
    node.close()
    data_dir = str(node.settings.data_dir)
    unindexed = tmp_path / "cohort.vcf.gz"
    shutil.copyfile(cohort, unindexed)
    run = run_cli("ingest", "cohort", str(unindexed), "-d", data_dir, "--engine", "spark", env={"JAVA_HOME": "/x"})
    assert run.returncode != 0
    [line] = run.stderr.strip().splitlines()
    assert "Spark needs Java 17: JAVA_HOME=/x has no bin/java" in line and "genoshare beacon-index cohort" in line, line
    assert not list(node.settings.data_dir.glob("beacon/cohort/*/variants.json"))
