"""The unmodified ``htsget`` client from PyPI against a real ``genoshare serve`` process.

What it downloads for a region, indexed and queried with samtools/bcftools, equals what samtools/bcftools
return for the same region of the original file; a controlled dataset answers 401 without a passport and
works with a grant.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from htsget.exceptions import ClientError

import htsget
from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor

from support import HTSGET_DATA

BAM = HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam"
VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"


@pytest.fixture(autouse=True)
def _baseline_tools() -> None:
    """samtools and bcftools are the reference the downloads are compared with; `make test` installs them."""
    missing = [tool for tool in ("samtools", "bcftools") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run the suite with `make test`", pytrace=False)


def run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout


def copied(original: Path, directory: Path) -> Path:
    """A private copy to index: the shipped test data stays as it is."""
    target = directory / "originals" / original.name
    target.parent.mkdir(exist_ok=True)
    if not target.exists():
        shutil.copyfile(original, target)
    return target


def region_of(tool: str, path: Path, region: str) -> str:
    """Records of ``region`` (1-based, inclusive) as the tool prints them, after indexing ``path``."""
    if tool == "samtools":
        run("samtools", "index", str(path))
        return run("samtools", "view", str(path), region)
    run("bcftools", "index", "-f", str(path))
    return run("bcftools", "view", "-H", "-r", region, str(path))


def test_htsget_client_downloads_regions_equal_to_samtools_and_bcftools(
    node: Node, issuer: VisaIssuer, serve, tmp_path: Path
) -> None:
    datasets = DatasetService(node.database)
    for id, level in (("open", "public"), ("closed", "controlled")):
        datasets.create(
            NewDataset(id=id, title=id, custodian="C", access_level=level, duo_codes=["GRU"], pseudonymise=False)
        )
    build_ingestor(node).ingest("open", [BAM, VCF])
    closed_bam = tmp_path / "closed-reads.bam"
    shutil.copyfile(BAM, closed_bam)
    shutil.copyfile(f"{BAM}.bai", f"{closed_bam}.bai")
    build_ingestor(node).ingest("closed", [closed_bam])
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})

    reads = tmp_path / "reads.bam"
    with open(reads, "wb") as out:
        htsget.get(
            f"{server.url}/htsget/reads/htsnexus_test_NA12878",
            out,
            reference_name="11",
            start=5_000_000,
            end=5_050_000,
            data_format="BAM",
        )
    got = region_of("samtools", reads, "11:5000001-5050000")
    assert got and got == region_of("samtools", copied(BAM, tmp_path), "11:5000001-5050000")

    variants = tmp_path / "variants.vcf.gz"
    with open(variants, "wb") as out:
        htsget.get(f"{server.url}/htsget/variants/spec-v4.3", out, reference_name="20", start=14_000, end=1_110_700)
    got = region_of("bcftools", variants, "20:14001-1110700")
    assert got and got == region_of("bcftools", copied(VCF, tmp_path), "20:14001-1110700")

    closed_url = f"{server.url}/htsget/reads/closed-reads"
    with open(tmp_path / "denied.bam", "wb") as out, pytest.raises(ClientError, match=r"401.*InvalidAuthentication"):
        htsget.get(closed_url, out, reference_name="20", max_retries=0)
    passport = issuer.passport(
        "alice",
        [
            issuer.visa("alice", RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so"),
            issuer.visa("alice", CONTROLLED_ACCESS_GRANTS, f"{server.url}/datasets/closed"),
        ],
    )
    granted = tmp_path / "granted.bam"
    with open(granted, "wb") as out:
        htsget.get(closed_url, out, reference_name="20", start=0, end=100_000_000, bearer_token=passport)
    assert region_of("samtools", granted, "20") == region_of("samtools", copied(BAM, tmp_path), "20")
    log = server.stop()
    assert "eyJ" not in log, "no token may reach the server log"
