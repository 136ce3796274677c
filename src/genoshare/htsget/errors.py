"""htsget's error vocabulary as exceptions, so one web handler can render any of them.

Each class carries the HTTP status and the ``error`` name of the htsget 1.3 error table; the range engine
raises them for bad requests and for files it cannot make sense of, and the API layer only has to write
``{"htsget": {"error": exc.htsget_error, "message": exc.message}}`` with ``exc.http_status``.

The tree mirrors the spec table rather than ``genoshare.errors`` so that the engine stays usable on its own;
an API layer that wants a single base can catch ``HtsgetError`` next to its own.
"""

from __future__ import annotations


class HtsgetError(Exception):
    http_status = 500
    htsget_error = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAuthentication(HtsgetError):
    http_status = 401
    htsget_error = "InvalidAuthentication"


class PermissionDenied(HtsgetError):
    http_status = 403
    htsget_error = "PermissionDenied"


class NotFound(HtsgetError):
    http_status = 404
    htsget_error = "NotFound"


class PayloadTooLarge(HtsgetError):
    http_status = 413
    htsget_error = "PayloadTooLarge"


class UnsupportedFormat(HtsgetError):
    http_status = 400
    htsget_error = "UnsupportedFormat"


class InvalidInput(HtsgetError):
    http_status = 400
    htsget_error = "InvalidInput"


class InvalidRange(HtsgetError):
    http_status = 400
    htsget_error = "InvalidRange"


class CorruptFile(InvalidInput):
    """A data or index file that does not parse.

    Kept apart from request errors so a server can log it loudly (it is the operator's problem, not the
    client's) while still answering with the spec's ``InvalidInput``.
    """
