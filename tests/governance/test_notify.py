"""Notices reach a real SMTP server process and a real webhook receiver, signed, without blocking the sender."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from pathlib import Path

import pytest

import receivers
from genoshare.governance.notify import SIGNATURE_HEADER, Notice, Notifier
from genoshare.settings import NotifySettings, SmtpSettings, WebhookSettings
from receivers import MailServer, WebhookReceiver, wait_for

mail_server, webhook_receiver = receivers.mail_server, receivers.webhook_receiver

NOTICE = Notice(
    event="access_request.submitted",
    subject="New access request: Diabetes GWAS",
    body="Dr Ada asks for cohort-a.\nOpen the inbox: http://node/committee",
    to=("dac@node.example", "chair@node.example"),
    payload={"request": "r-1", "datasets": ["cohort-a"]},
)


def test_a_notice_is_mailed_to_every_address(mail_server: MailServer) -> None:
    notifier = Notifier(
        NotifySettings(smtp=SmtpSettings(host="127.0.0.1", port=mail_server.port, sender="node@node.example"))
    )
    notifier.send(NOTICE)
    message = mail_server.wait_for(lambda m: "Diabetes GWAS" in str(m["Subject"]))
    assert message["From"] == "node@node.example"
    assert "dac@node.example" in message["To"] and "chair@node.example" in message["To"]
    assert "Open the inbox: http://node/committee" in message.get_payload()
    notifier.close()


def test_the_webhook_gets_a_post_whose_hmac_verifies(webhook_receiver: WebhookReceiver) -> None:
    notifier = Notifier(
        NotifySettings(webhook=WebhookSettings(url=webhook_receiver.url, secret_file=webhook_receiver.secret_file))
    )
    notifier.send(NOTICE)
    post = wait_for(lambda: webhook_receiver.posts())[0]
    body = json.loads(post["body"])
    assert body["event"] == "access_request.submitted" and body["request"] == "r-1"
    headers = {name.lower(): value for name, value in post["headers"].items()}
    fields = dict(part.split("=", 1) for part in headers[SIGNATURE_HEADER.lower()].split(","))
    assert abs(int(fields["t"]) - time.time()) < 60
    secret = webhook_receiver.secret_file.read_bytes().strip()
    expected = hmac.new(secret, fields["t"].encode() + b"." + post["body"].encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    forged = hmac.new(b"another secret", fields["t"].encode() + b"." + post["body"].encode(), hashlib.sha256)
    assert fields["v1"] != forged.hexdigest()
    notifier.close()


def test_a_mail_server_that_never_answers_does_not_hold_up_the_sender(
    tmp_path: Path, webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never sends the SMTP greeting
    port = silent.getsockname()[1]
    notifier = Notifier(
        NotifySettings(
            smtp=SmtpSettings(host="127.0.0.1", port=port, sender="node@node.example", timeout_seconds=1),
            webhook=WebhookSettings(url=webhook_receiver.url, secret_file=webhook_receiver.secret_file),
        )
    )
    started = time.monotonic()
    notifier.send(NOTICE)
    notifier.send(NOTICE)
    assert time.monotonic() - started < 0.2
    assert notifier.flush(timeout=20)
    assert len(webhook_receiver.posts()) == 2, "the webhook still gets what the mail server did not"
    assert "could not mail access_request.submitted" in caplog.text
    silent.close()
    notifier.close()
