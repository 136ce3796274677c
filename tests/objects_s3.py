"""A real S3-compatible server for the suites that run on both object stores: moto's standalone server.

Why moto (``moto[server]``, from PyPI) rather than the others we could install: MinIO is not in any
registry we reach; ``s3rver`` (npm) implements a small subset (no multipart listing, loose Range and
conditional handling); versitygw and SeaweedFS are not packaged for Debian 12; Ceph's RGW is, but needs a
whole cluster (monitors, OSDs) to start.  moto's S3 follows botocore's own service model, answers over
real HTTP on a loopback port (``moto_server``, a separate process), and implements what the node relies
on: ranged GETs (206 and 416), ``If-Match`` preconditions, multipart uploads, paginated listings and
HEAD.  It accepts any credentials, so credential *checks* are not tested against it; what the node
does with credentials (never logged, never in an answer) is.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from genoshare.settings import S3Settings

#: Secrets the tests hand the node: they must never appear in a log or an answer.
ACCESS_KEY_ID = "GSTESTACCESSKEY"
SECRET_ACCESS_KEY = "gs-test-secret-never-logged-4f2a"
STARTUP_SECONDS = 30


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def settings(self) -> S3Settings:
        return S3Settings(
            endpoint_url=self.endpoint,
            region="us-east-1",
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SecretStr(SECRET_ACCESS_KEY),
        )

    def new_bucket(self) -> str:
        """A fresh bucket per test, so tests never see each other's objects."""
        import boto3

        name = f"gs-{uuid.uuid4().hex[:16]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        client.create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """What a ``genoshare serve`` child needs beside the node's configuration file: the secret."""
        return {"GENOSHARE_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def s3_server(log: Path) -> Iterator[S3Server]:
    """``moto_server`` on a loopback port, up within ``STARTUP_SECONDS`` or the tests fail saying why."""
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if executable is None:
        raise RuntimeError("moto_server is missing: pip install 'moto[server]' (the test extra)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer within {STARTUP_SECONDS} s") from None
                time.sleep(0.1)
        yield S3Server(endpoint, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
