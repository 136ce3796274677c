"""After a withdrawal, the alleles only the withdrawn person carried are gone from the file served.

Red team (issue 12 follow-up): the file re-derived without a withdrawn participant kept every site, so the
sites where only they carried an alternate allele stayed in it (``20:17330 T>A`` with ``AC=0``, the
``GTCT`` allele of ``20:1234567``): their private variants, the most identifying part of a genome, were
still published to every grantee (and the same holds for the subsets served past a narrowed consent).
Beacon already answered "no" for them; that is checked here too.  Attacked through a real
``genoshare serve`` after ``genoshare consent withdraw``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pysam
import pytest

from genoshare.access.issuer import VisaIssuer

from passport_nodes import REGISTERED, build_node, object_id, researcher_visa
from processes import run_cli

WITHDRAWN = "NA00002"
#: The spec VCF's alleles that only NA00002 carries (0-based starts, as Beacon takes them).
PRIVATE = (("20", 17329, "T", "A"), ("20", 1234566, "GTC", "GTCT"))


def _withdraw_and_serve(issuer: VisaIssuer, serve: Any, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    """A node with NA00002 withdrawn and its files re-derived, served; and a researcher's headers."""
    data_dir = build_node(tmp_path, issuer)
    for command in (("withdraw", REGISTERED, WITHDRAWN), ("rederive",)):
        done = run_cli("consent", *command, "--data-dir", str(data_dir))
        assert done.returncode == 0, done.stdout + done.stderr
    passport = issuer.passport("carol", [researcher_visa(issuer, "carol")])
    return serve(data_dir, {}), {"Authorization": f"Bearer {passport}"}


def _download(http: httpx.Client, headers: dict[str, str], path: Path) -> Path:
    access = http.get(f"/ga4gh/drs/v1/objects/{object_id(REGISTERED)}/access/https", headers=headers).json()
    served = http.get(access["url"], headers=dict(line.split(": ", 1) for line in access["headers"]))
    assert served.status_code == 200, served.text
    path.write_bytes(served.content)
    return path


def test_a_withdrawn_persons_private_alleles_are_not_published(issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    server, headers = _withdraw_and_serve(issuer, serve, tmp_path)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        path = _download(http, headers, tmp_path / "served.vcf.gz")
        with pysam.VariantFile(str(path)) as variants:
            assert WITHDRAWN not in variants.header.samples
            published = {(r.chrom, r.start, r.ref, alt) for r in variants for alt in r.alts or ()}
        for allele in PRIVATE:
            assert allele not in published, f"the withdrawn person's private allele {allele} is still in the file"
            chrom, start, ref, alt = allele
            query = {"referenceName": chrom, "start": start, "referenceBases": ref, "alternateBases": alt}
            for caller in ({}, headers):
                answer = http.get(f"/api/datasets/{REGISTERED}/g_variants", params=query, headers=caller).json()
                assert answer["responseSummary"]["exists"] is False, (allele, caller.keys(), answer["responseSummary"])
        # The alleles other people carry are still there, in the file and in Beacon.
        assert ("20", 14369, "G", "A") in published
        query = {"referenceName": "20", "start": 14369, "referenceBases": "G", "alternateBases": "A"}
        answer = http.get(f"/api/datasets/{REGISTERED}/g_variants", params=query, headers=headers).json()
        assert answer["responseSummary"]["exists"] is True


def test_site_summaries_are_the_kept_samples_own(issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    """INFO and QUAL computed over everyone do not survive the withdrawal.

    Red team: ``bcftools view -s`` recomputed only AC and AN, so ``20:14370`` was served as
    ``NS=3;DP=14;AF=0.5;AC=2;AN=4``: NS and AF still counted NA00002, and set against the new AC/AN they
    give their genotype away (as do DP, QUAL and any other aggregate over all samples).
    """
    server, headers = _withdraw_and_serve(issuer, serve, tmp_path)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        path = _download(http, headers, tmp_path / "served.vcf.gz")
    # What a user checks: the counts, worked out by hand from the GT column of the file served.
    with pysam.VariantFile(str(path)) as variants:
        assert WITHDRAWN not in variants.header.samples
        records = list(variants)
    assert [(r.pos, r.alts) for r in records] == [
        (14370, ("A",)),
        (1110696, ("G", "T")),
        (1234567, ("G",)),
    ], "the sites NA00001 and NA00003 carry"
    for record in records:
        calls = [record.samples[name]["GT"] for name in record.samples]
        alleles = [allele for call in calls for allele in call if allele is not None]
        alt_counts = tuple(alleles.count(index) for index in range(1, len(record.alts or ()) + 1))
        site = f"{record.chrom}:{record.pos}"
        assert record.info["AN"] == len(alleles), site
        assert record.info["AC"] == alt_counts, site
        assert record.info["AF"] == pytest.approx([count / len(alleles) for count in alt_counts]), site
        assert record.info["NS"] == sum(any(a is not None for a in call) for call in calls), site
        assert record.qual is None, f"{site}: QUAL was computed from everyone's reads"
        aggregates = set(record.info) - {"AC", "AN", "AF", "NS", "DB", "H2"}
        assert not aggregates, f"{site} still carries {aggregates}, computed over the withdrawn person too"
    # 20:14370: NA00001 0|0 and NA00003 1/1.
    assert (records[0].info["NS"], records[0].info["AC"], records[0].info["AN"]) == (2, (2,), 4)
    assert records[0].info["AF"] == (0.5,)
