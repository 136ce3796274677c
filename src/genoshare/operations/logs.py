"""Structured logs: one JSON object a line, each with the request id of the request that caused it.

What never reaches a log: passports and other bearer tokens, ticket and consent-link secrets, genotypes.
The access log names the route's template (``/data/{ticket}``), never the path a client sent, and the
:class:`Redactor` replaces anything shaped like a JWT or ``Bearer`` credential that a message still carries.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

#: The id of the request being answered, set by the API's middleware for everything logged meanwhile.
request_id: ContextVar[str] = ContextVar("genoshare_request_id", default="")

_SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"  # a JWS (passport, visa, id token)
    r"|(?i:bearer)\s+\S+"
)
#: ``LogRecord`` attributes that are the record's own, not ``extra=`` fields worth writing out.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


class Redactor(logging.Filter):
    """Adds the request id to every record and removes credentials from its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker of ``serve --workers``
        }
        rid = getattr(record, "request_id", "")
        if rid:
            entry["request_id"] = rid
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD | {"request_id"}})
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure(style: Literal["json", "text"], level: int = logging.INFO) -> dict[str, Any]:
    """The ``logging.config`` dictionary for the server (uvicorn applies it in every worker)."""
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if style == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "default",
        "filters": ["redact"],
    }
    loggers = {name: {"level": level, "handlers": ["default"], "propagate": False} for name in ("uvicorn", "genoshare")}
    # The access log is the application's (``genoshare.access_log``): uvicorn's names the raw path, tickets and all.
    loggers["uvicorn.access"] = {"level": logging.CRITICAL + 1, "handlers": [], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": f"{__name__}.Redactor"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": loggers,
        "root": {"level": logging.WARNING, "handlers": ["default"]},
    }
