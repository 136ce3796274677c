"""Real genoshare processes for tests: the CLI in a child process, ``genoshare serve`` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


STARTUP_SECONDS = 120


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``wrapper``: a command the CLI runs under (e.g. ``setpriv`` with fewer capabilities)."""
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "genoshare", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


class Server:
    """``genoshare serve`` in a child process, stopped at the end of the test."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str],
        wrapper: Sequence[str] = (),
        args: Sequence[str] = (),
        scheme: str = "http",
        prefix: str = "",
        public_url: str | None = None,
    ) -> None:
        """``wrapper``: a command that runs the server, e.g. ``prlimit --nofile=300:300``; ``args``: more options
        of ``serve``; ``prefix``: the path a proxy in front would add (in the public URL, not in ``url``);
        ``public_url``: the proxy's URL, for several processes serving one node (default: this one's ``url``)."""
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                *wrapper,
                sys.executable,
                "-m",
                "genoshare",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
                *args,
            ],
            env={**os.environ, **env, "GENOSHARE_PUBLIC_URL": public_url or self.url + prefix},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Read the log as it comes: a full pipe (64 KiB of access log lines) would block the server.
        self._log: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        # Generous: a start is a few seconds on a quiet machine, but CI runs two test workers beside many
        # server processes, and a start missed under load would fail a test that has nothing to do with it.
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise RuntimeError(f"server exited: {self.log}")
            try:
                if httpx.get(f"{self.url}/service-info", timeout=1, verify=False).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start within {STARTUP_SECONDS} s")

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._log.append(line)

    @property
    def log(self) -> str:
        """What the server printed so far."""
        return "".join(self._log)

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.log


@pytest.fixture
def serve() -> Iterator[type[Server]]:
    started: list[Server] = []

    class Tracked(Server):
        def __init__(self, data_dir: Path, env: dict[str, str], wrapper: Sequence[str] = (), **options: Any) -> None:
            super().__init__(data_dir, env, wrapper, **options)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()
