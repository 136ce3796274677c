"""Killing an ingest at any moment leaves the dataset as it was: all files or none, never a half object.

With ``--jobs 2`` the files are staged in worker processes: they must end with the ingest (``kill -9``,
Ctrl-C) or with the one of them that dies, and publish nothing either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node
from genoshare.store.models import PendingRemoval


def start_ingest(node: Node, files: list[Path], jobs: int, **popen: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genoshare",
            "ingest",
            "cohort1",
            *map(str, files),
            "--jobs",
            str(jobs),
            "--data-dir",
            str(node.settings.data_dir),
        ],
        env={**os.environ, "GENOSHARE_DATABASE_URL": node.settings.database_url},
        **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen},
    )


def wait_for_staging(node: Node, process: subprocess.Popen[bytes]) -> None:
    staging = node.objects.staging_dir()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if any(staging.iterdir()):
            return
        time.sleep(0.01)


def workers_of(pid: int) -> list[int]:
    """The ingest's worker processes (``python -m genoshare.ingest.workers``)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in children if b"genoshare.ingest.workers" in _cmdline(int(child))]


def wait_for_workers(node: Node, process: subprocess.Popen[bytes], count: int) -> list[int]:
    """The workers once ``count`` of them stage files (their files appear in staging)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        workers = workers_of(process.pid)
        staged = [p for work in node.objects.staging_dir().iterdir() if work.is_dir() for p in work.iterdir()]
        if len(workers) == count and len(staged) >= count:
            return workers
        time.sleep(0.01)
    return workers_of(process.pid)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def assert_gone(pids: list[int]) -> None:
    """Each of ``pids`` has exited (a zombie reaped by init counts as gone) within a few seconds."""
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if b"genoshare.ingest.workers" in _cmdline(pid)]
        time.sleep(0.05)
    assert alive == [], f"worker processes outlived the ingest: {alive}"


def make_dataset(node: Node) -> None:
    DatasetService(node.database).create(
        NewDataset(id="cohort1", title="T", custodian="C", access_level="controlled", duo_codes=["GRU"])
    )


def assert_published_whole(node: Node, big_bams: list[Path], jobs: int) -> None:
    """A last ingest publishes both files, and clears what the killed ones left in staging."""
    finished = start_ingest(node, big_bams, jobs)
    assert finished.wait(timeout=300) == 0
    objects = DatasetService(node.database).objects("cohort1")
    assert sorted(o.name for o in objects) == ["synthetic0.bam", "synthetic1.bam"]
    for row in objects:
        assert node.objects.exists(row.blob_key) and node.objects.exists(row.index_key or "")
    assert list(node.objects.staging_dir().iterdir()) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_kill_9_at_several_moments_never_half_publishes(node: Node, big_bams: list[Path], jobs: int) -> None:
    make_dataset(node)
    killed_mid_way = 0
    for delay in (0.0, 0.5, 1.0, 2.0):
        process = start_ingest(node, big_bams, jobs)
        wait_for_staging(node, process)
        time.sleep(delay)
        workers = workers_of(process.pid)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed_mid_way += 1
        process.wait()
        assert_gone(workers)
        published = DatasetService(node.database).objects("cohort1")
        assert len(published) in (0, 2), f"half-published after kill at {delay}s: {[o.name for o in published]}"
        if published:
            break
    assert killed_mid_way >= 1, "the ingest finished before any kill: make the fixture files bigger"
    assert_published_whole(node, big_bams, jobs)


def test_ctrl_c_stops_the_workers_and_publishes_nothing(node: Node, big_bams: list[Path]) -> None:
    """Ctrl-C at a terminal signals the whole process group: the ingest and its workers."""
    make_dataset(node)
    process = start_ingest(node, big_bams, 2, start_new_session=True)
    workers = wait_for_workers(node, process, 2)
    assert len(workers) == 2, "the ingest finished before two workers staged: make the fixture files bigger"
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) != 0
    assert_gone(workers)
    assert DatasetService(node.database).objects("cohort1") == []
    assert list(node.objects.staging_dir().iterdir()) == []  # the interrupted ingest removed its own work
    assert_published_whole(node, big_bams, 2)


def test_a_worker_that_dies_fails_the_ingest_in_one_line(node: Node, big_bams: list[Path]) -> None:
    """A worker killed (the kernel's out-of-memory killer, say): the ingest names the file and stops the other."""
    make_dataset(node)
    process = start_ingest(node, big_bams, 2, stderr=subprocess.PIPE)
    workers = wait_for_workers(node, process, 2)
    assert len(workers) == 2, "the ingest finished before two workers staged: make the fixture files bigger"
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "the worker process staging it died (killed by signal 9); nothing was published" in lines[0]
    assert lines[0].startswith(("error: synthetic0.bam:", "error: synthetic1.bam:"))
    assert_gone(workers)
    assert DatasetService(node.database).objects("cohort1") == []
    assert list(node.objects.staging_dir().iterdir()) == []
    with node.database.sessions() as session:
        assert list(session.scalars(select(PendingRemoval))) == []
