"""Tell people about access requests: committees of new requests, requesters and committees of decisions.

By e-mail (SMTP, ``notify.smtp`` in the settings) and, optionally, by a webhook (``notify.webhook``): a JSON
POST signed with HMAC-SHA256 over ``"<timestamp>.<body>"`` (header ``X-Genoshare-Signature:
t=<unix time>,v1=<hex>``), so that a receiver can check both who sent it and that it is not a replay.

Delivery runs in one background thread: a slow or unreachable mail server never delays the request that
caused the notice, and a failure is logged (``genoshare.notify``), never raised into that request.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import queue
import re
import smtplib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

from genoshare.settings import NotifySettings, SmtpSettings, WebhookSettings

log = logging.getLogger("genoshare.notify")

SIGNATURE_HEADER = "X-Genoshare-Signature"
#: One mail address (no list, no display name, nothing that would end a header line).
MAILBOX = re.compile(r"[^@\s,;<>()\[\]\"]+@[^@\s,;<>()\[\]\"]+")


@dataclass(frozen=True)
class Notice:
    """One event: mailed to ``to`` (if any address and a mail server are configured) and posted to the webhook."""

    event: str
    subject: str
    body: str
    to: tuple[str, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The webhook signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Notifier:
    """Sends notices from a background thread, in the order they were given."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.smtp is not None or self.settings.webhook is not None

    def send(self, notice: Notice) -> None:
        """Queue ``notice``; returns at once."""
        if not self.enabled:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="genoshare-notify", daemon=True)
                self._thread.start()
                # A command-line process ends right after its decision: deliver what it queued first.
                atexit.register(self.close)
        self._queue.put(notice)

    def flush(self, timeout: float = 30) -> bool:
        """Wait until every queued notice was delivered or given up; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 10) -> None:
        """Deliver what is queued (within ``timeout``), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            notice = self._queue.get()
            try:
                if notice is None:
                    return
                try:
                    self._deliver(notice)
                except Exception:
                    # A bug (a header the mail library chokes on, a bad setting) loses this notice, never the
                    # thread and the notices after it; the log names the request so a steward can tell its people.
                    request = notice.payload.get("request", "-")
                    log.exception("could not deliver %s of request %s", notice.event, request)
            finally:
                self._queue.task_done()

    def _deliver(self, notice: Notice) -> None:
        smtp, webhook = self.settings.smtp, self.settings.webhook
        if smtp is not None and notice.to:
            try:
                mail(smtp, notice)
            except (OSError, smtplib.SMTPException) as error:
                log.warning("could not mail %s to %s: %s", notice.event, ", ".join(notice.to), error)
            except Exception:
                # Not a mail server's refusal but a bug: logged whole, and the webhook still hears of it.
                log.exception("could not mail %s of request %s", notice.event, notice.payload.get("request", "-"))
        if webhook is not None:
            try:
                post(webhook, notice)
            except (OSError, httpx.HTTPError) as error:
                log.warning("could not post %s to the webhook %s: %s", notice.event, webhook.url, error)


def mail(smtp: SmtpSettings, notice: Notice) -> None:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(notice.to)
    # One line, whatever the notice's subject quotes (a requester's title): a line break in a header would
    # start another header, and the mail library refuses such a header outright (the notice would be lost).
    message["Subject"] = " ".join(notice.subject.split())
    message.set_content(notice.body)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username is not None and smtp.password_file is not None:
            client.login(smtp.username, smtp.password_file.read_text().strip())
        client.send_message(message)


def post(webhook: WebhookSettings, notice: Notice) -> None:
    body = json.dumps({"event": notice.event, "subject": notice.subject, **notice.payload}, sort_keys=True).encode()
    secret = webhook.secret_file.read_bytes().strip()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, int(time.time()), body)}
    response = httpx.post(webhook.url, content=body, headers=headers, timeout=webhook.timeout_seconds)
    response.raise_for_status()


def addresses(values: Sequence[str]) -> tuple[str, ...]:
    """The non-empty addresses of ``values``, each once, split on commas (a field may list several)."""
    found = [part.strip() for value in values for part in value.split(",")]
    return tuple(dict.fromkeys(address for address in found if address))
