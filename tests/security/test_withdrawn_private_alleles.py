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

from genoshare.access.issuer import VisaIssuer

from passport_nodes import REGISTERED, build_node, object_id, researcher_visa
from processes import run_cli

WITHDRAWN = "NA00002"
#: The spec VCF's alleles that only NA00002 carries (0-based starts, as Beacon takes them).
PRIVATE = (("20", 17329, "T", "A"), ("20", 1234566, "GTC", "GTCT"))


def test_a_withdrawn_persons_private_alleles_are_not_published(issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    data_dir = build_node(tmp_path, issuer)
    for command in (("withdraw", REGISTERED, WITHDRAWN), ("rederive",)):
        done = run_cli("consent", *command, "--data-dir", str(data_dir))
        assert done.returncode == 0, done.stdout + done.stderr
    server = serve(data_dir, {})
    passport = issuer.passport("carol", [researcher_visa(issuer, "carol")])
    with httpx.Client(base_url=server.url, timeout=60) as http:
        headers = {"Authorization": f"Bearer {passport}"}
        access = http.get(f"/ga4gh/drs/v1/objects/{object_id(REGISTERED)}/access/https", headers=headers).json()
        served = http.get(access["url"], headers=dict(line.split(": ", 1) for line in access["headers"]))
        assert served.status_code == 200, served.text
        path = tmp_path / "served.vcf.gz"
        path.write_bytes(served.content)
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
