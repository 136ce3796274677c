"""Real receivers for the node's notices, each in its own process: an SMTP server and a webhook endpoint.

``MailServer`` runs aiosmtpd (``python -m aiosmtpd``) delivering into a Maildir that tests read;
``WebhookReceiver`` runs a small HTTP server that writes every POST (headers and body) to a JSON-lines file.
"""

from __future__ import annotations

import json
import mailbox
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

import pytest

from processes import free_port

T = TypeVar("T")

_RECEIVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out = sys.argv[2]

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a") as handle:
            handle.write(json.dumps({"path": self.path, "headers": dict(self.headers), "body": body.decode()}) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after 20 s")


def wait_for(found: Callable[[], T | None], timeout: float = 15) -> T:
    """Poll until ``found`` returns something: notices are delivered from a background thread."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"nothing arrived within {timeout} s")


def body(message: Message) -> str:
    """A mail's text, decoded (long lines arrive quoted-printable)."""
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


class MailServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.maildir = directory / "maildir"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{self.port}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(self.maildir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process)

    @property
    def env(self) -> dict[str, str]:
        """Settings that point a node at this server."""
        return {
            "GENOSHARE_NOTIFY__SMTP__HOST": "127.0.0.1",
            "GENOSHARE_NOTIFY__SMTP__PORT": str(self.port),
            "GENOSHARE_NOTIFY__SMTP__SENDER": "genoshare@node.example",
        }

    def messages(self) -> list[Message]:
        if not self.maildir.exists():
            return []
        return list(mailbox.Maildir(self.maildir, create=False))

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 15) -> Message:
        return wait_for(lambda: next((m for m in self.messages() if predicate(m)), None), timeout)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class WebhookReceiver:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.log = directory / "webhook.jsonl"
        self.secret_file = directory / "webhook.secret"
        self.secret_file.write_text("s3cret-shared-with-the-receiver\n")
        os.chmod(self.secret_file, 0o600)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER, str(self.port), str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process)

    @property
    def env(self) -> dict[str, str]:
        return {
            "GENOSHARE_NOTIFY__WEBHOOK__URL": self.url,
            "GENOSHARE_NOTIFY__WEBHOOK__SECRET_FILE": str(self.secret_file),
        }

    def posts(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def mail_server(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(tmp_path)
    yield receiver
    receiver.stop()
