"""A file removed or a dataset deleted by the operator is served by nothing, at once, through ``genoshare serve``.

Issue 18 (must-have 6): ``genoshare objects remove`` and ``genoshare datasets delete``, run as CLI processes
beside a running server. Attacked: a grantee who keeps asking DRS, htsget, ``/data`` (with a ticket issued
before, and a download running while it happens) and the Beacon (records, counts, a cached answer); a
researcher holding a visa of a deleted dataset's grant, and a new dataset created under the deleted id to
make that visa open it again. Checked: the stored bytes (file store and S3), the per-consent subsets and the
Beacon index files are gone; the audit log names the operator and still verifies.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from big_files import long_read_bam
from fastapi.testclient import TestClient
from granted import CHAIR, DRS, Grantee, build_study, researcher_passport
from sqlalchemy import select
from test_stream_after_access_ends import SlowDownload, assert_cut

from genoshare.access.issuer import VisaIssuer
from genoshare.api.app import create_app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import Conflict
from genoshare.node import Node, build_ingestor, build_lifecycle, build_subsets, init_node
from genoshare.settings import load_settings
from genoshare.store.beacon_tables import BeaconIndividual, BeaconVariantIndex
from genoshare.store.models import AccessRequest, DataObject, Grant, Participant
from objects_s3 import s3_server

from processes import run_cli
from support import HTSGET_DATA, PUBLIC_URL, TEST_ISSUER


@pytest.fixture
def env(node: Node, object_store: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """What a CLI or server child process needs beside the node's configuration file."""
    extra = request.getfixturevalue("s3").env() if object_store == "s3" else {}
    return {"GENOSHARE_DATABASE_URL": node.settings.database_url, "GENOSHARE_STREAM_RECHECK_SECONDS": "0.5", **extra}


def cli(node: Node, env: dict[str, str], *args: str) -> Any:
    return run_cli(*args, "--data-dir", str(node.settings.data_dir), env=env)


def stored(node: Node, row: DataObject) -> list[str]:
    """The stored keys of a file that still exist: bytes, index, subsets, Beacon index (on a remote store)."""
    keys = [row.blob_key, row.index_key or "", *node.objects.keys(f"beacon/{row.dataset_id}/{row.sha256}/")]
    for manifest in node.objects.keys(f"subsets/{row.sha256[:2]}/{row.sha256}/"):
        subset = json.loads(node.objects.read_bytes(manifest))
        keys += [manifest, subset["blob_key"], subset["index_key"]]
    return [key for key in keys if key and node.objects.exists(key)]


def until(check: Any, seconds: float = 5) -> Any:
    """``check()`` once it is truthy (the servers' caches revalidate within half a second)."""
    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def drs_answer(http: httpx.Client, url: str, object_id: str, headers: dict[str, str]) -> tuple[int, str]:
    """Status and error code of DRS for an id, with the id blanked out of the message."""
    answer = http.get(f"{url}{DRS}/objects/{object_id}", headers=headers)
    return answer.status_code, answer.text.replace(object_id, "<id>")


