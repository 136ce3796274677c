"""DRS lookup by checksum (``GET /ga4gh/drs/v1/objects/checksum/{checksum}``) through ``genoshare serve``.

Issue 18 (must-have 6): a researcher holding a file (renamed, from a colleague, named in a paper by its
checksum) finds its DRS object. Attacked as an existence oracle: a caller who may not read an object must get
the same answer as for a checksum no file has, and the checksum of the file as the steward ingested it
(before de-identification) must not be confirmed to anyone through the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from granted import DRS, Grantee, build_study, researcher_passport

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor

from support import HTSGET_DATA

LOOKUP = f"{DRS}/objects/checksum"
NOBODY = "sha-256:" + "ab" * 32


def test_a_checksum_finds_only_what_the_caller_may_read(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    study = build_study(node, tmp_path)
    vcf = study.vcf
    DatasetService(node.database).create(
        NewDataset(id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"])
    )
    public_copy = tmp_path / "open.vcf.gz"
    public_copy.write_bytes((HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz").read_bytes())
    public = build_ingestor(node).ingest("open", [public_copy]).published[0]
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        grantee = Grantee(http, server.url, issuer, "alice")
        registered = {"Authorization": f"Bearer {researcher_passport(issuer, 'bob')}"}

        def lookup(checksum: str, headers: dict[str, str]) -> httpx.Response:
            return http.get(f"{LOOKUP}/{checksum}", headers=headers)

        # The grantee finds the file by each of its checksums, as DRS names them or as sha256sum prints them.
        for checksum in (f"sha-256:{vcf.sha256}", f"sha256:{vcf.sha256}", vcf.sha256, f"md5:{vcf.md5}"):
            found = lookup(checksum, grantee.headers)
            assert found.status_code == 200, found.text
            body = found.json()
            assert [o["id"] for o in body["resolved_drs_object"]] == [vcf.id], checksum
            assert {"checksum": vcf.sha256, "type": "sha-256"} in body["resolved_drs_object"][0]["checksums"]
            assert body["summary"]["resolved"] == 1

        # Anyone finds a public file; a file of a controlled dataset is not confirmed to exist without a grant.
        anonymous_public = lookup(f"sha-256:{public.sha256}", {})
        assert anonymous_public.status_code == 200, anonymous_public.text
        assert [o["id"] for o in anonymous_public.json()["resolved_drs_object"]] == [public.id]
        for caller in ({}, registered):
            hidden, absent = lookup(f"sha-256:{vcf.sha256}", caller), lookup(NOBODY, caller)
            assert hidden.status_code == absent.status_code == 404, hidden.text
            assert hidden.json()["msg"].replace(vcf.sha256, "ab" * 32) == absent.json()["msg"]
        # The file as the steward gave it (real sample names) is not a checksum any DRS object is served with.
        assert vcf.source_sha256 != vcf.sha256
        source = lookup(f"sha-256:{vcf.source_sha256}", grantee.headers)
        assert source.status_code == 404, source.text

        malformed = lookup("sha-256:not-hex", grantee.headers)
        assert malformed.status_code == 400, malformed.text
        assert "checksum" in malformed.json()["msg"] and "\n" not in malformed.json()["msg"]
