"""An S3 object store that goes away, attacked through ``genoshare serve``: a clean 503, never a leak.

Issue 19: objects on an S3-compatible store.  When the store is unreachable, a read must be refused
honestly (503 ``ServiceUnavailable`` in a GA4GH-shaped body), not answered with a traceback, a 500 or an
empty file; and the node's S3 secret must never reach its configuration file, its log or an answer.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, init_node
from genoshare.settings import load_settings
from objects_s3 import SECRET_ACCESS_KEY, s3_server

from support import HTSGET_DATA, PUBLIC_URL

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
DRS = "/ga4gh/drs/v1"


def test_an_unreachable_store_is_a_clean_503_and_the_secret_never_leaks(serve, tmp_path: Path) -> None:
    with s3_server(tmp_path / "moto.log") as store:
        settings = load_settings(
            tmp_path / "node",
            public_url=PUBLIC_URL,
            environment="test",
            objects_url=f"s3://{(bucket := store.new_bucket())}/node",
            s3=store.settings(),
        )
        node = init_node(settings)
        DatasetService(node.database).create(
            NewDataset(
                id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"], pseudonymise=False
            )
        )
        build_ingestor(node).ingest("open", [VCF])
        node.close()
        assert SECRET_ACCESS_KEY not in (tmp_path / "node" / "genoshare.toml").read_text()

        server = serve(tmp_path / "node", store.env())
        with httpx.Client(base_url=server.url, timeout=30) as client:
            access = client.get(f"{DRS}/objects/open.spec-v4.3.vcf.gz/access/https").json()
            headers = dict(line.split(": ", 1) for line in access["headers"])
            data = access["url"].removeprefix(PUBLIC_URL)
            served = client.get(data, headers=headers)
            assert served.status_code == 200 and served.content == VCF.read_bytes()
            ticket = client.get("/htsget/variants/spec-v4.3", params={"referenceName": "20"})
            assert ticket.status_code == 200, ticket.text

            store.process.terminate()
            store.process.wait(timeout=10)

            answers = [
                client.get(data, headers=headers),
                client.get(data, headers={**headers, "Range": "bytes=100-199"}),
                client.get("/htsget/variants/spec-v4.3", params={"referenceName": "20"}),
                client.get("/htsget/variants/spec-v4.3"),
            ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert "unreachable" in str(body), body
        assert SECRET_ACCESS_KEY not in answer.text
        assert bucket not in answer.text, "a client is not told where the node keeps its objects"
    log = server.stop()
    assert SECRET_ACCESS_KEY not in log
    assert "Traceback" not in log
