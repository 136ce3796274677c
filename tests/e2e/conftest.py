"""Fixtures for tests that run genoshare as real processes."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pysam
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genoshare", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


class Server:
    """``genoshare serve`` in a child process, stopped at the end of the test."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genoshare", "serve", "--data-dir", str(data_dir), "--port", str(self.port)],
            env={**os.environ, **env, "GENOSHARE_PUBLIC_URL": self.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read() if self.process.stdout else ''}")
            try:
                if httpx.get(f"{self.url}/service-info", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start within 30 s")

    def stop(self) -> str:
        self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output or ""


@pytest.fixture
def serve() -> Iterator[type[Server]]:
    started: list[Server] = []

    class Tracked(Server):
        def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
            super().__init__(data_dir, env)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def big_bams(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two sorted BAMs of synthetic reads, large enough (~15 MB each) that an ingest takes a while."""
    directory = tmp_path_factory.mktemp("bams")
    rng = random.Random(7)
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 50_000_000}]}
    paths = []
    for number in range(2):
        path = directory / f"synthetic{number}.bam"
        with pysam.AlignmentFile(str(path), "wb", header=header) as out:
            for index, start in enumerate(sorted(rng.randrange(0, 49_999_000) for _ in range(150_000))):
                read = pysam.AlignedSegment(out.header)
                read.query_name = f"r{number}-{index}"
                read.reference_id = 0
                read.reference_start = start
                read.mapping_quality = 60
                read.cigarstring = "100M"
                read.query_sequence = "".join(rng.choices("ACGT", k=100))
                read.query_qualities = pysam.qualitystring_to_array("I" * 100)
                out.write(read)
        paths.append(path)
    return paths
