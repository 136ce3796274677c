"""An S3 store that refuses the node's writes, attacked through ``genoshare ingest``: an honest one-line error.

Issue 19: uploads go through boto3's transfer manager, which wraps the store's refusal in an error of its own
whose text quotes the store's answer. The node must report it as it reports every other refusal -- the
store's error code, no traceback, no "bug in genoshare", no credential -- and publish nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import init_node
from genoshare.settings import load_settings
from objects_s3 import SECRET_ACCESS_KEY, S3Server

from processes import run_cli
from support import HTSGET_DATA, PUBLIC_URL

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"


def test_a_refused_upload_is_a_one_line_error_and_publishes_nothing(s3: S3Server, tmp_path: Path) -> None:
    # The bucket is gone (deleted by its owner, or a typo in objects_url): every write is refused.
    settings = load_settings(
        tmp_path / "node",
        public_url=PUBLIC_URL,
        environment="test",
        objects_url="s3://gs-no-such-bucket/node",
        s3=s3.settings(),
    )
    node = init_node(settings)
    DatasetService(node.database).create(
        NewDataset(id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"])
    )
    node.close()
    data_dir = str(tmp_path / "node")
    env = {"GENOSHARE_DATABASE_URL": settings.database_url, **s3.env()}

    ingest = run_cli("ingest", "open", str(VCF), "--data-dir", data_dir, env=env)
    said = ingest.stdout + ingest.stderr
    assert ingest.returncode == 1, said
    assert "NoSuchBucket" in said and "bug in genoshare" not in said and "Traceback" not in said, said
    assert SECRET_ACCESS_KEY not in said
    assert str(tmp_path) not in said, "the error names no staging path"
    listed = run_cli("objects", "list", "open", "--data-dir", data_dir, env=env)
    assert listed.returncode == 0 and "spec-v4.3" not in listed.stdout, listed.stdout
    assert not os.listdir(tmp_path / "node" / "scratch" / ".staging"), "the staged plaintext is gone"
