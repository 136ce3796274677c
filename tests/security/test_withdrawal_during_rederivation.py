"""A participant who withdraws while a file holding them is being re-derived for someone else is not served.

Attacked through ``genoshare serve``: one participant withdraws, and the server starts rewriting the shared VCF
without them; a second participant of the same file withdraws while that rewrite runs. The rewrite in progress
still holds the second one's genotypes: it must not be published as the file, and the file must end up served
without both. (The second withdrawal marks the file as being re-derived, which it already is, and queues it; a
rewrite that ends by marking the file available undid that, and the queued rewrite found nothing to do.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pysam
from granted import CHAIR, DRS, Grantee, consent_token

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, build_phenotypes
from genoshare_lab.synth import generate_cohort

from support import TEST_ISSUER, pseudonyms_by_source

#: How long the node may take to publish the file without both (two rewrites of a small VCF).
SETTLES_WITHIN = 30.0


def served_samples(http: httpx.Client, grantee: Grantee, object_id: str, scratch: Path) -> list[str] | None:
    """The samples of the VCF as /data serves it to the grantee now; None while it is being re-derived."""
    access = http.get(f"{grantee.url}{DRS}/objects/{object_id}/access/https", headers=grantee.headers)
    if access.status_code == 403:
        return None
    assert access.status_code == 200, access.text
    ticket = dict(line.split(": ", 1) for line in access.json()["headers"])
    data = http.get(access.json()["url"], headers=ticket)
    if data.status_code == 403:
        return None
    assert data.status_code == 200, data.text
    served = scratch / "served.vcf.gz"
    served.write_bytes(data.content)
    with pysam.VariantFile(str(served)) as records:
        return list(records.header.samples)


def rewriting(node: Node) -> bool:
    """Whether the server is deriving a file (its private work directory in staging is there)."""
    return any(len(work.name.split("-")) == 2 for work in node.objects.staging_dir().glob("rederive-*"))


def test_a_withdrawal_during_a_rewrite_of_the_same_file_is_not_lost(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    # Enough variants that a rewrite takes a moment: the second withdrawal falls inside it.
    cohort = generate_cohort(tmp_path / "cohort", 8, 3_000_000, seed=11, n_variants=20_000)
    datasets = DatasetService(node.database)
    datasets.create(NewDataset("study", "Study", "Example Hospital", "controlled", ["GRU"]))
    datasets.set_committee("study", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=True)
    vcf = build_ingestor(node).ingest("study", [cohort.vcf_path]).published[0]
    build_phenotypes(node).ingest("study", [cohort.individuals_path])
    pseudonyms = pseudonyms_by_source(node, cohort.sample_ids)
    first, second = (pseudonyms[name] for name in cohort.sample_ids[:2])
    tokens = {name: consent_token(node, name) for name in (first, second)}

    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    with httpx.Client(timeout=60) as http:
        grantee = Grantee(http, server.url, issuer, "grantee")
        assert {first, second} <= set(served_samples(http, grantee, vcf.id, tmp_path) or ())

        assert http.post(f"{server.url}/consent/withdraw", headers=tokens[first]).status_code == 200
        deadline = time.monotonic() + SETTLES_WITHIN
        while not rewriting(node):
            assert time.monotonic() < deadline, "the server never began the rewrite"
            time.sleep(0.002)
        withdrawn = http.post(f"{server.url}/consent/withdraw", headers=tokens[second])
        assert withdrawn.status_code == 200, withdrawn.text
        assert rewriting(node), "the second withdrawal came after the rewrite: the test proves nothing"

        samples = None
        while time.monotonic() < deadline:
            samples = served_samples(http, grantee, vcf.id, tmp_path)
            if samples is not None and second not in samples:
                break
            time.sleep(0.2)
    assert samples is not None, "the file was never served again"
    assert first not in samples
    assert second not in samples, "the file is served with the genotypes of a participant who withdrew"
