"""A removal racing an ingest in another process: no published file without its bytes, no bytes unrecorded.

`genoshare datasets delete` read what to delete in one transaction and deleted rows in another: an ingest into
the dataset committing in between lost its rows, its bytes stayed at rest, in no audit entry and no pending
removal. `genoshare objects remove` decided a checksum key was unused, committed, then deleted the bytes: an
ingest of the same content (same key, whose upload it skips as already stored) committing in between was
published without bytes. Attacked with a real `genoshare ingest` process started at the worst moment of a
removal (from inside the node's object store, while the removal lists or deletes keys); the removal goes on
once that process has finished, or is blocked waiting for the removal (then it must wait: that is the fix).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, build_lifecycle, init_node
from genoshare.settings import load_settings
from genoshare.store.models import DataObject, PendingRemoval

from support import HTSGET_DATA

SPEC = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
OTHER = HTSGET_DATA / "vcf" / "sample1-bcbio-cancer.vcf.gz"
#: Each node's database URL, for the ingest processes.
URLS: dict[Path, str] = {}


def postgres_admin_url() -> str:
    url = os.environ.get("GENOSHARE_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("PostgreSQL tests need GENOSHARE_TEST_POSTGRES_URL (see tests/conftest.py)", pytrace=False)
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node per database: dataset ``gone`` (to delete) and ``kept`` (to remove a file from), one file each."""
    root = tmp_path_factory.mktemp(f"races-{request.param}")
    admin, name = None, f"gs_test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'node.db'}"
    else:
        admin = create_engine(make_url(postgres_admin_url()), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
    node = init_node(load_settings(root / "node", database_url=url))
    URLS[node.settings.data_dir] = url
    for dataset in ("gone", "kept"):
        DatasetService(node.database).create(
            NewDataset(id=dataset, title=dataset, custodian="C", access_level="public", duo_codes=["NRES"])
        )
        copy = root / f"{dataset}-spec.vcf.gz"  # htsget ids are node-wide: a name per dataset
        shutil.copyfile(SPEC, copy)
        build_ingestor(node).ingest(dataset, [copy])
    yield node
    node.close()
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def ingest_process(node: Node, dataset: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "genoshare", "ingest", dataset, str(path), "--data-dir", str(node.settings.data_dir)],
        env={**os.environ, "GENOSHARE_DATABASE_URL": URLS[node.settings.data_dir]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def waiting_for_a_lock(node: Node, pid: int) -> bool:
    """Whether the process waits for a lock the removal holds (PostgreSQL's row or advisory, SQLite's turn)."""
    if node.database.engine.dialect.name == "postgresql":
        with node.database.engine.connect() as connection:
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool(connection.scalar(text(waiting)))
    with open("/proc/locks") as locks:
        return any("->" in line and f" {pid} " in line for line in locks)


def run_meanwhile(node: Node, child: subprocess.Popen[str]) -> None:
    """Let the ingest run: until it ends, or until it waits for this removal."""
    deadline = time.monotonic() + 120
    while child.poll() is None and not waiting_for_a_lock(node, child.pid):
        assert time.monotonic() < deadline, "the ingest neither ended nor waited"
        time.sleep(0.05)


def hook(node: Node, method: str, when: Callable[[str], bool], act: Callable[[], None]) -> Callable[[], None]:
    """Run ``act`` once, the first time the store's ``method`` is called with a key ``when`` accepts."""
    original = getattr(node.objects, method)
    done: list[bool] = []

    def wrapped(key: str, *args: Any) -> Any:
        if not done and when(key):
            done.append(True)
            act()
        return original(key, *args)

    setattr(node.objects, method, wrapped)
    return lambda: setattr(node.objects, method, original)


def at_rest(node: Node) -> set[str]:
    root = node.settings.data_dir / "objects"
    return {
        str(path.relative_to(root))
        for kind in ("blobs", "indexes")
        for path in (root / kind).rglob("*")
        if path.is_file() and not path.name.startswith(".")
    }


def test_an_ingest_publishing_while_its_dataset_is_deleted_leaves_nothing_unrecorded(node: Node) -> None:
    children: list[subprocess.Popen[str]] = []

    def ingest() -> None:
        children.append(ingest_process(node, "gone", OTHER))
        run_meanwhile(node, children[0])

    undo = hook(node, "keys", lambda prefix: prefix.startswith("beacon/"), ingest)
    try:
        removal = build_lifecycle(node).delete_dataset("gone", "operator:test")
    finally:
        undo()
    (child,) = children
    said = child.communicate(timeout=120)[0]
    # The store is listed before the deletion's transaction: the ingest publishes first, and its file goes too.
    assert child.returncode == 0, said
    assert len(removal.objects) == 2, "the file published while the store was listed was not deleted"
    with node.database.sessions() as session:
        assert not session.scalars(select(DataObject).where(DataObject.dataset_id == "gone")).all()
        used = {key for row in session.scalars(select(DataObject)) for key in (row.blob_key, row.index_key)}
        pending = set(session.scalars(select(PendingRemoval.key)))
    assert at_rest(node) <= used | pending, "stored bytes no row uses and no pending removal names"
    assert removal.left == []
    build_lifecycle(node).sweep("operator:test")
    assert at_rest(node) <= used


def test_an_ingest_of_the_same_bytes_during_a_removal_is_published_with_them(node: Node) -> None:
    (row,) = DatasetService(node.database).objects("kept")
    children: list[subprocess.Popen[str]] = []

    def ingest() -> None:
        # The same file again: the same checksum key, already stored, so the ingest does not upload it.
        children.append(ingest_process(node, "kept", node.settings.data_dir.parent / "kept-spec.vcf.gz"))
        run_meanwhile(node, children[0])

    undo = hook(node, "delete", lambda key: key == row.blob_key, ingest)
    try:
        build_lifecycle(node).remove_object(row.id, "operator:test")
    finally:
        undo()
    (child,) = children
    said = child.communicate(timeout=120)[0]
    assert child.returncode == 0, said
    (again,) = DatasetService(node.database).objects("kept")
    assert again.blob_key == row.blob_key
    assert node.objects.exists(again.blob_key), "published, and its bytes are gone"
    assert node.objects.exists(again.index_key or "")


#: ``genoshare`` whose Beacon index build waits, after the ingest has published, until told to go on.
PAUSED_INDEX = """
import sys, time
from pathlib import Path
from genoshare.index import published
index_dir, here = published.index_dir, Path(sys.argv.pop(1))
def paused(*args):
    (here / "indexing").touch()
    while not (here / "go").exists():
        time.sleep(0.02)
    return index_dir(*args)
published.index_dir = paused
from genoshare.cli.main import main
main()
"""


def test_a_beacon_index_built_after_its_dataset_was_deleted_is_not_left_at_rest(node: Node, tmp_path: Path) -> None:
    DatasetService(node.database).create(
        NewDataset(id="late", title="late", custodian="C", access_level="public", duo_codes=["NRES"])
    )
    source = tmp_path / "late-other.vcf.gz"
    shutil.copyfile(OTHER, source)
    data_dir = str(node.settings.data_dir)
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSED_INDEX, str(tmp_path), "ingest", "late", str(source), "--data-dir", data_dir],
        env={**os.environ, "GENOSHARE_DATABASE_URL": URLS[node.settings.data_dir]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "indexing").exists():  # published: its index is being built
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[0]
        time.sleep(0.02)
    removal = build_lifecycle(node).delete_dataset("late", "operator:test")
    assert removal.objects, "the ingest had published"
    (tmp_path / "go").touch()
    said = child.communicate(timeout=120)[0]
    beacon = node.settings.data_dir / "beacon" / "late"
    assert not [path for path in beacon.rglob("*") if path.is_file()], "a Beacon index of a deleted dataset"
    assert child.returncode != 0 and "removed while its Beacon index was built" in said, said