def test_a_removed_file_is_served_by_nothing(
    node: Node, issuer: VisaIssuer, serve: Any, env: dict[str, str], tmp_path: Path
) -> None:
    study = build_study(node, tmp_path)
    vcf = study.vcf
    # Counts without noise (only budgets, whose answers are cached per researcher), so that a count the
    # removal should have ended is told apart from a randomised "yes".
    DatasetService(node.database).set_beacon_policy("study", {"privacy": {"count": {"flip_probability": 0.0}}})
    # A subset made for a narrowed consent: derived bytes of the same person data, to be deleted too.
    build_subsets(node).served(vcf, frozenset({next(iter(study.pseudonyms.values()))}))
    assert len(stored(node, vcf)) >= 5, "the file, its index, a subset's file, index and manifest"
    with node.database.sessions() as session:
        index = session.scalars(select(BeaconVariantIndex.path)).one()
    assert (node.settings.data_dir / index).is_dir() or node.objects.keys(f"{index}/")

    server = serve(node.settings.data_dir, env)
    url = server.url
    with httpx.Client(timeout=30) as http:
        grantee = Grantee(http, url, issuer, "alice")
        registered = {"Authorization": f"Bearer {researcher_passport(issuer, 'bob')}"}
        assert grantee.beacon("datasets/study/g_variants")["responseSummary"]["exists"] is True
        counted = http.get(f"{url}/api/g_variants", headers=registered).json()["responseSummary"]
        assert counted["exists"] is True and counted.get("numTotalResults", 1) > 0
        data_url, ticket = grantee.data_ticket(vcf.id)
        assert http.get(data_url, headers=ticket).status_code == 200
        htsget = http.get(f"{url}/htsget/variants/{vcf.htsget_id}", headers=grantee.headers)
        assert htsget.status_code == 200, htsget.text
        never = drs_answer(http, url, "study.never-ingested.vcf.gz", grantee.headers)
        never_htsget = http.get(f"{url}/htsget/variants/never-ingested", headers=grantee.headers)

        dry = cli(node, env, "objects", "remove", vcf.id, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        plan = json.loads(dry.stdout)
        assert plan["dry_run"] is True and plan["objects"] == [vcf.id]
        assert set(plan["stored"]) == set(stored(node, vcf)), "the dry run lists every stored key that will go"
        assert grantee.beacon("datasets/study/g_variants")["responseSummary"]["exists"] is True

        removed = cli(node, env, "objects", "remove", vcf.id, "--yes", "--json")
        assert removed.returncode == 0, removed.stderr
        assert json.loads(removed.stdout)["left"] == []

        # Beacon: no record, no count, for the grantee and a registered researcher (whose earlier answer
        # was cached by the privacy defences), within the caches' half second.
        def gone() -> bool:
            summary = grantee.beacon("datasets/study/g_variants")["responseSummary"]
            return summary["exists"] is False

        assert until(gone), "the grantee's Beacon still answers from the removed file"
        counted = http.get(f"{url}/api/g_variants", headers=registered).json()["responseSummary"]
        assert counted["exists"] is False and counted.get("numTotalResults", 0) == 0, counted
        # DRS and htsget: the same answer as for an id that never existed; /data: the ticket opens nothing.
        assert drs_answer(http, url, vcf.id, grantee.headers) == never
        gone_htsget = http.get(f"{url}/htsget/variants/{vcf.htsget_id}", headers=grantee.headers)
        assert gone_htsget.status_code == never_htsget.status_code, gone_htsget.text
        assert http.get(data_url, headers=ticket).status_code == 404

    # The bytes: file, index, subsets, Beacon index files; the rows.
    assert stored(node, vcf) == []
    assert not (node.settings.data_dir / index).exists() and not node.objects.keys(f"{index}/")
    with node.database.sessions() as session:
        assert session.get(DataObject, vcf.id) is None
        assert session.scalars(select(BeaconVariantIndex)).all() == []
        # The dataset, its people and its grants stay: the grants cover the dataset, not the file.
        assert session.scalars(select(Participant)).all()
        assert session.scalars(select(Grant).where(Grant.revoked_at.is_(None))).all()
    entries = [e for e in node.audit.entries(resource_prefix=f"objects/{vcf.id}") if e.action == "objects.remove"]
    assert [(e.decision, e.actor.startswith("operator:")) for e in entries] == [("delete", True)]
    assert node.audit.verify().ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_running_download_of_a_removed_file_is_cut(
    node: Node, issuer: VisaIssuer, serve: Any, env: dict[str, str], tmp_path: Path
) -> None:
    build_study(node, tmp_path, individuals=2)
    bam = long_read_bam(tmp_path / "person.bam", "S1", 24)
    reads = build_ingestor(node).ingest("study", [bam]).published[0]
    server = serve(node.settings.data_dir, env)
    with httpx.Client(timeout=30) as http:
        grantee = Grantee(http, server.url, issuer, "carol")
        data_url, ticket = grantee.data_ticket(reads.id)
        download = SlowDownload(data_url, ticket)
        assert download.size == reads.size

        def remove() -> None:
            done = cli(node, env, "objects", "remove", reads.id, "--yes")
            assert done.returncode == 0, done.stderr

        assert_cut(download, *download.run(remove))
    cuts = [e for e in node.audit.entries(resource_prefix=f"objects/{reads.id}") if e.reason.startswith("stopped")]
    assert len(cuts) == 1, "the cut is audited as after a withdrawal"


@pytest.mark.parametrize("object_store", ["s3"], indirect=True)
def test_a_deleted_dataset_is_gone_and_its_grants_open_nothing(
    node: Node, issuer: VisaIssuer, serve: Any, env: dict[str, str], tmp_path: Path
) -> None:
    study = build_study(node, tmp_path)
    DatasetService(node.database).set_committee("study", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=False)
    server = serve(node.settings.data_dir, env)
    url = server.url
    with httpx.Client(timeout=30) as http:
        grantee = Grantee(http, url, issuer, "alice")
        old_passport = grantee.headers  # holds the node-signed visa of alice's grant
        pending = http.post(
            f"{url}/governance/requests",
            headers={"Authorization": f"Bearer {researcher_passport(issuer, 'dave')}"},
            json={
                "datasets": ["study"],
                "purpose": {"primary": "GRU"},
                "project_title": "Other study",
                "institution": "Example Company",
            },
        ).json()
        assert grantee.beacon("datasets/study/g_variants")["responseSummary"]["exists"] is True
        with node.database.sessions() as session:
            requests = {r.id: r.status for r in session.scalars(select(AccessRequest))}
            grants = list(session.scalars(select(Grant.id)))

        unknown = cli(node, env, "datasets", "delete", "no-such-dataset", "--yes")
        assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1 and "no dataset" in unknown.stderr
        # Without --yes, away from a terminal: refused, nothing deleted.
        refused = cli(node, env, "datasets", "delete", "study")
        assert refused.returncode == 1 and "--yes" in refused.stderr, refused.stderr
        dry = cli(node, env, "datasets", "delete", "study", "--dry-run")
        assert dry.returncode == 0 and study.vcf.id in dry.stdout and grants[0] in dry.stdout, dry.stdout
        assert stored(node, study.vcf), "a dry run deletes nothing"

        done = cli(node, env, "datasets", "delete", "study", "--yes", "--json")
        assert done.returncode == 0, done.stderr
        removal = json.loads(done.stdout)
        assert removal["grants"] == grants and removal["objects"] == [study.vcf.id]
        expected = {"approved": "revoked", "pending": "rejected"}
        assert removal["requests"] == {rid: expected[state] for rid, state in requests.items()}

        # Beacon: the dataset is in no answer; DRS: neither the bundle nor its file; the old visa opens nothing.
        def listed() -> list[str]:
            return [d["id"] for d in http.get(f"{url}/api/datasets").json()["response"]["collections"]]

        assert until(lambda: "study" not in listed()), listed()
        answer = http.get(f"{url}/api/g_variants", headers=old_passport).json()["responseSummary"]
        assert answer["exists"] is False, answer
        assert http.get(f"{url}{DRS}/objects/study", headers=old_passport).status_code == 403
        assert http.get(f"{url}{DRS}/objects/{study.vcf.id}", headers=old_passport).status_code == 403
        signed = http.get(f"{url}/governance/passport", headers=grantee.registered).json()
        assert signed["grants"] == [], "the node signs no visa for a deleted dataset"
        shown = http.get(f"{url}/governance/requests/{pending['id']}", headers=grantee.registered)
        assert shown.status_code in (403, 404), "another's request stays theirs"
        mine = http.get(f"{url}/governance/requests", headers=grantee.registered)
        assert mine.status_code == 200, mine.text
        assert [r["decisions"]["study"]["status"] for r in mine.json()] == ["revoked"], mine.text

    # A dataset created under the deleted id would let the old visas (still unexpired) open it: refused.
    with pytest.raises(Conflict, match="deleted"):
        DatasetService(node.database).create(
            NewDataset(id="study", title="T", custodian="C", access_level="controlled", duo_codes=["GRU"])
        )
    assert stored(node, study.vcf) == []
    assert not (node.settings.data_dir / "beacon" / "study").exists()
    with node.database.sessions() as session:
        for table in (DataObject, Participant, Grant, BeaconIndividual):
            assert session.scalars(select(table)).all() == [], table
        assert {r.id for r in session.scalars(select(AccessRequest))} == set(requests), "requests stay"
    (entry,) = [e for e in node.audit.entries(resource_prefix="datasets/study") if e.action == "datasets.delete"]
    assert entry.actor.startswith("operator:") and entry.details["grants"] == grants
    assert node.audit.verify().ok


def test_a_store_that_fails_after_serving_stopped_leaves_nothing_served(tmp_path: Path) -> None:
    """The object store goes away between the two steps: the file is no longer served, the leftovers are named."""
    with s3_server(tmp_path / "moto.log") as store:
        settings = load_settings(
            tmp_path / "node",
            public_url=PUBLIC_URL,
            environment="test",
            objects_url=f"s3://{store.new_bucket()}/node",
            s3=store.settings(),
        )
        node = init_node(settings)
        DatasetService(node.database).create(
            NewDataset(id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"])
        )
        vcf = tmp_path / "open.vcf.gz"
        vcf.write_bytes((HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz").read_bytes())
        row = build_ingestor(node).ingest("open", [vcf]).published[0]
        with TestClient(create_app(node)) as client:
            assert client.get(f"{DRS}/objects/{row.id}").status_code == 200
        delete = node.objects.delete

        def store_gone(key: str) -> None:
            """The real store's process ends just before the first deletion reaches it."""
            if store.process.poll() is None:
                store.process.terminate()
                store.process.wait(timeout=10)
            delete(key)

        node.objects.delete = store_gone  # type: ignore[method-assign]
        removal = build_lifecycle(node).remove_object(row.id, "operator:test")
        assert removal.left and set(removal.left) <= set(removal.stored), removal
        with TestClient(create_app(node)) as client:
            assert client.get(f"{DRS}/objects/{row.id}").status_code == client.get(f"{DRS}/objects/open.x").status_code
            gone = client.get(f"/htsget/variants/{row.htsget_id}")
            assert gone.status_code == client.get("/htsget/variants/never-ingested").status_code, gone.text
        failed = [e for e in node.audit.entries(resource_prefix=f"objects/{row.id}") if e.decision == "fail"]
        assert len(failed) == 1 and failed[0].details["left"] == removal.left
        assert node.audit.verify().ok
        node.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_at_a_terminal_the_operator_is_asked(node: Node, env: dict[str, str], tmp_path: Path) -> None:
    """Without --yes at a terminal: the list of what goes, then a question; only "y" deletes."""
    DatasetService(node.database).create(
        NewDataset(id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"])
    )
    vcf = tmp_path / "open.vcf.gz"
    vcf.write_bytes((HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz").read_bytes())
    row = build_ingestor(node).ingest("open", [vcf]).published[0]

    def answered(answer: str) -> subprocess.CompletedProcess[str]:
        terminal, typist = pty.openpty()  # the command's standard input is a terminal
        os.write(typist, f"{answer}\n".encode())
        try:
            command = [sys.executable, "-m", "genoshare", "objects", "remove", row.id]
            return subprocess.run(
                [*command, "--data-dir", str(node.settings.data_dir)],
                stdin=terminal,
                capture_output=True,
                text=True,
                env={**os.environ, **env},
                timeout=300,
                check=False,
            )
        finally:
            os.close(terminal)
            os.close(typist)

    declined = answered("n")
    assert declined.returncode == 1 and "nothing deleted" in declined.stderr, declined.stdout + declined.stderr
    assert f"would delete file {row.id}" in declined.stdout and "Delete file" in declined.stdout
    with node.database.sessions() as session:
        assert session.get(DataObject, row.id) is not None
    accepted = answered("y")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    with node.database.sessions() as session:
        assert session.get(DataObject, row.id) is None
