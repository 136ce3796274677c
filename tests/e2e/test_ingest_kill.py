"""Killing an ingest at any moment leaves the dataset as it was: all files or none, never a half object."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node


def start_ingest(node: Node, files: list[Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genoshare",
            "ingest",
            "cohort1",
            *map(str, files),
            "--data-dir",
            str(node.settings.data_dir),
        ],
        env={**os.environ, "GENOSHARE_DATABASE_URL": node.settings.database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_staging(node: Node, process: subprocess.Popen[bytes]) -> None:
    staging = node.objects.staging_dir()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if any(staging.iterdir()):
            return
        time.sleep(0.01)


def test_kill_9_at_several_moments_never_half_publishes(node: Node, big_bams: list[Path]) -> None:
    DatasetService(node.database).create(
        NewDataset(id="cohort1", title="T", custodian="C", access_level="controlled", duo_codes=["GRU"])
    )
    killed_mid_way = 0
    for delay in (0.0, 0.5, 1.0, 2.0):
        process = start_ingest(node, big_bams)
        wait_for_staging(node, process)
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed_mid_way += 1
        process.wait()
        published = DatasetService(node.database).objects("cohort1")
        assert len(published) in (0, 2), f"half-published after kill at {delay}s: {[o.name for o in published]}"
        if published:
            break
    assert killed_mid_way >= 1, "the ingest finished before any kill: make the fixture files bigger"
    finished = start_ingest(node, big_bams)
    assert finished.wait(timeout=300) == 0
    objects = DatasetService(node.database).objects("cohort1")
    assert sorted(o.name for o in objects) == ["synthetic0.bam", "synthetic1.bam"]
    for row in objects:
        assert node.objects.exists(row.blob_key) and node.objects.exists(row.index_key or "")
    # The plaintext the killed ingests left in staging went with the next ingest.
    assert list(node.objects.staging_dir().iterdir()) == []
